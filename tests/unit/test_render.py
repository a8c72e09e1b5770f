"""The renderer without the server, the task clock, and the bench script's quick mode."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from lib.local_gateway import clock
from lib.local_gateway.render import RenderCancelled, _font, _wrap, render_clip

ROOT = Path(__file__).resolve().parents[2]


def frames_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_one_second_clip_has_exact_size_frames_and_rate(tmp_path):
    out = tmp_path / "a.mp4"
    res = render_clip(
        out, prompt="a quick check", mode="std", duration=1, aspect="9:16", poster_path=tmp_path / "a.jpg"
    )
    assert (res.width, res.height, res.frames) == (720, 1280, 24)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (s.codec_context.width, s.codec_context.height) == (720, 1280)
        assert float(s.average_rate) == 24.0
        assert sum(1 for _ in c.decode(s)) == 24
    assert out.read_bytes()[4:8] == b"ftyp"
    assert b"moov" in out.read_bytes()[:4096], "faststart: the index comes first so playback starts at once"
    assert not list(tmp_path.glob("*.part"))


def test_poster_is_frame_zero(tmp_path):
    out, poster = tmp_path / "p.mp4", tmp_path / "p.jpg"
    render_clip(out, prompt="poster check", mode="std", duration=1, aspect="1:1", poster_path=poster)
    img = np.asarray(Image.open(poster).convert("RGB"), dtype=np.float32)
    first, later = (f.astype(np.float32) for f in frames_rgb(out)[::23][:2])
    assert img.shape == (720, 720, 3)
    assert np.abs(img - first).mean() < 6
    assert np.abs(img - first).mean() < np.abs(img - later).mean()


def test_deterministic_and_seeded_by_the_prompt(tmp_path):
    kw = {"mode": "std", "duration": 1, "aspect": "1:1"}
    render_clip(tmp_path / "a.mp4", prompt="same words", **kw)
    render_clip(tmp_path / "b.mp4", prompt="same words", **kw)
    render_clip(tmp_path / "c.mp4", prompt="other words", **kw)
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.mp4", "b.mp4", "c.mp4"))
    assert a == b
    assert a != c


def test_the_picture_moves(tmp_path):
    render_clip(tmp_path / "m.mp4", prompt="motion", mode="std", duration=2, aspect="16:9")
    frames = frames_rgb(tmp_path / "m.mp4")
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 2


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), color).save(buf, format="PNG")
    return buf.getvalue()


def test_starts_on_the_first_image_and_ends_on_the_last(tmp_path):
    out = tmp_path / "i.mp4"
    first = _png((230, 30, 30))
    last_path = tmp_path / "last.png"
    last_path.write_bytes(_png((20, 40, 230)))
    render_clip(
        out,
        prompt="red to blue",
        mode="std",
        duration=2,
        aspect="16:9",
        first_image=first,
        last_image=last_path,
    )
    frames = frames_rgb(out)
    start = frames[0][200:520, 300:980].reshape(-1, 3).mean(axis=0)
    end = frames[-1][200:520, 300:980].reshape(-1, 3).mean(axis=0)
    assert start[0] > 190 and start[2] < 70, start
    assert end[2] > 190 and end[0] < 70, end


def test_cancel_leaves_no_file(tmp_path):
    stop = threading.Event()
    stop.set()
    with pytest.raises(RenderCancelled):
        render_clip(tmp_path / "x.mp4", prompt="never", mode="std", duration=5, aspect="16:9", cancel=stop)
    assert list(tmp_path.iterdir()) == []


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(KeyError):
        render_clip(tmp_path / "x.mp4", prompt="p", mode="4k", duration=5, aspect="16:9")


def test_long_prompt_caption_is_cut_to_three_lines():
    font = _font(30)
    lines = _wrap("word " * 600, font, 600, 3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(font.getlength(line) <= 600 for line in lines)
    assert _wrap("x" * 300, font, 200, 3)[0] != "x" * 300, "an unbreakable word is split"


# -- clock ----------


def test_timeline_lengths():
    assert clock.Timeline.for_task("std", 5, 1.0).total == pytest.approx(15.0)
    assert clock.Timeline.for_task("pro", 15, 1.0).total == pytest.approx(57.0)
    assert clock.Timeline.for_task("std", 10, 2.0).total == pytest.approx(13.5)
    tl = clock.Timeline.for_task("std", 5, 1.0)
    assert tl.queued_until == pytest.approx(15.0 * 0.15)


def test_reading_moves_forward_and_needs_the_file():
    tl = clock.Timeline.for_task("std", 5, 1.0)
    readings = [
        clock.read("video_X", 1000.0, 1000.0 + t / 10, tl, rendered_at=1001.0, fail=False)
        for t in range(0, 200)
    ]
    assert readings[0].status == "queued" and readings[0].progress == 0
    progress = [r.progress for r in readings]
    assert progress == sorted(progress)
    running = [r.progress for r in readings if r.status == "in_progress"]
    assert running[0] >= 1 and max(running) <= 99 and len(set(running)) > 30
    done = clock.read("video_X", 1000.0, 1016.0, tl, rendered_at=1001.0, fail=False)
    assert (done.status, done.progress, done.finished_at) == ("completed", 100, 1015.0)
    late = clock.read("video_X", 1000.0, 1030.0, tl, rendered_at=None, fail=False)
    assert late.status == "in_progress" and late.progress <= 99
    slow = clock.read("video_X", 1000.0, 1030.0, tl, rendered_at=1020.0, fail=False)
    assert slow.finished_at == 1020.0


def test_progress_is_monotone_for_many_tasks():
    for n in range(50):
        values = [clock.running_progress(f"video_{n}", f / 500) for f in range(501)]
        assert values == sorted(values) and values[0] == 1 and values[-1] == 99


def test_failure_happens_half_way():
    tl = clock.Timeline.for_task("std", 5, 1.0)
    assert clock.read("t", 0.0, 7.0, tl, rendered_at=None, fail=True).status == "in_progress"
    failed = clock.read("t", 0.0, 7.6, tl, rendered_at=None, fail=True)
    assert (failed.status, failed.progress) == ("failed", 0)


# -- bench ----------


def test_bench_quick_runs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "render_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "std  5 s 16:9" in proc.stdout and "ratio" in proc.stdout
