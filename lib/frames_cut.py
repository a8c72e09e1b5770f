"""Frames out of archived MP4s, and several MP4s into one: PyAV only (no ffmpeg process, no streamlit).

Why server-side and at full resolution: "Continue from this frame" sends the frame to the gateway as the
next shot's first (or last) frame, and a browser screenshot of a scaled `<video>` would be smaller and
re-compressed. The frame is decoded from the archived file itself, exactly at the chosen time.

Why two ways to join: when every shot has the same codec, size, frame rate, time base, pixel format and
codec headers (extradata), the packets can be copied one after another with shifted timestamps: no
quality loss, a fraction of a second. Otherwise (std 720p after pro 1080p, a 9:16 shot after a 16:9 one,
a shot without sound next to one with it) every frame is decoded, fitted into the largest shot's size with
black bars where the shape differs, and encoded again with libx264 at one frame rate
(docs/video-notes.md has the measured encoder settings); the sound, when any shot has it, is re-encoded
beside it (AAC), each shot's own under its own picture.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

MAX_FRAMES = 2_000          # frame times listed for the scrubber (a 15 s clip at 60 fps is 900)
JPEG_QUALITY = 95           # the cut frame: near-lossless, far below the 10 MB image limit at 1080p
ENCODE_OPTIONS = {"preset": "veryfast", "crf": "23", "g": "48"}
COPY, ENCODE = "copy", "encode"


class VideoUnreadable(ValueError):
    """The MP4 cannot be read (truncated, not a video, no video stream); str() is the words."""


@dataclass(frozen=True)
class VideoInfo:
    """What decides whether shots can be joined by stream copy, and what a scrubber needs."""

    codec: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    pix_fmt: str
    extradata: str          # sha256 of the codec headers (SPS/PPS for H.264)
    duration: float         # seconds of video
    audio: str | None       # "<codec> <rate> <layout>" of the first audio stream, or None

    def copy_key(self) -> tuple[object, ...]:
        """Equal keys: the packets of these files may follow one another in one stream unchanged."""
        return (self.codec, self.width, self.height, self.fps, self.time_base, self.pix_fmt, self.extradata)


@dataclass(frozen=True)
class Cut:
    """One frame, cut at full resolution: JPEG bytes, its size, and the time it really shows."""

    data: bytes
    width: int
    height: int
    time: float


@dataclass(frozen=True)
class Joined:
    mode: str               # COPY | ENCODE
    duration: float         # seconds of video written
    width: int
    height: int
    audio: bool             # whether a sound track was kept


def _open(path: str | os.PathLike[str]) -> av.container.InputContainer:
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoUnreadable(f"The archived video cannot be read ({type(exc).__name__}).") from None
    if not container.streams.video:
        container.close()
        raise VideoUnreadable("The archived file holds no video stream.")
    return container


def _video_duration(container: av.container.InputContainer) -> float:
    """Seconds of the video stream: from the stream header, else the container's, else by demuxing."""
    stream = container.streams.video[0]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """The video's codec parameters and duration; VideoUnreadable in words when it cannot be read."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        cc = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        audio = None
        if container.streams.audio:
            a = container.streams.audio[0].codec_context
            audio = f"{a.name} {a.sample_rate} {a.layout.name if a.layout else ''}"
        return VideoInfo(
            codec=cc.name, width=cc.width, height=cc.height, fps=Fraction(rate),
            time_base=Fraction(stream.time_base or Fraction(1, 90000)), pix_fmt=str(cc.pix_fmt or ""),
            extradata=hashlib.sha256(bytes(cc.extradata or b"")).hexdigest(),
            duration=_video_duration(container), audio=audio,
        )
    except av.FFmpegError as exc:
        raise VideoUnreadable(f"The archived video cannot be read ({type(exc).__name__}).") from None
    finally:
        container.close()


def frame_times(path: str | os.PathLike[str], limit: int = MAX_FRAMES) -> list[float]:
    """The presentation time of every frame, in order (packets only: nothing is decoded)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        times: list[float] = []
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            times.append(float(packet.pts * packet.time_base))
            if len(times) >= limit:
                break
    except av.FFmpegError as exc:
        raise VideoUnreadable(f"The archived video cannot be read ({type(exc).__name__}).") from None
    finally:
        container.close()
    times.sort()
    if not times:
        raise VideoUnreadable("The archived video holds no frames.")
    start = times[0]
    return [round(t - start, 6) for t in times]  # the scrubber counts from the first frame shown


