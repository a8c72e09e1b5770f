"""Synthetic clip renderer: a real H.264 MP4 drawn from the prompt, fast enough to keep up with a demo.

Why it is built this way (see docs/video-notes.md): x264 is the floor, so a frame must cost far less
than encoding it (goal: render <= 1.3x encoding the same frames, bench/render_bench.py). Everything that
can be is computed once per clip, in YUV: a drifting gradient canvas (a frame is a slice of it), soft
light sprites and their position in every frame, and the caption and label panels, which are blended
once and then stay put. A frame is then a few rectangle copies around the panels and one in-place uint8
add per light and plane, written into a small pool of reused encoder frames, while a worker thread draws
frame n+1 as x264 (which releases the GIL) encodes frame n. With first/last images the base cross-fades
and pans under the panels, so they are blended per frame (still only uint16 ops on their rectangles).
Everything is seeded by a hash of the request, so the same request gives the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

log = logging.getLogger(__name__)

FPS = 24
RESOLUTION: dict[tuple[str, str], tuple[int, int]] = {
    ("std", "16:9"): (1280, 720),
    ("std", "9:16"): (720, 1280),
    ("std", "1:1"): (720, 720),
    ("pro", "16:9"): (1920, 1080),
    ("pro", "9:16"): (1080, 1920),
    ("pro", "1:1"): (1080, 1080),
}
ENCODER_OPTIONS = {"preset": "ultrafast", "crf": "28", "g": "48"}
# Input images over this many pixels are refused from their header, before decoding: a few hundred KB of
# PNG can promise 13,000 × 13,000 px (over 600 MB once decoded). Pillow's own guard is set to match, so
# Image.open itself refuses anything over twice this.
MAX_IMAGE_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
LABEL = "synthetic · local gateway"

# Alpha is kept in 7 bits so that colour*alpha and value*(128-alpha) both fit in uint16.
_A = 128
_FADE_LEVELS = 32  # overlays fade in/out around first/last images in this many steps
_KR, _KB = 0.2126, 0.0722  # BT.709, the colour space players assume for HD
_PREFETCH = 2  # frames composed ahead of the encoder (pool = this + the one being encoded)
_WHITE_YUV = (230.7, 128.0, 128.0)  # RGB (250, 250, 250): the caption's text colour
# FreeType faces are not thread-safe and fonts are cached per process, while two renders may run at once.
_TEXT_LOCK = threading.Lock()

ImageSource = bytes | str | os.PathLike | Image.Image
Planes = tuple[np.ndarray, np.ndarray, np.ndarray]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in luma pixels, all even


class RenderCancelled(Exception):
    """The render was stopped (gateway shutting down); nothing was written."""


class ImageTooLarge(ValueError):
    """An input image whose header promises more than MAX_IMAGE_PIXELS; nothing was decoded."""


@dataclass(frozen=True)
class RenderResult:
    path: Path
    poster_path: Path | None
    width: int
    height: int
    frames: int
    fps: int
    elapsed: float


def size_for(mode: str, aspect: str) -> tuple[int, int]:
    """(width, height) the request implies; KeyError for an unknown mode/aspect."""
    return RESOLUTION[(mode, aspect)]


def render_clip(
    out_path: str | os.PathLike,
    *,
    prompt: str,
    mode: str,
    duration: int,
    aspect: str,
    first_image: ImageSource | None = None,
    last_image: ImageSource | None = None,
    fps: int = FPS,
    poster_path: str | os.PathLike | None = None,
    cancel: threading.Event | None = None,
    audio: bool = False,
) -> RenderResult:
    """Render one clip to `out_path` (written atomically) and optionally its poster (frame 0, JPEG).

    Setting `cancel` stops between frames with RenderCancelled and leaves no file behind. `audio` adds
    an AAC track (a soft two-note tone as long as the video): what a request with Sound gets back.
    """
    started = time.perf_counter()
    scene = Scene(
        prompt=prompt,
        mode=mode,
        duration=duration,
        aspect=aspect,
        fps=fps,
        first_image=first_image,
        last_image=last_image,
    )
    out = Path(out_path)
    poster = Path(poster_path) if poster_path is not None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        with open_encoder(tmp, scene.width, scene.height, fps) as (container, stream):
            tone = _Tone(container) if audio else None
            frames = scene.prefetched()
            try:
                for i, frame in enumerate(frames):
                    if cancel is not None and cancel.is_set():
                        raise RenderCancelled(str(out))
                    if i == 0 and poster is not None:
                        _save_poster(frame, poster)
                    for packet in stream.encode(frame):
                        container.mux(packet)
                    if tone is not None:  # interleaved: the muxer never holds the whole video back
                        tone.until((i + 1) / fps)
            finally:
                frames.close()  # stops the composing thread on every exit path
            for packet in stream.encode(None):
                container.mux(packet)
            if tone is not None:
                tone.finish(scene.n_frames / fps)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    elapsed = time.perf_counter() - started
    log.info(
        "rendered %s (%dx%d, %d frames) in %.2fs",
        out.name,
        scene.width,
        scene.height,
        scene.n_frames,
        elapsed,
    )
    return RenderResult(out, poster, scene.width, scene.height, scene.n_frames, fps, elapsed)


class _Tone:
    """An AAC stream of a quiet sine tone (A3, then E4 for the second half of each second)."""

    RATE = 48_000
    SAMPLES = 1024  # one AAC frame

    def __init__(self, container: av.container.OutputContainer) -> None:
        self.container = container
        self.stream = container.add_stream("aac", rate=self.RATE)
        self.stream.layout = "mono"
        self.done = 0  # samples written

    def until(self, seconds: float) -> None:
        """Encode whole AAC frames until the track reaches `seconds`."""
        target = int(seconds * self.RATE)
        while self.done < target:
            t = (self.done + np.arange(self.SAMPLES)) / self.RATE
            pitch = np.where((t % 1.0) < 0.5, 220.0, 329.63)
            wave = (0.2 * np.sin(2 * np.pi * pitch * t)).astype(np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = self.RATE, self.done
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.done += self.SAMPLES

    def finish(self, seconds: float) -> None:
        self.until(seconds)
        for packet in self.stream.encode(None):
            self.container.mux(packet)


class open_encoder:
    """An MP4 container with one tuned libx264 stream; shared with bench/render_bench.py."""

    def __init__(self, path: Path, width: int, height: int, fps: int = FPS) -> None:
        self.path, self.width, self.height, self.fps = path, width, height, fps

    def __enter__(self) -> tuple[av.container.OutputContainer, av.video.stream.VideoStream]:
        self.container = av.open(
            str(self.path), mode="w", format="mp4", container_options={"movflags": "+faststart"}
        )
        stream = self.container.add_stream("libx264", rate=self.fps, options=dict(ENCODER_OPTIONS))
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = Fraction(1, self.fps)
        cc = stream.codec_context
        cc.thread_type = "FRAME"
        cc.colorspace = av.video.reformatter.Colorspace.ITU709
        cc.color_primaries = av.video.reformatter.ColorPrimaries.BT709
        cc.color_trc = av.video.reformatter.ColorTrc.BT709
        cc.color_range = av.video.reformatter.ColorRange.MPEG
        return self.container, stream

    def __exit__(self, *exc: object) -> None:
        self.container.close()


def _save_poster(frame: av.VideoFrame, poster: Path) -> None:
    poster.parent.mkdir(parents=True, exist_ok=True)
    tmp = poster.with_name(poster.name + ".part")
    frame.to_image().save(tmp, format="JPEG", quality=88)
    os.replace(tmp, poster)


# ---------------------------------------------------------------------------------------------------------
# Colour helpers (float RGB 0..255 -> limited-range BT.709 YUV)


def _rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = np.asarray(rgb, dtype=np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = _KR * r + (1 - _KR - _KB) * g + _KB * b
    cb = (b - y) / (2 * (1 - _KB))
    cr = (r - y) / (2 * (1 - _KR))
    return 16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr


def _half(a: np.ndarray) -> np.ndarray:
    """2x2 average: full-resolution float plane -> chroma resolution."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w]
    return (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) * 0.25


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255


