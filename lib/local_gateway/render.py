"""Synthetic clip renderer: a real H.264 MP4 drawn from the prompt, fast enough to keep up with a demo.

Why it is built this way (see ../shared/video-notes.md): every per-clip canvas (gradient, soft shapes,
caption, labels, input images) is computed once in YUV and each frame is only slices and small uint16
blends written straight into the encoder's frame planes. Going through RGB per frame would triple the time.
Everything is seeded by a hash of the request, so the same request gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
LABEL = "synthetic · local gateway"

# Alpha is kept in 7 bits so that colour*alpha and value*(128-alpha) both fit in uint16.
_A = 128
_KR, _KB = 0.2126, 0.0722  # BT.709, the colour space players assume for HD

ImageSource = bytes | str | os.PathLike | Image.Image


class RenderCancelled(Exception):
    """The render was stopped (gateway shutting down); nothing was written."""


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
) -> RenderResult:
    """Render one clip to `out_path` (written atomically) and optionally its poster (frame 0, JPEG).

    Setting `cancel` stops between frames with RenderCancelled and leaves no file behind.
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
            for i, frame in enumerate(scene.frames()):
                if cancel is not None and cancel.is_set():
                    raise RenderCancelled(str(out))
                if i == 0 and poster is not None:
                    _save_poster(frame, poster)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
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


def _upscale(a: np.ndarray, width: int, height: int) -> np.ndarray:
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    return _u8(np.asarray(img.resize((width, height), Image.Resampling.BILINEAR)))


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255


@dataclass
class _Layer:
    """A premultiplied overlay for one plane: out = (v*inv + ca) >> 7, both arrays uint16."""

    inv: np.ndarray
    ca: np.ndarray


@dataclass
class _Overlay:
    """An overlay in the three planes; (x, y) is its even top-left corner in luma pixels."""

    planes: tuple[_Layer, _Layer, _Layer]
    alpha: np.ndarray  # float 0..1 alpha at luma resolution, kept to re-scale for fades
    color: tuple[np.ndarray, np.ndarray, np.ndarray]  # float colour per plane (chroma at half size)

    @classmethod
    def build(cls, rgb: np.ndarray, alpha: np.ndarray) -> _Overlay:
        """rgb: (h, w, 3) float 0..255 (or a broadcastable colour), alpha: (h, w) float 0..1; h, w even."""
        rgb = np.broadcast_to(np.asarray(rgb, dtype=np.float32), (*alpha.shape, 3))
        y, u, v = _rgb_to_yuv(rgb)
        ah = _half(alpha)
        # Chroma is averaged weighted by alpha so that soft edges do not bleed the panel colour.
        uc = _half(u * alpha) / np.maximum(ah, 1e-6)
        vc = _half(v * alpha) / np.maximum(ah, 1e-6)
        ov = cls(planes=(None, None, None), alpha=alpha, color=(y, uc, vc))  # type: ignore[arg-type]
        ov.planes = ov.scaled(1.0)
        return ov

    def scaled(self, e: float) -> tuple[_Layer, _Layer, _Layer]:
        a_full = np.rint(self.alpha * (_A * e)).astype(np.uint16)
        a_half = np.rint(_half(self.alpha) * (_A * e)).astype(np.uint16)
        layers = []
        for col, a in zip(self.color, (a_full, a_half, a_half), strict=True):
            ca = (np.rint(col).astype(np.uint16) * a).astype(np.uint16)
            layers.append(_Layer(inv=(_A - a).astype(np.uint16), ca=ca))
        return layers[0], layers[1], layers[2]

    @property
    def shape(self) -> tuple[int, int]:
        return self.alpha.shape  # type: ignore[return-value]