def cut(path: str | os.PathLike[str], at: float) -> Cut:
    """The frame shown at `at` seconds (from the first frame), decoded at full resolution, as JPEG.

    Seeks to the key frame before `at` and decodes forward, keeping the last frame whose time is at or
    before `at` (the frame a player shows then). A time past the end gives the last frame, so callers
    check the range first (lib/chains.py refuses it in words).
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        base = stream.time_base or Fraction(1, 90000)
        start = float(stream.start_time * base) if stream.start_time is not None else 0.0
        target = start + max(0.0, float(at))
        container.seek(int(target / base), stream=stream, backward=True, any_frame=False)
        chosen: av.VideoFrame | None = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if chosen is not None and frame.time > target + 1e-6:
                break
            chosen = frame
        if chosen is None:
            raise VideoUnreadable("No frame could be decoded at that time.")
        image = chosen.to_image()  # RGB at the stream's full width and height
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=JPEG_QUALITY)
        return Cut(out.getvalue(), image.width, image.height, round(float(chosen.time) - start, 6))
    except av.FFmpegError as exc:
        raise VideoUnreadable(f"The archived video cannot be decoded ({type(exc).__name__}).") from None
    finally:
        container.close()


def plan(infos: Sequence[VideoInfo]) -> str:
    """COPY when every shot's packets (video and sound) can follow the first's unchanged, else ENCODE.
    Shots whose sound differs (one with a track, one without) are re-encoded: a copy would have to drop
    the sound, and the encode keeps it, silent where a shot has none."""
    same_video = len({i.copy_key() for i in infos}) == 1
    same_sound = len({i.audio for i in infos}) == 1
    return COPY if same_video and same_sound else ENCODE


def join(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Joined:
    """Write the shots one after another into `out` (an MP4 with faststart); the mode is plan()'s."""
    if not paths:
        raise ValueError("nothing to join")
    infos = [probe(p) for p in paths]
    mode = plan(infos)
    target = Path(out)
    try:
        if mode == COPY:
            audio = infos[0].audio is not None
            duration = _copy(paths, target, audio=audio)
            return Joined(COPY, duration, infos[0].width, infos[0].height, audio)
        width, height, fps = _target(infos)
        audio = any(i.audio is not None for i in infos)
        duration = _encode(paths, target, width, height, fps, audio=audio)
        return Joined(ENCODE, duration, width, height, audio)
    except av.FFmpegError as exc:
        target.unlink(missing_ok=True)
        raise VideoUnreadable(f"The shots could not be joined ({type(exc).__name__}).") from None


def _output(path: Path) -> av.container.OutputContainer:
    return av.open(str(path), mode="w", format="mp4", container_options={"movflags": "+faststart"})