def _even(v: float) -> int:
    return round(v / 2.0) * 2


def _evens(a: np.ndarray) -> list[int]:
    """Round each value to the nearest even integer (chroma is subsampled 2x2, so offsets stay even)."""
    return (np.rint(a / 2) * 2).astype(int).tolist()


def _plane_views(frame: av.VideoFrame) -> Planes:
    """Writable numpy views of a frame's three planes (rows may be padded: cut to the visible width)."""
    views = [
        # PyAV's stubs do not declare VideoPlane's buffer protocol, which numpy reads here
        np.frombuffer(pl, dtype=np.uint8).reshape(pl.height, pl.line_size)[:, : pl.width]  # type: ignore[call-overload]
        for pl in frame.planes
    ]
    return views[0], views[1], views[2]


def _subtract(box: Box, holes: Sequence[Box]) -> list[Box]:
    """`box` minus the holes, as disjoint boxes (each hole splits a piece into at most four)."""
    pieces = [box]
    for hx0, hy0, hx1, hy1 in holes:
        out = []
        for x0, y0, x1, y1 in pieces:
            if hx0 >= x1 or hx1 <= x0 or hy0 >= y1 or hy1 <= y0:
                out.append((x0, y0, x1, y1))
                continue
            if y0 < hy0:
                out.append((x0, y0, x1, hy0))
            if hy1 < y1:
                out.append((x0, hy1, x1, y1))
            my0, my1 = max(y0, hy0), min(y1, hy1)
            if x0 < hx0:
                out.append((x0, my0, hx0, my1))
            if hx1 < x1:
                out.append((hx1, my0, x1, my1))
        pieces = out
    return pieces


# ---------------------------------------------------------------------------------------------------------
# Panels: text on a translucent rectangle at a fixed place (caption, label, tag)