def _blend(dst: np.ndarray, layer: _Layer, x: int, y: int) -> None:
    """Blend `layer` into plane `dst` with its top-left at (x, y), clipped to the plane."""
    h, w = layer.inv.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, dst.shape[1]), min(y + h, dst.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    sx, sy = x0 - x, y0 - y
    region = dst[y0:y1, x0:x1]
    tmp = region.astype(np.uint16)
    tmp *= layer.inv[sy : sy + (y1 - y0), sx : sx + (x1 - x0)]
    tmp += layer.ca[sy : sy + (y1 - y0), sx : sx + (x1 - x0)]
    tmp >>= 7
    np.copyto(region, tmp, casting="unsafe")


def _blend_overlay(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray], layers: tuple[_Layer, _Layer, _Layer], x: int, y: int
) -> None:
    _blend(planes[0], layers[0], x, y)
    _blend(planes[1], layers[1], x // 2, y // 2)
    _blend(planes[2], layers[2], x // 2, y // 2)


def _even(v: float) -> int:
    return round(v / 2.0) * 2


# ---------------------------------------------------------------------------------------------------------
# Text


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font: the same glyphs on every machine, so renders stay deterministic."""
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
) -> _Overlay:
    """White text on a rounded translucent panel, as one premultiplied overlay."""
    asc, desc = font.getmetrics() if hasattr(font, "getmetrics") else (font.size, 0)
    line_h = int((asc + desc) * 1.18)
    text_w = max(math.ceil(font.getlength(line)) for line in lines)
    w = _even(text_w + 2 * pad + 1)
    h = _even(line_h * len(lines) + 2 * pad - (line_h - asc - desc) + 1)
    panel = Image.new("L", (w, h), 0)
    ImageDraw.Draw(panel).rounded_rectangle(
        (0, 0, w - 1, h - 1), radius=min(pad * 2, h // 2), fill=int(255 * panel_alpha)
    )
    text = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(text)
    for i, line in enumerate(lines):
        lw = font.getlength(line)
        draw.text(((w - lw) / 2, pad + i * line_h), line, font=font, fill=int(255 * text_alpha))
    ap = np.asarray(panel, dtype=np.float32) / 255
    at = np.asarray(text, dtype=np.float32) / 255
    alpha = at + ap * (1 - at)
    white = np.full(3, 250, dtype=np.float32)
    rgb = (white * at[..., None] + panel_rgb * (ap * (1 - at))[..., None]) / np.maximum(alpha, 1e-6)[
        ..., None
    ]
    return _Overlay.build(rgb, alpha)


# ---------------------------------------------------------------------------------------------------------
# Images


def _load_image(src: ImageSource) -> Image.Image:
    if isinstance(src, Image.Image):
        img = src
    elif isinstance(src, bytes | bytearray):
        img = Image.open(io.BytesIO(src))
    else:
        img = Image.open(Path(src))
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

    def window(self, ox: int, oy: int, width: int, height: int) -> tuple[np.ndarray, ...]:
        """Planes of the (width x height) view whose top-left is (mx+ox, my+oy); ox, oy even."""
        x, y = self.mx + ox, self.my + oy
        return (
            self.y[y : y + height, x : x + width],
            self.u[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2],
            self.v[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2],
        )


# ---------------------------------------------------------------------------------------------------------
# The scene


@dataclass
class _Blob:
    overlay: _Overlay
    cx: float
    cy: float
    ax: float
    ay: float
    fx: float
    fy: float
    px: float
    py: float


class Scene:
    """Everything computed once per clip; `frames()` then yields encoder-ready frames cheaply."""

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
        self.first = _Still.build(first_image, self.width, self.height) if first_image is not None else None
        self.last = _Still.build(last_image, self.width, self.height) if last_image is not None else None
        self._palette()
        self._background()
        self._blobs()
        self._captions(prompt, mode)

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
        """A drifting soft gradient canvas, larger than the frame so each frame is just a slice.

        It is smooth, so it is computed at a quarter of the size and scaled up: full-size float math here
        used to cost more than encoding a 5 s clip.
        """
        w, h, rng = self.width, self.height, self.rng
        self.mx, self.my = _even(w / 8), _even(h / 8)
        cw, ch = w + 2 * self.mx, h + 2 * self.my
        lw, lh = cw // 4, ch // 4
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
        self.bg = (_upscale(y, cw, ch), _upscale(u, cw // 2, ch // 2), _upscale(v, cw // 2, ch // 2))
        self.pan = (
            6 + 6 * rng.random(),
            7 + 7 * rng.random(),
            rng.random() * 2 * math.pi,
            rng.random() * 2 * math.pi,
        )

    def _blobs(self) -> None:
        rng, w, h = self.rng, self.width, self.height
        m = min(w, h)
        self.blobs: list[_Blob] = []
        for _ in range(4):
            r = _even(m * (0.10 + 0.12 * rng.random()))
            d = np.linspace(-1, 1, 2 * r, dtype=np.float32)
            dist2 = d[None, :] ** 2 + d[:, None] ** 2
            alpha = np.clip(1 - dist2, 0, 1) ** 1.6 * (0.30 + 0.25 * rng.random())
            color = (
                self.colors[2] * 0.5 + self.accent * 0.5
                if rng.random() < 0.5
                else self.colors[2] * 0.3 + np.array([255, 255, 255], np.float32) * 0.7
            )
            ov = _Overlay.build(color, alpha.astype(np.float32))
            self.blobs.append(
                _Blob(
                    ov,
                    cx=0.2 + 0.6 * rng.random(),
                    cy=0.2 + 0.6 * rng.random(),
                    ax=0.12 + 0.2 * rng.random(),
                    ay=0.10 + 0.18 * rng.random(),
                    fx=(0.04 + 0.10 * rng.random()) * (1 if rng.random() < 0.5 else -1),
                    fy=(0.03 + 0.09 * rng.random()) * (1 if rng.random() < 0.5 else -1),
                    px=rng.random() * 2 * math.pi,
                    py=rng.random() * 2 * math.pi,
                )
            )

    def _captions(self, prompt: str, mode: str) -> None:
        w, h = self.width, self.height
        m = min(w, h)
        dark = self.colors[0] * 0.35
        cap_font = _font(int(m * 0.052))
        lines = _wrap(prompt.strip() or "(empty prompt)", cap_font, int(w * 0.78), 3)
        self.caption = _text_panel(lines, cap_font, pad=_even(m * 0.022), panel_rgb=dark, panel_alpha=0.5)
        ch, cw = self.caption.shape
        self.caption_xy = (_even((w - cw) / 2), _even(h - ch - m * 0.06))
        small = _font(int(m * 0.030))
        margin = _even(m * 0.03)
        self.label = _text_panel(
            [LABEL], small, pad=_even(m * 0.012), panel_rgb=dark, panel_alpha=0.45, text_alpha=0.85
        )
        self.label_xy = (margin, margin)
        tag = f"kling-v3 · {mode} · {w}x{h}"
        self.tag = _text_panel(
            [tag], small, pad=_even(m * 0.012), panel_rgb=dark, panel_alpha=0.45, text_alpha=0.85
        )
        self.tag_xy = (_even(w - self.tag.shape[1] - margin), margin)
        self.bar_y = h - max(2, _even(h / 240))
        self.bar_color = tuple(int(c) for c in (_u8(np.array(p)) for p in _rgb_to_yuv(self.accent)))

    # -- per frame -----------------------------------------------------------------------------------------
    def _envelope(self, t: float) -> float:
        """Overlays fade in from a first frame image and out onto a last frame image."""
        e = 1.0
        if self.first is not None:
            e = min(e, t / 1.0)
        if self.last is not None:
            end = (self.n_frames - 1) / self.fps
            e = min(e, (end - t) / 1.0)
        return max(0.0, min(1.0, e))

    def _background_view(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w, h = self.width, self.height
        sx, sy, phx, phy = self.pan
        ox = _even(self.mx + self.mx * math.sin(2 * math.pi * t / sx + phx))
        oy = _even(self.my + self.my * math.sin(2 * math.pi * t / sy + phy))
        return (
            self.bg[0][oy : oy + h, ox : ox + w],
            self.bg[1][oy // 2 : (oy + h) // 2, ox // 2 : (ox + w) // 2],
            self.bg[2][oy // 2 : (oy + h) // 2, ox // 2 : (ox + w) // 2],
        )

    def _base(self, planes: tuple[np.ndarray, ...], p: float, t: float) -> None:
        """The layer under the overlays: gradient or first image, cross-fading onto the last image.

        The first image is exact (centred) at p=0 and the last image at p=1; both drift slowly in between.
        """
        w, h = self.width, self.height
        if self.first is not None:
            s = self.first
            a = s.window(_even(s.mx * p), _even(-s.my * p * 0.5), w, h)
        else:
            a = self._background_view(t)
        k = 0
        if self.last is not None:
            s = self.last
            b = s.window(_even(-s.mx * (1 - p)), _even(s.my * (1 - p) * 0.5), w, h)
            k = round(_smooth((p - 0.25) / 0.5) * _A)
        if k <= 0:
            for dst, src in zip(planes, a, strict=True):
                np.copyto(dst, src)
        elif k >= _A:
            for dst, src in zip(planes, b, strict=True):
                np.copyto(dst, src)
        else:
            for dst, sa, sb in zip(planes, a, b, strict=True):
                tmp = sa.astype(np.uint16)
                tmp *= _A - k
                tmp2 = sb.astype(np.uint16)
                tmp2 *= k
                tmp += tmp2
                tmp >>= 7
                np.copyto(dst, tmp, casting="unsafe")

    def frames(self) -> Iterator[av.VideoFrame]:
        """Yield the clip's frames, composed directly into each frame's yuv420p planes."""
        w, h = self.width, self.height
        fade_cache: dict[int, dict[int, tuple[_Layer, _Layer, _Layer]]] = {}
        for i in range(self.n_frames):
            t = i / self.fps
            frame = av.VideoFrame(w, h, "yuv420p")
            planes = tuple(
                np.frombuffer(pl, dtype=np.uint8).reshape(pl.height, pl.line_size)[:, : pl.width]
                for pl in frame.planes
            )
            self._base(planes, i / max(self.n_frames - 1, 1), t)
            e = self._envelope(t)
            level = round(e * 32)
            if level > 0:
                for k, blob in enumerate(self.blobs):
                    bw = blob.overlay.shape[1]
                    x = _even(
                        w * (blob.cx + blob.ax * math.sin(2 * math.pi * blob.fx * t + blob.px)) - bw / 2
                    )
                    y = _even(
                        h * (blob.cy + blob.ay * math.sin(2 * math.pi * blob.fy * t + blob.py)) - bw / 2
                    )
                    _blend_overlay(planes, self._faded(fade_cache, k, blob.overlay, level), x, y)
                _blend_overlay(planes, self._faded(fade_cache, -1, self.caption, level), *self.caption_xy)
            _blend_overlay(planes, self.label.planes, *self.label_xy)
            _blend_overlay(planes, self.tag.planes, *self.tag_xy)
            bar = int(w * (i + 1) / self.n_frames) // 2 * 2
            if bar > 0:
                planes[0][self.bar_y :, :bar] = self.bar_color[0]
                planes[1][self.bar_y // 2 :, : bar // 2] = self.bar_color[1]
                planes[2][self.bar_y // 2 :, : bar // 2] = self.bar_color[2]
            frame.pts = i
            frame.time_base = Fraction(1, self.fps)
            frame.colorspace = av.video.reformatter.Colorspace.ITU709
            frame.color_range = av.video.reformatter.ColorRange.MPEG
            yield frame

    @staticmethod
    def _faded(
        cache: dict[int, dict[int, tuple[_Layer, _Layer, _Layer]]], key: int, ov: _Overlay, level: int
    ) -> tuple[_Layer, _Layer, _Layer]:
        if level >= 32:
            return ov.planes
        per = cache.setdefault(key, {})
        if level not in per:
            per[level] = ov.scaled(level / 32)
        return per[level]


def _smooth(p: float) -> float:
    p = max(0.0, min(1.0, p))
    return p * p * (3 - 2 * p)