def _copy(paths: Sequence[str | os.PathLike[str]], out: Path, *, audio: bool) -> float:
    """Stream copy: each shot's packets, their timestamps shifted by the shots before it."""
    output = _output(out)
    try:
        v_out = a_out = None
        offsets = {"video": 0, "audio": 0}
        for path in paths:
            container = _open(path)
            try:
                v_in = container.streams.video[0]
                a_in = container.streams.audio[0] if audio and container.streams.audio else None
                if v_out is None:
                    v_out = output.add_stream_from_template(v_in)
                    if a_in is not None:
                        a_out = output.add_stream_from_template(a_in)
                base: dict[str, int] = {}  # each kind's first timestamp in this shot (AAC starts below 0)
                ends = {"video": 0, "audio": 0}
                streams = [s for s in (v_in, a_in) if s is not None]
                for packet in container.demux(*streams):
                    stamp = packet.dts if packet.dts is not None else packet.pts
                    if stamp is None:
                        continue  # the demuxer's empty flush packet
                    kind = "video" if packet.stream is v_in else "audio"
                    first = base.setdefault(kind, stamp)
                    shift = offsets[kind] - first
                    end = (packet.pts if packet.pts is not None else stamp) + (packet.duration or 0)
                    ends[kind] = max(ends[kind], end - first)
                    if packet.pts is not None:
                        packet.pts += shift
                    if packet.dts is not None:
                        packet.dts += shift
                    target = v_out if kind == "video" else a_out
                    assert target is not None
                    packet.stream = target
                    output.mux(packet)
                offsets["video"] += ends["video"]
                offsets["audio"] += ends["audio"]
            finally:
                container.close()
        assert v_out is not None
        return float(offsets["video"] * v_out.time_base) if v_out.time_base else 0.0
    finally:
        output.close()


def _target(infos: Sequence[VideoInfo]) -> tuple[int, int, Fraction]:
    """The largest shot's size (no pro shot loses detail) and the highest frame rate."""
    biggest = max(infos, key=lambda i: (i.width * i.height, i.width))
    fps = max(i.fps for i in infos)
    return biggest.width // 4 * 4, biggest.height // 4 * 4, fps.limit_denominator(1001)


