"""The archive's storage interface (lib/storage.py) and its local-folder backend, on a real folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lib.storage import FileTooLarge, LocalFolder, Storage, check_key, open_storage


@pytest.fixture
def folder(tmp_path: Path) -> LocalFolder:
    return LocalFolder(tmp_path / "any" / "absolute" / "path")


def test_the_local_folder_is_a_storage(folder: LocalFolder) -> None:
    assert isinstance(folder, Storage)
    assert isinstance(open_storage(folder.root), LocalFolder)


def test_put_read_ranges_stat_delete(folder: LocalFolder) -> None:
    data = os.urandom(600_000)  # more than two read chunks
    assert folder.put("videos/abc_DEF-123.mp4", [data[:1000], data[1000:]]) == len(data)
    assert folder.exists("videos/abc_DEF-123.mp4") and folder.size("videos/abc_DEF-123.mp4") == len(data)
    stat = folder.stat("videos/abc_DEF-123.mp4")
    assert stat is not None and stat.size == len(data) and stat.mtime > 0
    assert b"".join(folder.read("videos/abc_DEF-123.mp4")) == data
    assert b"".join(folder.read("videos/abc_DEF-123.mp4", 10, 20)) == data[10:20]
    assert b"".join(folder.read("videos/abc_DEF-123.mp4", 599_990)) == data[599_990:]
    assert b"".join(folder.read("videos/abc_DEF-123.mp4", 5, 5)) == b""
    with folder.local_file("videos/abc_DEF-123.mp4") as path:
        assert path.read_bytes() == data
    assert folder.delete("videos/abc_DEF-123.mp4") and not folder.delete("videos/abc_DEF-123.mp4")
    assert folder.stat("videos/abc_DEF-123.mp4") is None and not folder.exists("videos/abc_DEF-123.mp4")
    with pytest.raises(FileNotFoundError):
        folder.size("videos/abc_DEF-123.mp4")
    with pytest.raises(FileNotFoundError):
        folder.read("videos/abc_DEF-123.mp4")


def test_put_file_and_overwrite_is_whole(folder: LocalFolder, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"first version")
    folder.put_file("posters/p1234567.jpg", src)
    folder.put("posters/p1234567.jpg", [b"second"])
    assert b"".join(folder.read("posters/p1234567.jpg")) == b"second"
    assert [p.name for p in (folder.root / "posters").iterdir()] == ["p1234567.jpg"]  # no temp file left


def test_put_past_the_cap_keeps_nothing(folder: LocalFolder) -> None:
    with pytest.raises(FileTooLarge):
        folder.put("videos/big12345.mp4", [b"x" * 600, b"x" * 600], max_bytes=1000)
    assert not folder.exists("videos/big12345.mp4")
    assert list((folder.root / "videos").iterdir()) == []


def test_a_failing_source_leaves_no_half_file(folder: LocalFolder) -> None:
    def broken():
        yield b"some bytes"
        raise ConnectionError("dropped")

    with pytest.raises(ConnectionError):
        folder.put("videos/half1234.mp4", broken())
    assert list((folder.root / "videos").iterdir()) == []


@pytest.mark.parametrize("key", [
    "", "/etc/passwd", "../x.mp4", "videos/../../x", "videos/..", "..", ".", "videos/.hidden.mp4",
    "videos//x.mp4", "videos\\..\\x.mp4", "videos/x y.mp4", "videos/x\x00.mp4", "a/b/c/d/e.mp4",
    "videos/" + "x" * 200 + ".mp4", "videos/",
])
def test_bad_keys_are_refused_everywhere(folder: LocalFolder, key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)
    for call in (folder.stat, folder.exists, folder.read, folder.delete, folder.size):
        with pytest.raises(ValueError):
            call(key)
    with pytest.raises(ValueError):
        folder.put(key, [b"x"])


def test_symlinks_cannot_lead_out_of_the_folder(folder: LocalFolder, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("SECRET")
    (folder.root / "videos").mkdir(parents=True)
    os.symlink(tmp_path / "secret.txt", folder.root / "videos" / "link1234.mp4")
    os.symlink(tmp_path, folder.root / "out")
    for key in ("videos/link1234.mp4", "out/secret.txt"):
        with pytest.raises(ValueError):
            folder.stat(key)
        with pytest.raises(ValueError):
            folder.read(key)
    with pytest.raises(ValueError):
        folder.put("out/new12345.mp4", [b"x"])
    assert not (tmp_path / "new12345.mp4").exists()


def test_key_of_turns_paths_inside_into_keys(folder: LocalFolder, tmp_path: Path) -> None:
    assert folder.key_of(folder.root / "videos" / "a1234567.mp4") == "videos/a1234567.mp4"
    assert folder.key_of("videos/a1234567.mp4") == "videos/a1234567.mp4"
    for outside in (tmp_path / "x.mp4", "../x.mp4", "/etc/passwd"):
        with pytest.raises(ValueError):
            folder.key_of(outside)