@dataclass
class _Panel:
    """Text on a translucent rectangular panel at a fixed, even (x, y) of the frame.

    Over the gradient (the common case) it is blended once per clip and then left alone (see freeze).
    Over input images, which cross-fade and pan under it, it is blended per frame instead:
    out = (v*inv + ca) >> 7 in uint16, with levels for the fades.
    """

    text: np.ndarray  # float 0..1 text coverage at luma resolution, times the text opacity
    panel_yuv: tuple[float, float, float]
    panel_alpha: float
    x: int = 0
    y: int = 0
    _slices: list[tuple[slice, slice]] = field(default_factory=list)
    _scratch: list[np.ndarray] = field(default_factory=list)
    _levels: dict[int, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    _frozen: list[np.ndarray] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return self.text.shape

    def box(self) -> Box:
        return self.x, self.y, self.x + self.shape[1], self.y + self.shape[0]

    def place(self, x: int, y: int, width: int, height: int) -> None:
        """Fix the panel's even top-left corner, kept inside the frame."""
        h, w = self.shape
        self.x = max(0, min(x, width - w)) // 2 * 2
        self.y = max(0, min(y, height - h)) // 2 * 2
        x, y = self.x, self.y
        self._slices = [
            (slice(y, y + h), slice(x, x + w)),
            (slice(y // 2, (y + h) // 2), slice(x // 2, (x + w) // 2)),
            (slice(y // 2, (y + h) // 2), slice(x // 2, (x + w) // 2)),
        ]

    # -- frozen, over the drifting gradient ---------------------------------------------------------------
    def freeze(self, canvas: Planes, ox: int, oy: int) -> None:
        """Blend the panel once over the canvas as seen at pan offset (ox, oy) and keep the result.

        Over the gradient the panel is then opaque and static: it is painted once into each reused frame
        and the per-frame work leaves its rectangle alone (a frosted pane in front of a drifting scene).
        """
        self._frozen = []
        for k, (inv, ca) in enumerate(self.layers(_FADE_LEVELS)):
            f = 1 if k == 0 else 2
            y0, x0 = (oy + self.y) // f, (ox + self.x) // f
            under = canvas[k][y0 : y0 + inv.shape[0], x0 : x0 + inv.shape[1]]
            self._frozen.append(((under * inv + ca) >> 7).astype(np.uint8))

    def paint(self, planes: Planes) -> None:
        """Copy the frozen panel into a frame (once per reused frame)."""
        for dst, s, frozen in zip(planes, self._slices, self._frozen, strict=True):
            np.copyto(dst[s], frozen)

    # -- blended, over input images ---------------------------------------------------------------------
    def layers(self, level: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(inv, ca) per plane at opacity level/_FADE_LEVELS, made on first use."""
        if level not in self._levels:
            e = level / _FADE_LEVELS
            w_text = self.text * e
            w_panel = self.panel_alpha * e * (1 - w_text)
            out = []
            for k, (white, panel) in enumerate(zip(_WHITE_YUV, self.panel_yuv, strict=True)):
                wt, wp = (w_text, w_panel) if k == 0 else (_half(w_text), _half(w_panel))
                alpha = wt + wp
                a = np.rint(alpha * _A).astype(np.uint16)
                # YUV is affine in RGB, so the premultiplied colour is a weighted sum of the two colours.
                col = np.rint(np.clip((white * wt + panel * wp) / np.maximum(alpha, 1e-6), 0, 255))
                out.append(((_A - a).astype(np.uint16), col.astype(np.uint16) * a))
            self._levels[level] = out
        return self._levels[level]

    def draw(self, k: int, dst: np.ndarray, level: int = _FADE_LEVELS) -> None:
        """Plane k of the panel blended at opacity level/_FADE_LEVELS."""
        inv, ca = self.layers(level)[k]
        if not self._scratch:
            self._scratch = [np.empty(layer[0].shape, np.uint16) for layer in self.layers(level)]
        tmp, region = self._scratch[k], dst[self._slices[k]]
        np.multiply(region, inv, out=tmp)
        tmp += ca
        np.right_shift(tmp, 7, out=region, casting="unsafe")


# ---------------------------------------------------------------------------------------------------------
# Lights: soft additive sprites drifting over the scene


@dataclass
class _Light:
    """A soft light added to the picture: a Gaussian in Y plus a fixed-sign tint in U and V.

    Adding light is one in-place uint8 add per plane (no blending, no temporaries). The scene works out
    once, for every frame, whether a pixel under this light could pass 0..255 (it overlaps another light,
    or sits on a bright image); only those frames pay for a clamp before the add.
    """

    y: np.ndarray  # uint8 luma delta, (d, d)
    u: np.ndarray  # uint8 |chroma delta|, (d/2, d/2)
    v: np.ndarray
    u_sign: int
    v_sign: int
    xs: list[int]  # even top-left corner per frame
    ys: list[int]
    clamp: list[tuple[bool, bool, bool]] = field(default_factory=list)  # per frame, set by the scene
    _levels: dict[int, list[tuple[np.ndarray, np.ndarray, int] | None]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.y.shape[0]

    def peaks(self) -> tuple[int, int, int]:
        """Largest signed delta per plane (for the overflow check)."""
        return int(self.y.max()), self.u_sign * int(self.u.max()), self.v_sign * int(self.v.max())

    def sprites(self, level: int) -> list[tuple[np.ndarray, np.ndarray, int] | None]:
        """(delta, clamp limit, sign) per plane at opacity level/_FADE_LEVELS (None: nothing to add)."""
        if level not in self._levels:
            out: list[tuple[np.ndarray, np.ndarray, int] | None] = []
            for s, sign in ((self.y, 1), (self.u, self.u_sign), (self.v, self.v_sign)):
                if level < _FADE_LEVELS:
                    s = np.rint(s.astype(np.float32) * (level / _FADE_LEVELS)).astype(np.uint8)
                # Clamp first so that the add cannot wrap: v <= 255 - d before +d, v >= d before -d.
                limit = (255 - s) if sign > 0 else s.copy()
                out.append((s, limit, sign) if s.any() else None)
            self._levels[level] = out
        return self._levels[level]

    def pieces(self, i: int, frame: Box, holes: Sequence[Box]) -> list[Box]:
        """Frame i's sprite square clipped to the frame, minus the panels (lights pass behind them)."""
        x, y, d = self.xs[i], self.ys[i], self.size
        box = (max(x, frame[0]), max(y, frame[1]), min(x + d, frame[2]), min(y + d, frame[3]))
        if box[2] <= box[0] or box[3] <= box[1]:
            return []
        return _subtract(box, holes)

    def draw(self, k: int, dst: np.ndarray, box: Box, i: int, level: int) -> None:
        """Add plane k of the light over `box` in frame i (clamping first only where the scene said so)."""
        sprite = self.sprites(level)[k]
        if sprite is None:
            return
        s, limit, sign = sprite
        x0, y0, x1, y1 = box
        sx, sy = x0 - self.xs[i], y0 - self.ys[i]
        f = 1 if k == 0 else 2
        region = dst[y0 // f : y1 // f, x0 // f : x1 // f]
        src = (slice(sy // f, (sy + y1 - y0) // f), slice(sx // f, (sx + x1 - x0) // f))
        if sign > 0:
            if self.clamp[i][k]:
                np.minimum(region, limit[src], out=region)
            np.add(region, s[src], out=region)
        else:
            if self.clamp[i][k]:
                np.maximum(region, limit[src], out=region)
            np.subtract(region, s[src], out=region)


# ---------------------------------------------------------------------------------------------------------
# Text


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font: the same glyphs on every machine, so renders stay deterministic.

    Cached: loading it decodes the embedded font file, a few ms that every clip would otherwise pay.
    """
    return ImageFont.load_default(size=max(8, size))


def _wrap(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_w: int, max_lines: int
) -> list[str]:
    words = " ".join(text.split()).split(" ")
    lines: list[str] = []
    cur = ""
    for word in words:
        cand = f"{cur} {word}".strip()
        if font.getlength(cand) <= max_w:
            cur = cand
            continue
        if cur:
            lines.append(cur)
        cur = word
        while font.getlength(cur) > max_w and len(cur) > 1:  # a word longer than the line
            cut = len(cur)
            while cut > 1 and font.getlength(cur[:cut]) > max_w:
                cut -= 1
            lines.append(cur[:cut])
            cur = cur[cut:]
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and font.getlength(last + " …") > max_w:
            last = last[:-1]
        lines[-1] = last.rstrip() + " …"
    return lines or [""]


def _text_panel(
    lines: list[str],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    pad: int,
    panel_rgb: np.ndarray,
    panel_alpha: float,
    text_alpha: float = 1.0,
) -> _Panel:
    """White text centred on a translucent rectangle (square, so a frozen panel is one rectangle)."""
    # the bitmap fallback font (Pillow without FreeType) has neither getmetrics() nor size
    asc, desc = font.getmetrics() if isinstance(font, ImageFont.FreeTypeFont) else (font.getbbox("Ay")[3], 0)
    line_h = int((asc + desc) * 1.18)
    text_w = max(math.ceil(font.getlength(line)) for line in lines)
    w = _even(text_w + 2 * pad + 1)
    h = _even(line_h * len(lines) + 2 * pad - (line_h - asc - desc) + 1)
    text = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(text)
    for i, line in enumerate(lines):
        lw = font.getlength(line)
        draw.text(((w - lw) / 2, pad + i * line_h), line, font=font, fill=255)
    coverage = np.asarray(text, dtype=np.float32) * (text_alpha / 255)
    y, u, v = _rgb_to_yuv(panel_rgb)
    return _Panel(text=coverage, panel_yuv=(float(y), float(u), float(v)), panel_alpha=panel_alpha)


# ---------------------------------------------------------------------------------------------------------
# Images


def _open(src: ImageSource) -> Image.Image:
    """Open lazily (header only); Pillow's guard refuses over 2 × MAX_IMAGE_PIXELS here already."""
    if isinstance(src, Image.Image):
        return src
    try:
        return Image.open(io.BytesIO(src) if isinstance(src, bytes | bytearray) else Path(src))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the image has more than {2 * MAX_IMAGE_PIXELS // 1_000_000} megapixels; "
                            f"the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels") from exc


def check_image_size(src: ImageSource, role: str = "image") -> tuple[int, int]:
    """(width, height) from the header; ImageTooLarge in words when over MAX_IMAGE_PIXELS."""
    img = _open(src)
    try:
        width, height = img.size
    finally:
        if img is not src:
            img.close()
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLarge(f"the {role} image is {width}×{height} px ({width * height / 1e6:.0f} "
                            f"megapixels); the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels")
    return width, height


def _load_image(src: ImageSource) -> Image.Image:
    img = _open(src)
    if img.width * img.height > MAX_IMAGE_PIXELS:  # checked before load(): nothing decoded yet
        raise ImageTooLarge(f"the image is {img.width}×{img.height} px; the limit is "
                            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels")
    img = ImageOps.exif_transpose(img)
    return img.convert("RGB")


@dataclass
class _Still:
    """An input image cover-fitted to the frame plus a pan margin, as YUV planes."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    mx: int
    my: int

    @classmethod
    def build(cls, src: ImageSource, width: int, height: int) -> _Still:
        mx, my = _even(width / 40), _even(height / 40)
        img = ImageOps.fit(_load_image(src), (width + 2 * mx, height + 2 * my), Image.Resampling.LANCZOS)
        y, u, v = _rgb_to_yuv(np.asarray(img, dtype=np.float32))
        return cls(_u8(y), _u8(_half(u)), _u8(_half(v)), mx, my)

    def window(self, ox: int, oy: int, width: int, height: int) -> Planes:
        """Planes of the (width x height) view whose top-left is (mx+ox, my+oy); ox, oy even."""
        x, y = self.mx + ox, self.my + oy
        return (
            self.y[y : y + height, x : x + width],
            self.u[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2],
            self.v[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2],
        )


# ---------------------------------------------------------------------------------------------------------
# The scene


class Scene:
    """Everything computed once per clip; `compose(i, planes)` then draws frame i with slices and adds."""

    bg: tuple[np.ndarray, np.ndarray, np.ndarray]  # set by _canvas()
    pan_x: list[int]                               # set by _timeline(), shifted by _canvas()
    pan_y: list[int]

    def __init__(
        self,
        *,
        prompt: str,
        mode: str,
        duration: int,
        aspect: str,
        fps: int = FPS,
        first_image: ImageSource | None = None,
        last_image: ImageSource | None = None,
    ) -> None:
        self.width, self.height = size_for(mode, aspect)
        self.fps, self.duration = fps, int(duration)
        self.n_frames = self.duration * fps
        if self.n_frames <= 0:
            raise ValueError("duration must be positive")
        # Seeded by the prompt alone, so std and pro of one prompt show the same scene at two sizes.
        digest = hashlib.sha256(prompt.encode("utf-8")).digest()
        self.rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        for role, src in (("first frame", first_image), ("last frame", last_image)):
            if src is not None:
                check_image_size(src, role)
        self.first = _Still.build(first_image, self.width, self.height) if first_image is not None else None
        self.last = _Still.build(last_image, self.width, self.height) if last_image is not None else None
        self._palette()
        self._background()
        self._lights()
        self._captions(prompt, mode)
        self._timeline()
        self._canvas()
        self.frame_box: Box = (0, 0, self.width, self.height)
        self.holes = [panel.box() for panel in self.panels]
        # Over the gradient alone, panels are frozen and the per-frame copy skips their rectangles.
        self.frozen = self.first is None and self.last is None
        if self.frozen:
            for panel in self.panels:
                panel.freeze(self.bg, self.pan_x[self.n_frames // 2], self.pan_y[self.n_frames // 2])
        self.base_boxes = _subtract(self.frame_box, self.holes)
        self._plan_clamps()
        self._fade_scratch: list[tuple[np.ndarray, np.ndarray]] | None = None

    # -- once per clip ------------------------------------------------------------------------------------
    def _palette(self) -> None:
        rng = self.rng
        base = rng.random()
        spread = 0.08 + 0.22 * rng.random()
        self.colors = [
            _hsv(base % 1.0, 0.55 + 0.2 * rng.random(), 0.30 + 0.15 * rng.random()),
            _hsv((base + spread) % 1.0, 0.50 + 0.25 * rng.random(), 0.55 + 0.2 * rng.random()),
            _hsv((base + 2 * spread) % 1.0, 0.35 + 0.25 * rng.random(), 0.75 + 0.2 * rng.random()),
        ]
        self.accent = _hsv((base + 0.5) % 1.0, 0.45, 0.95)

    def _background(self) -> None:
        """A soft gradient canvas, larger than the frame so that each frame is just a slice of it.

        It is smooth, so it is computed at an eighth of the size in float, rounded to uint8 there and
        scaled up by Pillow (see _canvas): full-size float math here used to cost more than encoding a
        5 s clip.
        """
        w, h, rng = self.width, self.height, self.rng
        self.mx, self.my = _even(w / 8), _even(h / 8)
        cw, ch = w + 2 * self.mx, h + 2 * self.my
        lw, lh = max(cw // 8, 16), max(ch // 8, 16)
        xs = np.linspace(0.0, 1.0, lw, dtype=np.float32)[None, :]
        ys = np.linspace(0.0, 1.0, lh, dtype=np.float32)[:, None]
        ang = rng.random() * 2 * math.pi
        diag = 0.5 + 0.7 * (math.cos(ang) * (xs - 0.5) + math.sin(ang) * (ys - 0.5))
        ph1, ph2 = rng.random() * 2 * math.pi, rng.random() * 2 * math.pi
        wave = (
            0.5
            + 0.25 * np.sin(2 * math.pi * (0.8 * xs + 0.35 * ys) + ph1)
            + 0.25 * np.sin(2 * math.pi * (-0.45 * xs + 0.9 * ys) + ph2)
        )
        c0, c1, c2 = (c[None, None, :] for c in self.colors)
        t = np.clip(diag, 0, 1)[..., None]
        rgb = c0 * (1 - t) + c1 * t
        s = (np.clip(wave, 0, 1) ** 2 * 0.55)[..., None]
        rgb = rgb * (1 - s) + c2 * s
        # A soft vignette baked into the canvas keeps the eye in the middle.
        vig = 1 - 0.35 * (((xs - 0.5) * 1.6) ** 2 + ((ys - 0.5) * 1.6) ** 2)
        rgb = rgb * np.clip(vig, 0.55, 1)[..., None]
        y, u, v = _rgb_to_yuv(rgb)
        self._small = [Image.fromarray(_u8(p)) for p in (y, u, v)]
        self._canvas_size = (cw, ch)
        # Bilinear upscaling stays within the small canvas' range: the overflow check needs no full pass.
        self.bg_range = [(int(_u8(p).min()), int(_u8(p).max())) for p in (y, u, v)]
        self.pan = (
            6 + 6 * rng.random(),
            7 + 7 * rng.random(),
            rng.random() * 2 * math.pi,
            rng.random() * 2 * math.pi,
        )

    def _canvas(self) -> None:
        """Scale up only the part of the canvas that this clip's pan visits, and pan relative to it.

        Pillow's uint8 bilinear resize of a box gives the same pixels as cropping the whole canvas; a 5 s
        clip visits well under the whole margin, and this is the biggest part of the per-clip setup.
        """
        w, h = self.width, self.height
        x0, x1 = min(self.pan_x), max(self.pan_x) + w
        y0, y1 = min(self.pan_y), max(self.pan_y) + h
        cw, ch = self._canvas_size
        planes = []
        for k, small in enumerate(self._small):
            f = 1 if k == 0 else 2
            sx, sy = small.width / (cw // f), small.height / (ch // f)
            box = (x0 // f * sx, y0 // f * sy, x1 // f * sx, y1 // f * sy)
            size = ((x1 - x0) // f, (y1 - y0) // f)
            planes.append(np.asarray(small.resize(size, Image.Resampling.BILINEAR, box=box)))
        self.bg = (planes[0], planes[1], planes[2])
        self.pan_x = [x - x0 for x in self.pan_x]
        self.pan_y = [y - y0 for y in self.pan_y]

    def _lights(self) -> None:
        """Four soft lights drifting on slow Lissajous paths, with every frame's position computed now.

        A sprite ends at 3.2 sigma, where the light has rounded down to zero: no square edge, no waste.
        """
        rng, w, h = self.rng, self.width, self.height
        m = min(w, h)
        t = np.arange(self.n_frames, dtype=np.float64) / self.fps
        self.lights: list[_Light] = []
        for _ in range(4):
            d = _even(m * (0.18 + 0.16 * rng.random()))
            c = (np.arange(d, dtype=np.float32) - (d - 1) / 2) / (d / 6.4)
            g = np.exp(-0.5 * c * c)
            alpha = np.outer(g, g) * (0.30 + 0.25 * rng.random())
            color = (
                self.colors[2] * 0.5 + self.accent * 0.5
                if rng.random() < 0.5
                else self.colors[2] * 0.3 + np.array([255, 255, 255], np.float32) * 0.7
            )
            # YUV is linear in RGB, so light added in RGB is a fixed YUV delta scaled by alpha.
            dy, du, dv = (float(p) - o for p, o in zip(_rgb_to_yuv(color), (16, 128, 128), strict=True))
            ah = _half(alpha)
            cx, cy = 0.2 + 0.6 * rng.random(), 0.2 + 0.6 * rng.random()
            ax, ay = 0.12 + 0.2 * rng.random(), 0.10 + 0.18 * rng.random()
            fx = (0.04 + 0.10 * rng.random()) * (1 if rng.random() < 0.5 else -1)
            fy = (0.03 + 0.09 * rng.random()) * (1 if rng.random() < 0.5 else -1)
            px, py = rng.random() * 2 * math.pi, rng.random() * 2 * math.pi
            xs = _evens(w * (cx + ax * np.sin(2 * math.pi * fx * t + px)) - d / 2)
            ys = _evens(h * (cy + ay * np.sin(2 * math.pi * fy * t + py)) - d / 2)
            self.lights.append(
                _Light(
                    y=_u8(alpha * max(dy, 0.0)),
                    u=_u8(ah * abs(du)),
                    v=_u8(ah * abs(dv)),
                    u_sign=1 if du >= 0 else -1,
                    v_sign=1 if dv >= 0 else -1,
                    xs=xs,
                    ys=ys,
                )
            )

    def _captions(self, prompt: str, mode: str) -> None:
        with _TEXT_LOCK:
            self._captions_locked(prompt, mode)

    def _captions_locked(self, prompt: str, mode: str) -> None:
        w, h = self.width, self.height
        m = min(w, h)
        dark = self.colors[0] * 0.35
        cap_font = _font(int(m * 0.052))
        lines = _wrap(prompt.strip() or "(empty prompt)", cap_font, int(w * 0.78), 3)
        self.caption = _text_panel(lines, cap_font, pad=_even(m * 0.022), panel_rgb=dark, panel_alpha=0.5)
        ch, cw = self.caption.shape
        self.caption.place(_even((w - cw) / 2), _even(h - ch - m * 0.06), w, h)
        small = _font(int(m * 0.030))
        margin = _even(m * 0.03)
        self.label = _text_panel(
            [LABEL], small, pad=_even(m * 0.012), panel_rgb=dark, panel_alpha=0.45, text_alpha=0.85
        )
        self.label.place(margin, margin, w, h)
        tag = f"kling-v3 · {mode} · {w}x{h}"
        self.tag = _text_panel(
            [tag], small, pad=_even(m * 0.012), panel_rgb=dark, panel_alpha=0.45, text_alpha=0.85
        )
        self.tag.place(_even(w - self.tag.shape[1] - margin), margin, w, h)
        self.panels = (self.caption, self.label, self.tag)
        self.bar_y = h - max(2, _even(h / 240))
        self.bar_color = tuple(int(c) for c in (_u8(np.array(p)) for p in _rgb_to_yuv(self.accent)))

    def _timeline(self) -> None:
        """Per-frame numbers (pan offsets, fade levels, cross-fade weight, progress bar) in one go."""
        n, w = self.n_frames, self.width
        t = np.arange(n, dtype=np.float64) / self.fps
        p = np.arange(n, dtype=np.float64) / max(n - 1, 1)
        sx, sy, phx, phy = self.pan
        self.pan_x = _evens(self.mx * (1 + np.sin(2 * math.pi * t / sx + phx)))
        self.pan_y = _evens(self.my * (1 + np.sin(2 * math.pi * t / sy + phy)))
        # Overlays fade in from a first frame image and out onto a last frame image (over one second).
        e = np.ones(n)
        if self.first is not None:
            e = np.minimum(e, t)
        if self.last is not None:
            e = np.minimum(e, (n - 1) / self.fps - t)
        self.levels = np.rint(np.clip(e, 0, 1) * _FADE_LEVELS).astype(int).tolist()
        # The last image cross-fades in over the middle half of the clip.
        q = np.clip((p - 0.25) / 0.5, 0, 1)
        smooth = q * q * (3 - 2 * q) if self.last is not None else 0 * q
        self.mix = np.rint(smooth * _A).astype(int).tolist()
        self.progress = [int(w * (i + 1) / n) // 2 * 2 for i in range(n)]
        self.phase = p.tolist()

    def _plan_clamps(self) -> None:
        """For every light and frame: can a pixel under it pass 0..255? Only then does drawing clamp.

        A light alone on the canvas is checked against the canvas' range; where lights overlap, their peaks
        add up. Input images are checked by their range. Lights never touch the panels.
        """
        if self.first is None:
            ranges = list(self.bg_range)
        else:
            ranges = [(int(a.min()), int(a.max())) for a in (self.first.y, self.first.u, self.first.v)]
        if self.last is not None:
            for k, a in enumerate((self.last.y, self.last.u, self.last.v)):
                ranges[k] = (min(ranges[k][0], int(a.min())), max(ranges[k][1], int(a.max())))
        xs = np.array([light.xs for light in self.lights])  # (lights, frames)
        ys = np.array([light.ys for light in self.lights])
        ds = np.array([light.size for light in self.lights])[:, None]
        peaks = np.array([light.peaks() for light in self.lights])  # (lights, planes), signed
        ups, downs = np.clip(peaks, 0, None), np.clip(-peaks, 0, None)
        for k, light in enumerate(self.lights):
            # overlap[j, i]: light j's square meets light k's in frame i (j == k counts: its own peak).
            overlap = (xs < xs[k] + ds[k]) & (xs[k] < xs + ds) & (ys < ys[k] + ds[k]) & (ys[k] < ys + ds)
            per_plane = []
            for p, (lo, hi) in enumerate(ranges):
                up = (overlap * ups[:, p, None]).sum(axis=0)
                down = (overlap * downs[:, p, None]).sum(axis=0)
                per_plane.append(((hi + up > 255) | (lo - down < 0)).tolist())
            light.clamp = list(zip(*per_plane, strict=True))

    # -- per frame -----------------------------------------------------------------------------------------
    def _copy_canvas(self, k: int, dst: np.ndarray, i: int) -> None:
        """Plane k of the panned canvas, around the frozen panels (a few rectangle copies)."""
        f = 1 if k == 0 else 2
        ox, oy, canvas = self.pan_x[i] // f, self.pan_y[i] // f, self.bg[k]
        for x0, y0, x1, y1 in self.base_boxes:
            x0, y0, x1, y1 = x0 // f, y0 // f, x1 // f, y1 // f
            np.copyto(dst[y0:y1, x0:x1], canvas[oy + y0 : oy + y1, ox + x0 : ox + x1])

    def _base(self, k: int, dst: np.ndarray, i: int) -> None:
        """Plane k of the layer under the overlays: gradient or first image, cross-fading onto the last image.

        The first image is exact (centred) at p=0 and the last image at p=1; both drift slowly in between.
        """
        w, h, f = self.width, self.height, 1 if k == 0 else 2
        if self.first is None:
            ox, oy = self.pan_x[i] // f, self.pan_y[i] // f
            a = self.bg[k][oy : oy + h // f, ox : ox + w // f]
        else:
            s, p = self.first, self.phase[i]
            a = s.window(_even(s.mx * p), _even(-s.my * p * 0.5), w, h)[k]
        mix = self.mix[i]
        if mix <= 0:
            np.copyto(dst, a)
            return
        assert self.last is not None
        s, p = self.last, self.phase[i]
        b = s.window(_even(-s.mx * (1 - p)), _even(s.my * (1 - p) * 0.5), w, h)[k]
        if mix >= _A:
            np.copyto(dst, b)
            return
        if self._fade_scratch is None:
            self._fade_scratch = [
                (np.empty(shape, np.uint16), np.empty(shape, np.uint16))
                for shape in ((h, w), (h // 2, w // 2), (h // 2, w // 2))
            ]
        t1, t2 = self._fade_scratch[k]
        np.multiply(a, _A - mix, out=t1, dtype=np.uint16)
        np.multiply(b, mix, out=t2, dtype=np.uint16)
        t1 += t2
        np.right_shift(t1, 7, out=dst, casting="unsafe")

    def compose(self, i: int, planes: Planes) -> None:
        """Draw frame i into `planes` (yuv420p views): base, panels, lights, progress bar.

        Plane by plane, so that each plane is still in cache while the overlays touch it.
        """
        level, bar = self.levels[i], self.progress[i]
        lights = (
            [(light, light.pieces(i, self.frame_box, self.holes)) for light in self.lights] if level else []
        )
        for k, dst in enumerate(planes):
            if self.frozen:
                self._copy_canvas(k, dst, i)
            else:
                self._base(k, dst, i)
                if level > 0:
                    self.caption.draw(k, dst, level)
                self.label.draw(k, dst)
                self.tag.draw(k, dst)
            for light, pieces in lights:
                for box in pieces:
                    light.draw(k, dst, box, i, level)
            if bar > 0:
                f = 1 if k == 0 else 2
                dst[self.bar_y // f :, : bar // f] = self.bar_color[k]

    def _buffer(self) -> tuple[av.VideoFrame, Planes]:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.time_base = Fraction(1, self.fps)
        frame.colorspace = av.video.reformatter.Colorspace.ITU709
        frame.color_range = av.video.reformatter.ColorRange.MPEG
        planes = _plane_views(frame)
        if self.frozen:
            for panel in self.panels:
                panel.paint(planes)
        return frame, planes

    def frames(self) -> Iterator[av.VideoFrame]:
        """The clip's frames, drawn one after another into ONE reused frame.

        x264 copies a frame when it is sent, so encode (or copy) each frame before asking for the next.
        """
        frame, planes = self._buffer()
        for i in range(self.n_frames):
            self.compose(i, planes)
            frame.pts = i
            yield frame

    def prefetched(self, depth: int = _PREFETCH) -> Generator[av.VideoFrame, None, None]:
        """Like frames(), but a worker thread draws up to `depth` frames ahead into a small pool.

        The encoder releases the GIL, so drawing frame n+1 overlaps encoding frame n. A frame goes back to
        the pool when the caller asks for the next one, i.e. after it was encoded. Closing the generator
        stops the worker.
        """
        pool = [self._buffer() for _ in range(depth + 1)]
        free: queue.SimpleQueue[tuple[av.VideoFrame, Planes]] = queue.SimpleQueue()
        ready: queue.SimpleQueue[tuple[av.VideoFrame, Planes] | BaseException] = queue.SimpleQueue()
        for buffers in pool:
            free.put(buffers)
        stop = threading.Event()

        def draw() -> None:
            try:
                for i in range(self.n_frames):
                    frame, planes = free.get()
                    if stop.is_set():
                        return
                    self.compose(i, planes)
                    frame.pts = i
                    ready.put((frame, planes))
            except Exception as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
                ready.put(exc)

        worker = threading.Thread(target=draw, name="render-compose", daemon=True)
        worker.start()
        try:
            for _ in range(self.n_frames):
                item = ready.get()
                if isinstance(item, BaseException):
                    raise item
                yield item[0]
                free.put(item)
        finally:
            stop.set()
            free.put(pool[0])  # wakes the worker if it waits for a free frame; it then sees `stop`
            worker.join()
