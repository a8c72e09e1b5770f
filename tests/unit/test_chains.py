"""Shot chains (lib/chains.py, lib/frames_cut.py, lib/ledger/chains.py) on real MP4s rendered by the local
gateway's renderer, a real SQLite ledger and archive folder, and uploads over HTTP to the embedded gateway."""
from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from lib import chains, frames_cut, unfurl
from lib.archive import Archive
from lib.config import load_settings
from lib.contract import VideoRequest
from lib.gateway import GatewayClient
from lib.ledger import Ledger, bulk_insert, run_row
from lib.ledger.chains import FIRST, LAST
from lib.local_gateway.render import render_clip
from lib.owners import Actor
from lib.worker import Worker
from tests.fixtures.gateway import TEST_KEY


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real clips: two std 16:9 (copyable), one pro 9:16, one std with sound; 1-2 s each (cheap)."""
    root = tmp_path_factory.mktemp("clips")
    specs = {"a": ("std", 2, "16:9", False), "b": ("std", 1, "16:9", False), "p": ("pro", 1, "9:16", False),
             "s": ("std", 1, "16:9", True)}
    for name, (mode, seconds, aspect, audio) in specs.items():
        render_clip(root / f"{name}.mp4", prompt=f"clip {name}", mode=mode, duration=seconds, aspect=aspect,
                    audio=audio)
    return {n: root / f"{n}.mp4" for n in specs}


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _decoded_seconds(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [f for f in c.decode(stream)]
        rate = float(stream.average_rate or 24)
    return len(frames), len(frames) / rate


# ------------------------------------------------------------------ PyAV: cut
def test_the_cut_is_the_frame_at_that_time_at_full_resolution(clips: dict[str, Path]) -> None:
    decoded = _frames(clips["a"])
    times = frames_cut.frame_times(clips["a"])
    assert len(times) == len(decoded) == 48 and times[0] == 0.0 and times == sorted(times)
    for index in (0, 17, len(times) - 1):
        found = frames_cut.cut(clips["a"], times[index])
        assert (found.width, found.height) == (1280, 720) and abs(found.time - times[index]) < 1e-6
        got = np.asarray(Image.open(io.BytesIO(found.data)).convert("RGB"), dtype=np.int16)
        assert got.shape == (720, 1280, 3)
        diffs = [float(np.abs(got - f.astype(np.int16)).mean()) for f in decoded]
        assert int(np.argmin(diffs)) == index and diffs[index] < 3.0  # JPEG q95 of that very frame
    # between two frames: the one a player shows (the earlier)
    between = frames_cut.cut(clips["a"], (times[10] + times[11]) / 2)
    assert abs(between.time - times[10]) < 1e-6
    pro = frames_cut.cut(clips["p"], frames_cut.frame_times(clips["p"])[-1])
    assert (pro.width, pro.height) == (1080, 1920)


def test_an_unreadable_file_is_refused_in_words(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
    with pytest.raises(frames_cut.VideoUnreadable, match="cannot be read"):
        frames_cut.frame_times(bad)
    with pytest.raises(frames_cut.VideoUnreadable):
        frames_cut.cut(bad, 0.0)


# ------------------------------------------------------------------ PyAV: join
def test_matching_shots_are_stream_copied_and_the_output_decodes_with_the_summed_duration(
        clips: dict[str, Path], tmp_path: Path) -> None:
    infos = [frames_cut.probe(clips[n]) for n in ("a", "b", "a")]
    assert frames_cut.plan(infos) == frames_cut.COPY
    out = tmp_path / "aba.mp4"
    joined = frames_cut.join([clips["a"], clips["b"], clips["a"]], out)
    assert joined.mode == frames_cut.COPY and joined.duration == pytest.approx(5.0, abs=0.05)
    count, seconds = _decoded_seconds(out)
    assert count == 48 + 24 + 48 and seconds == pytest.approx(5.0, abs=0.05)
    # copied: shot 2's first frame is exactly the second clip's first frame
    decoded = _frames(out)
    assert np.array_equal(decoded[48], _frames(clips["b"])[0])


def test_std_then_pro_is_re_encoded_at_the_larger_size(clips: dict[str, Path], tmp_path: Path) -> None:
    infos = [frames_cut.probe(clips["b"]), frames_cut.probe(clips["p"])]
    assert frames_cut.plan(infos) == frames_cut.ENCODE
    out = tmp_path / "mixed.mp4"
    joined = frames_cut.join([clips["b"], clips["p"]], out)
    assert joined.mode == frames_cut.ENCODE and (joined.width, joined.height) == (1080, 1920)
    info = frames_cut.probe(out)
    assert (info.codec, info.width, info.height) == ("h264", 1080, 1920)
    count, seconds = _decoded_seconds(out)
    assert count == 48 and seconds == pytest.approx(2.0, abs=0.05)


def test_sound_is_copied_when_every_shot_has_the_same_track(clips: dict[str, Path], tmp_path: Path) -> None:
    joined = frames_cut.join([clips["s"], clips["s"]], tmp_path / "ss.mp4")
    assert joined.mode == frames_cut.COPY and joined.audio
    with av.open(str(tmp_path / "ss.mp4")) as c:
        assert c.streams.audio and sum(f.samples for f in c.decode(audio=0)) >= 2 * 48_000 * 0.95


def test_a_re_encode_keeps_each_shots_sound_in_its_place(clips: dict[str, Path], tmp_path: Path) -> None:
    """A shot without sound between two with it: a copy would drop the sound, so the shots are re-encoded
    and the track follows the picture: sound under the first and last shot, silence under the middle."""
    assert frames_cut.plan([frames_cut.probe(clips[n]) for n in ("s", "b", "s")]) == frames_cut.ENCODE
    out = tmp_path / "sbs.mp4"
    joined = frames_cut.join([clips["s"], clips["b"], clips["s"]], out)
    assert joined.mode == frames_cut.ENCODE and joined.audio
    with av.open(str(out)) as c:
        track = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
        rate = c.streams.audio[0].rate
    assert rate == 48_000 and track.shape[1] == pytest.approx(3 * 48_000, abs=2_048)  # AAC's padding
    loudness = [float(np.abs(track[:, i * rate + 2_048:(i + 1) * rate - 2_048]).mean()) for i in range(3)]
    assert loudness[0] > 0.01 and loudness[2] > 0.01 and loudness[1] < 1e-4, loudness
    assert _decoded_seconds(out)[1] == pytest.approx(3.0, abs=0.05)


# ------------------------------------------------------------------ chains: services on a real ledger
def _services(tmp_path: Path, gateway_url: str = "http://127.0.0.1:9", sign_in: bool = False) -> Any:
    env = {"PLAYGROUND_DATA": str(tmp_path), "TOAPIS_BASE_URL": gateway_url}
    settings = load_settings(env=env)
    if sign_in:  # as an OIDC provider would set it (tests/unit/test_owners.py checks the settings path)
        settings = dataclasses.replace(settings, sign_in=True)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    client = GatewayClient(gateway_url, TEST_KEY)
    archive = Archive(tmp_path / "archive")
    return SimpleNamespace(settings=settings, ledger=ledger, client=client, archive=archive,
                           worker=Worker(ledger, client, archive), local_gateway=None)


def _archived_run(svc: Any, clip: Path | None, *, mode: str = "std", duration: int = 5, aspect: str = "16:9",
                  owner: str | None = None, prompt: str = "a kite over a beach") -> str:
    run_id = Ledger.new_id()
    now = time.time() - 60
    request = VideoRequest(prompt=prompt, mode=mode, duration=duration, aspect_ratio=aspect)
    row = run_row(run_id, request, 0.18, now=now, state="completed", task_id=f"task_{run_id[:12]}")
    row.update(submitted_at=now + 1, completed_at=now + 20, next_poll_at=None, owner=owner)
    if clip is not None:
        key = f"videos/{Ledger.new_id()}.mp4"
        svc.archive.storage.put_file(key, clip)
        row.update(video_path=key, archived_at=now + 25)
    bulk_insert(svc.ledger, [row])
    return run_id


@pytest.fixture
def svc(tmp_path: Path) -> Any:
    s = _services(tmp_path)
    yield s
    s.ledger.close()


def test_hostile_frame_times_and_runs_without_an_archive_are_refused_in_words(svc: Any,
                                                                             clips: dict[str, Path]) -> None:
    run = svc.ledger.get(_archived_run(svc, clips["a"], duration=2))
    for at in (-0.5, 2.5, 1e9, float("nan"), "x"):
        with pytest.raises(chains.ChainError, match="frame"):
            chains.cut_frame(svc, run, at)  # type: ignore[arg-type]
    bare = svc.ledger.get(_archived_run(svc, None))
    with pytest.raises(chains.ChainError, match="no archived video yet"):
        chains.cut_frame(svc, bare, 0.0)
    broken_key = "videos/broken_video_token_1.mp4"
    svc.archive.storage.put(broken_key, [b"\x00\x00\x00\x18ftypmp42" + bytes(2000)])
    broken = svc.ledger.get(_archived_run(svc, None))
    svc.ledger._update(broken.run_id, video_path=broken_key)
    with pytest.raises(chains.ChainError, match="cannot be read"):
        chains.cut_frame(svc, svc.ledger.get(broken.run_id), 0.0)
    # nothing was written by any refusal
    assert svc.ledger.count_runs() == 3 and svc.ledger.chain_path(run.run_id) == []


def test_another_users_run_cannot_be_continued_under_sign_in(tmp_path: Path, clips: dict[str, Path]) -> None:
    svc = _services(tmp_path, sign_in=True)
    try:
        theirs = svc.ledger.get(_archived_run(svc, clips["a"], duration=2, owner="bob"))
        alice = Actor(owner="alice", name="Alice", signed_in=True)
        with pytest.raises(chains.ChainError, match="so you cannot continue it"):
            chains.cut_frame(svc, theirs, 1.0, actor=alice)
        with pytest.raises(chains.ChainError, match="so you cannot continue it"):
            chains.prepare(svc, theirs, 1.0, FIRST, actor=alice)
        mine = svc.ledger.get(_archived_run(svc, clips["a"], duration=2, owner="alice"))
        assert chains.cut_frame(svc, mine, 1.0, actor=alice).width == 1280
    finally:
        svc.ledger.close()


def test_next_request_keeps_the_settings_and_the_rules() -> None:
    parent = VideoRequest(prompt="p", mode="pro", duration=15, aspect_ratio="9:16", negative_prompt="blur",
                          watermark=True, image_urls=("https://x/a.png", "https://x/b.png"))
    req, notes = chains.next_request(parent, "https://x/cut.jpg", FIRST)
    assert req.image_urls == ("https://x/cut.jpg",) and req.effective_duration == 10
    assert (req.mode, req.aspect_ratio, req.negative_prompt, req.watermark) == ("pro", "9:16", "blur", True)
    assert any("at most 10 s" in n for n in notes) and any("last frame was left out" in n for n in notes)
    req, _ = chains.next_request(parent, "https://x/cut.jpg", LAST, "16:9")
    assert req.image_urls == ("https://x/a.png", "https://x/cut.jpg") and req.aspect_ratio == "16:9"
    _, notes = chains.next_request(VideoRequest(prompt="p"), "https://x/cut.jpg", LAST)
    assert any("needs a first frame" in n for n in notes)


def test_prepare_uploads_the_full_size_frame_once_and_links_only_a_run_that_uses_it(
        tmp_path: Path, clips: dict[str, Path], local_gateway: Any) -> None:
    svc = _services(tmp_path, local_gateway.url)
    try:
        first = svc.ledger.get(_archived_run(svc, clips["a"], duration=2))
        last_time = chains.frame_times(svc, first)[-1]
        prepared = chains.prepare(svc, first, last_time, FIRST)
        again = chains.prepare(svc, first, last_time, FIRST)
        assert prepared.url == again.url and len(local_gateway.requests("upload")) == 1  # deduped by hash
        assert prepared.request.image_urls == (prepared.url,)
        assert prepared.frame_time == pytest.approx(last_time)
        uploaded = next(svc.archive.root.glob("uploads/*.jpg"))
        assert Image.open(uploaded).size == (1280, 720)
        # a 9:16 next shot: the frame is cropped to fit (frame_fix), still meeting every image rule
        tall = chains.prepare(svc, first, 0.0, FIRST, aspect="9:16")
        assert tall.request.aspect_ratio == "9:16" and any("cropped" in n for n in tall.notes)
        pending = {"parent_id": first.run_id, "url": prepared.url, "role": FIRST, "frame_time": last_time}
        other = VideoRequest(prompt="p", image_urls=("https://elsewhere/x.png",))
        assert chains.link_if_used(svc, "run-without-the-frame", pending, other) is None
        link = chains.link_if_used(svc, "next-shot-run-id", pending, prepared.request)
        assert link is not None and link.position == 2 and link.parent_run_id == first.run_id
        assert chains.link_if_used(svc, "next-shot-run-id", {**pending, "frame_time": 0.0},
                                   prepared.request).frame_time == pytest.approx(last_time)  # first wins
    finally:
        svc.ledger.close()


def test_order_follows_roles() -> None:
    from lib.ledger import ChainLink

    path = [ChainLink("c", "b", 3, 1.0, LAST), ChainLink("b", "a", 2, 2.0, FIRST)]
    assert chains.order("c", path) == ["a", "c", "b"]
    assert chains.order("b", path[1:]) == ["a", "b"] and chains.order("a", []) == ["a"]


def _chain(svc: Any, clips: list[Path]) -> list[str]:
    ids = [_archived_run(svc, clips[0], duration=2)]
    for clip in clips[1:]:
        ids.append(_archived_run(svc, clip, duration=1))
        svc.ledger.link_shot(ids[-1], ids[-2], 1.9, FIRST)
    return ids


def test_export_copies_a_matching_chain_once_and_a_second_press_reuses_it(svc: Any,
                                                                          clips: dict[str, Path]) -> None:
    ids = _chain(svc, [clips["a"], clips["b"], clips["b"]])
    runs, links = chains.shots(svc.ledger, ids[-1])
    assert [r.run_id for r in runs] == ids and links[ids[2]].position == 3
    seq = svc.ledger.sequence_for(ids[-1])
    assert svc.ledger.sequence_for(ids[-1]).sequence_id == seq.sequence_id  # one id per sequence
    made = chains.export(svc, seq.sequence_id)
    assert made.mode == frames_cut.COPY and not made.reused and made.duration == pytest.approx(4.0, abs=0.05)
    path = svc.archive.resolve(made.video_path)
    assert _decoded_seconds(path)[1] == pytest.approx(4.0, abs=0.05)
    videos = sorted(svc.archive.root.glob("videos/*.mp4"))
    again = chains.export(svc, seq.sequence_id)
    assert again.reused and again.video_path == made.video_path
    assert sorted(svc.archive.root.glob("videos/*.mp4")) == videos  # no second file
    subject = unfurl.find(svc.ledger, seq.sequence_id)
    assert subject is not None and subject.kind == "sequence" and subject.video_key == made.video_path
    assert subject.share_path == f"/sequence?id={seq.sequence_id}" and "3 shots" in subject.description
    page = unfurl.link_page(subject, "https://play.example.com")  # what a link-preview bot reads at /s/<id>
    assert f'content="https://play.example.com/archive/{made.video_path}"' in page
    assert f"/sequence?id={seq.sequence_id}" in page and "Sequence: a kite over a beach" in page
    assert not any(r.run_id in page for r in runs)  # the shots' run ids (their own share links) stay out


def test_export_re_encodes_std_then_pro_and_refuses_an_unready_sequence(svc: Any,
                                                                        clips: dict[str, Path]) -> None:
    ids = _chain(svc, [clips["b"], clips["p"]])
    seq = svc.ledger.sequence_for(ids[-1])
    made = chains.export(svc, seq.sequence_id)
    assert made.mode == frames_cut.ENCODE
    assert frames_cut.probe(svc.archive.resolve(made.video_path)).height == 1920
    lonely = svc.ledger.sequence_for(_archived_run(svc, clips["a"], duration=2))
    with pytest.raises(chains.ChainError, match="at least two shots"):
        chains.export(svc, lonely.sequence_id)
    unsaved = _archived_run(svc, None, duration=1)
    svc.ledger.link_shot(unsaved, ids[-1], 0.5, FIRST)
    with pytest.raises(chains.ChainError, match="Shot 3 is not saved yet"):
        chains.export(svc, svc.ledger.sequence_for(unsaved).sequence_id)
    with pytest.raises(chains.ChainError, match="does not match any sequence"):
        chains.export(svc, "no-such-sequence-id")


def test_an_upload_failure_is_said_in_words_and_nothing_is_lost(tmp_path: Path, clips: dict[str, Path],
                                                                  local_gateway: Any) -> None:
    svc = _services(tmp_path, local_gateway.url)
    try:
        run = svc.ledger.get(_archived_run(svc, clips["a"], duration=2))
        local_gateway.control("faults", endpoint="upload", status=500, count=5)
        with pytest.raises(chains.ChainError, match="The upload failed") as refused:
            chains.prepare(svc, run, 1.0, FIRST)
        assert "Nothing was changed" in str(refused.value) and "test-key" not in str(refused.value)
        assert svc.ledger.count_runs() == 1 and not list(svc.archive.root.glob("uploads/*"))
        local_gateway.control("reset")  # the gateway is back: the same press now works
        assert chains.prepare(svc, run, 1.0, FIRST).url
    finally:
        svc.ledger.close()


def test_the_chain_tables_on_sqlite_and_postgresql(ledger: Ledger) -> None:
    """Links, the bounded walk, one sequence id per last shot and the export's compare-and-set."""
    ids = [Ledger.new_id() for _ in range(4)]
    for child, parent in zip(ids[1:], ids, strict=False):
        ledger.link_shot(child, parent, 4.958, FIRST)
    assert ledger.link_shot(ids[1], ids[0], 0.0, LAST).role == FIRST  # the first link of a run wins
    assert [lk.position for lk in ledger.chain_path(ids[3])] == [4, 3, 2]
    assert len(ledger.chain_path(ids[3], limit=2)) == 1 and ledger.continued(ids[0])
    assert not ledger.continued(ids[3]) and ledger.chain_link(ids[0]) is None
    with pytest.raises(ValueError):
        ledger.link_shot(ids[0], ids[0], 0.0, FIRST)
    seq = ledger.sequence_for(ids[3])
    assert ledger.sequence_for(ids[3]) == seq and ledger.sequence(seq.sequence_id) == seq
    assert ledger.sequence("no-such-sequence") is None
    kept = {"signature": "s1", "video_path": "videos/a.mp4", "poster_path": None, "duration": 15.0,
            "mode": "copy"}
    assert ledger.set_sequence_export(seq.sequence_id, **kept)
    assert not ledger.set_sequence_export(seq.sequence_id, **{**kept, "video_path": "videos/b.mp4"})
    assert ledger.sequence(seq.sequence_id).video_path == "videos/a.mp4"  # a racing second export loses
    assert ledger.set_sequence_export(seq.sequence_id, **{**kept, "signature": "s2"})  # new shots: replaced