def _fit(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """The frame scaled to fit width×height (shape kept), centred on black: yuv420p."""
    scale = min(width / frame.width, height / frame.height)
    # multiples of 4: the chroma planes then fill whole rows of the stacked yuv420p array
    w = min(width, max(4, int(frame.width * scale) // 4 * 4))
    h = min(height, max(4, int(frame.height * scale) // 4 * 4))
    small = frame.reformat(width=w, height=h, format="yuv420p")
    if (w, h) == (width, height):
        return small
    planes = small.to_ndarray()  # (h * 3 / 2, w): Y, then U and V as quarter planes
    y = planes[:h]
    u = planes[h: h + h // 4].reshape(h // 2, w // 2)
    v = planes[h + h // 4:].reshape(h // 2, w // 2)
    canvas_y = np.full((height, width), 16, np.uint8)
    canvas_u = np.full((height // 2, width // 2), 128, np.uint8)
    canvas_v = np.full((height // 2, width // 2), 128, np.uint8)
    top, left = (height - h) // 4 * 2, (width - w) // 4 * 2
    canvas_y[top: top + h, left: left + w] = y
    canvas_u[top // 2: top // 2 + h // 2, left // 2: left // 2 + w // 2] = u
    canvas_v[top // 2: top // 2 + h // 2, left // 2: left // 2 + w // 2] = v
    stacked = np.concatenate([canvas_y, canvas_u.reshape(-1, width), canvas_v.reshape(-1, width)])
    return av.VideoFrame.from_ndarray(stacked, format="yuv420p")


def _encode(paths: Sequence[str | os.PathLike[str]], out: Path, width: int, height: int,
            fps: Fraction, *, audio: bool = False) -> float:
    """Re-encode: every shot at one size and frame rate; each shot keeps its own length. With `audio`,
    one AAC track follows the picture shot by shot (silence under a shot that has none)."""
    output = _output(out)
    try:
        stream = output.add_stream("libx264", rate=fps, options=dict(ENCODE_OPTIONS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1) / fps
        stream.codec_context.thread_type = "FRAME"
        sound = _Sound(output) if audio else None
        written = 0  # output frames so far
        for path in paths:
            container = _open(path)
            try:
                v_in = container.streams.video[0]
                v_in.thread_type = "AUTO"
                length = _video_duration(container)
                v_base = v_in.time_base or Fraction(1, 90000)
                start = float(v_in.start_time * v_base) if v_in.start_time is not None else 0.0
                frames = max(1, round(length * fps))
                n = 0
                last: av.VideoFrame | None = None
                for frame in container.decode(v_in):
                    t = (float(frame.time) - start) if frame.time is not None else n / float(fps)
                    # every output slot whose time has come shows the newest frame up to it
                    while n < frames and n / float(fps) < t - 1e-6 and last is not None:
                        written = _put(output, stream, last, written)
                        n += 1
                    last = _fit(frame, width, height)
                while n < frames and last is not None:
                    written = _put(output, stream, last, written)
                    n += 1
            finally:
                container.close()
            if sound is not None:
                sound.add(path, until=written / float(fps))
        for packet in stream.encode(None):
            output.mux(packet)
        if sound is not None:
            sound.close()
        return written / float(fps)
    finally:
        output.close()


def _put(output: av.container.OutputContainer, stream: av.video.stream.VideoStream, frame: av.VideoFrame,
         index: int) -> int:
    # one frame object per slot: the encoder may hold on to the ones it was given; no frame time_base,
    # so the pts counts in the codec's own 1/fps
    fresh = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
    fresh.pts = index
    for packet in stream.encode(fresh):
        output.mux(packet)
    return index + 1


SOUND_RATE = 48_000   # the track of a re-encoded join: AAC, 48 kHz stereo (what the gateway's clips carry)
_SOUND_FRAME = 1024   # AAC's samples per frame


class _Sound:
    """The sound track of a re-encode, written shot by shot: each shot's sound (resampled) fills exactly
    its picture's time, cut or padded with silence, so the picture and sound never drift apart."""

    def __init__(self, output: av.container.OutputContainer) -> None:
        self.output = output
        self.stream = output.add_stream("aac", rate=SOUND_RATE, layout="stereo")
        self.stream.time_base = Fraction(1, SOUND_RATE)
        self.pending = np.zeros((2, 0), np.float32)  # samples not yet a whole AAC frame
        self.sent = 0                                 # samples encoded so far

    def add(self, path: str | os.PathLike[str], *, until: float) -> None:
        """The shot at `path`, up to `until` seconds from the start of the whole file."""
        need = round(until * SOUND_RATE) - self.sent - self.pending.shape[1]
        if need <= 0:
            return
        self._push(_samples(path, need))

    def close(self) -> None:
        if self.pending.shape[1]:
            self._encode(self.pending)  # AAC takes a short last frame
            self.pending = np.zeros((2, 0), np.float32)
        for packet in self.stream.encode(None):
            self.output.mux(packet)

    def _push(self, samples: np.ndarray) -> None:
        data = np.concatenate([self.pending, samples], axis=1)
        whole = data.shape[1] // _SOUND_FRAME * _SOUND_FRAME
        for start in range(0, whole, _SOUND_FRAME):
            self._encode(data[:, start:start + _SOUND_FRAME])
        self.pending = data[:, whole:]

    def _encode(self, block: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="stereo")
        frame.sample_rate = SOUND_RATE
        frame.time_base = Fraction(1, SOUND_RATE)
        frame.pts = self.sent
        self.sent += block.shape[1]
        for packet in self.stream.encode(frame):
            self.output.mux(packet)


def _samples(path: str | os.PathLike[str], count: int) -> np.ndarray:
    """`count` samples of the file's first sound track as 48 kHz stereo float (2 × count); silence where
    the file has no track or its track is shorter."""
    out = np.zeros((2, count), np.float32)
    container = _open(path)
    try:
        if not container.streams.audio:
            return out
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SOUND_RATE)
        at = 0
        for frame in container.decode(container.streams.audio[0]):
            for part in resampler.resample(frame):
                data = part.to_ndarray()
                take = min(data.shape[1], count - at)
                if take <= 0:
                    return out
                out[:, at:at + take] = data[:, :take]
                at += take
    finally:
        container.close()
    return out
