"""Demo links that unfurl: what a short link (`/s/<id>`) and an embed page (`/e/<id>`) say, as HTML.

Why: a bare Streamlit URL pasted into a chat unfurls as a blank box, because a link-preview bot reads the
first HTML it gets and runs no JavaScript. So a short link answers plain HTML with Open Graph and Twitter
card tags (the title from the prompt, the poster, the video's same-origin URL, its type and size), then a
meta refresh and a link open the share view for a person. The embed page is a bare `<video>` for slides
and docs. Pure functions (no Starlette, no Streamlit): lib/unfurl_route.py serves them.

What may appear: only what the share view already shows to anyone holding its link (the prompt, mode,
duration, aspect, state, the archived poster and video). Never a key, a price or spend, a ledger path, a
gateway URL or task id, nor any other run. Every value is HTML-escaped; absolute URLs are built only from
a validated origin (see `origin_from_host`), and PLAYGROUND_PUBLIC_URL pins it.

A kind of link is one entry of KINDS (a name and a finder): a sequence kind is added there, and the route,
the pages and the short link follow.
"""
from __future__ import annotations

import html
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lib import archive_route, history, links, query
from lib.contract import MODE_LABELS, RESOLUTION
from lib.ledger import ACTIVE, COMPLETED, DRAFT, FAILED, TIMED_OUT, UNKNOWN

SHORT_PREFIX = "/s"
EMBED_PREFIX = "/e"
SITE_NAME = "kling-v3 playground"
TITLE_CHARS = 90
ASPECT_WORDS = {"16:9": "16:9 landscape", "9:16": "9:16 portrait", "1:1": "1:1 square"}
PLAYER_SIDE = 640  # twitter:player and the embed snippet: the longer side of the iframe, in px
NOT_FOUND = "This link does not match any video. Check you copied the whole link."
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"^(?:{_LABEL})(?:\.{_LABEL})*\.?$")
_PORT = re.compile(r"^[0-9]{1,5}$")
READY, PENDING, FAILED_WORDS = "ready", "pending", "failed"


@dataclass(frozen=True)
class Subject:
    """What one link shows: words, the share view's path and the archived files' keys (never a path on
    disk). `video_key` is set only when the video is archived and served, `poster_key` likewise."""

    kind: str
    ident: str
    title: str
    description: str
    status: str                       # READY | PENDING | FAILED_WORDS
    share_path: str                   # "/run?id=…" or "/run?group=…"
    poster_key: str | None = None
    video_key: str | None = None
    size: tuple[int, int] | None = None   # the video's (width, height), from the ledger's mode and aspect
    embeddable: bool = False          # a single run: the embed page plays it


@dataclass(frozen=True)
class Kind:
    name: str
    find: Callable[[Any, str], Subject | None]   # (ledger, id) -> Subject, or None when unknown


def short_path(ident: str) -> str:
    return f"{SHORT_PREFIX}/{ident}"


def embed_path(ident: str) -> str:
    return f"{EMBED_PREFIX}/{ident}"


def join(base: str, base_path: str, path: str) -> str:
    """origin + Streamlit's server.baseUrlPath + path ("" base -> a path for the same origin)."""
    prefix = (base_path or "").strip("/")
    return f"{base.rstrip('/')}{'/' + prefix if prefix else ''}{path}"


def served_path(key: str | None) -> str | None:
    """The archive route's path of a stored key, or None when the route would not serve it."""
    if not key:
        return None
    try:
        return archive_route.url_path(key)
    except ValueError:
        return None


# ------------------------------------------------------------------ the absolute base URL
def origin_from_host(scheme: str, host: str | None) -> str | None:
    """`scheme://host[:port]` from a request's Host header, or None when the header is not a plain host.

    A Host header is whatever the client typed: anything but a DNS name, an IPv4/IPv6 literal and a port
    (quotes, angle brackets, spaces, user info, paths, unicode, 300 characters) is refused here rather
    than escaped into a tag. A well-formed foreign name still ends up in that one answer's tags; the
    pages are sent `no-store` so no shared cache keeps it, and PLAYGROUND_PUBLIC_URL pins the origin.
    """
    if scheme not in ("http", "https") or not host or len(host) > 260 or not host.isascii():
        return None
    host = host.strip().lower()
    name, port = host, ""
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[: end + 1], host[end + 1:]
        if end < 0 or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else ""
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    else:
        name, sep, port = host.partition(":")
        if sep and not port:
            return None
        if len(name) > 253 or not _HOST.match(name):
            return None
    if port and (not _PORT.match(port) or not 0 < int(port) < 65536):
        return None
    return f"{scheme}://{name}{':' + port if port else ''}"


def check_public_url(raw: str) -> str:
    """PLAYGROUND_PUBLIC_URL as an origin (`https://play.example.com`); ValueError in words otherwise."""
    need = ("PLAYGROUND_PUBLIC_URL must be the address people open this app at, such as "
            "https://play.example.com (http or https, a host name, an optional port, nothing after it)")
    try:
        parts = urlsplit(raw.strip())
        credentials = parts.username or parts.password
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ValueError(f"{need}, but it cannot be read as one.") from None
    shown = raw if len(raw) <= 80 else raw[:80] + "…"
    if credentials:
        raise ValueError(f"{need}; it must not contain a user name or password.")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{need}, but it is {shown!r}.")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError(f"{need}, but it has a path, query or fragment. Give the app's folder as "
                         "server.baseUrlPath instead.")
    found = origin_from_host(parts.scheme, parts.netloc)
    if found is None:
        raise ValueError(f"{need}, but it is {shown!r}.")
    return found


# ------------------------------------------------------------------ words
def _one_line(text: str) -> str:
    return " ".join(query.clean_text(text or "", multiline=True).split())


def title_from(prompt: str, limit: int = TITLE_CHARS) -> str:
    """The prompt on one line, cut at a word near `limit` characters with "…"."""
    text = _one_line(prompt)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,.;:") + "…"


def settings_words(mode: str | None, duration: int | None, aspect: str | None) -> str:
    """"5-second 16:9 landscape video in std quality (720p)"; the parts that are unknown are left out."""
    parts = []
    if duration:
        parts.append(f"{duration}-second")
    if aspect:
        parts.append(ASPECT_WORDS.get(aspect, aspect))
    text = " ".join([*parts, "video"])
    if mode:
        text += f" in {MODE_LABELS.get(mode, mode).replace(' (', ' quality (')}"
    return text


def _status(run: Any) -> str:
    if run.state == COMPLETED and run.video_path:
        return READY
    if run.state in ACTIVE or run.state == DRAFT or (run.state == COMPLETED and not run.archive_failed):
        return PENDING
    return FAILED_WORDS


_ENDINGS = {FAILED: "failed", TIMED_OUT: "timed out", UNKNOWN: "has an unknown outcome (no video came back)"}


def run_subject(run: Any) -> Subject | None:
    """A run's link: ready (archived), not ready yet, or failed (no video), in words."""
    if run is None or run.unreadable:
        return None
    settings = history.has_settings(run)
    title = title_from(run.request.prompt) if settings else ""
    title = title or "A kling-v3 video"
    what = settings_words(run.mode, run.duration, run.aspect_ratio)
    status = _status(run)
    ready = status == READY and served_path(run.video_path) is not None
    video = run.video_path if ready else None
    poster = run.poster_path if ready and served_path(run.poster_path) else None
    if ready:
        description = f"A {what}, made with kling-v3."
    elif status == PENDING:
        description = f"Not ready yet: this {what} is still being made. Open the link again in a minute."
    else:
        description = f"This {what} {_ENDINGS.get(run.state, 'has no video')}, so there is nothing to play."
        if run.archive_failed:
            description = f"This {what} finished but could not be saved here, so there is nothing to play."
        status = FAILED_WORDS
    size = RESOLUTION.get((run.mode or "", run.aspect_ratio or ""))
    return Subject("run", run.run_id, title, description, status, links.share_url("", run_id=run.run_id),
                   poster_key=poster, video_key=video, size=size, embeddable=True)


def grid_subject(group_id: str, runs: Sequence[Any]) -> Subject | None:
    """A comparison's link: its prompt (or how many), its settings in words, the first archived poster."""
    runs = history.sort_grid([r for r in runs if not r.unreadable])
    if not runs:
        return None
    prompts = list(dict.fromkeys(r.request.prompt for r in runs if history.has_settings(r)))
    first = title_from(prompts[0], TITLE_CHARS - 12) if prompts else ""
    title = f"Comparison: {first}" if len(prompts) == 1 else f"Comparison of {len(prompts)} prompts"
    modes = [m for m in ("std", "pro") if any(r.mode == m for r in runs)]
    durations = sorted({r.duration for r in runs if r.duration})
    aspects = list(dict.fromkeys(ASPECT_WORDS.get(r.aspect_ratio, r.aspect_ratio)
                                 for r in runs if r.aspect_ratio))
    ready = [r for r in runs if _status(r) == READY and served_path(r.video_path)]
    facets = [" vs ".join(MODE_LABELS.get(m, m) for m in modes),
              " and ".join(f"{d} s" for d in durations), ", ".join(aspects)]
    description = f"{len(runs)} runs side by side: {' · '.join(f for f in facets if f)}. "
    description += (f"{len(ready)} of {len(runs)} ready to play." if ready
                    else "Not ready yet: no video of this comparison is ready to play.")
    poster = next((r.poster_path for r in ready if served_path(r.poster_path)), None)
    return Subject("grid", group_id, title, description, READY if ready else PENDING,
                   links.share_url("", group_id=group_id), poster_key=poster)


def _find_run(ledger: Any, ident: str) -> Subject | None:
    return run_subject(ledger.get(ident))


def _find_grid(ledger: Any, ident: str) -> Subject | None:
    return grid_subject(ident, ledger.group(ident))


def _find_sequence(ledger: Any, ident: str) -> Subject | None:
    from lib import chains  # lib.chains builds on this module's words

    return chains.sequence_subject(ledger, ident)


# One entry per kind of short link, tried in order (ids are random and never shared across kinds).
KINDS: tuple[Kind, ...] = (Kind("run", _find_run), Kind("grid", _find_grid), Kind("sequence", _find_sequence))


def find(ledger: Any, ident: str, kinds: Sequence[Kind] = KINDS) -> Subject | None:
    """The subject of `/s/<ident>`; None for a malformed id (nothing is looked up) or an unknown one."""
    if not query.is_id(ident):
        return None
    for kind in kinds:
        found = kind.find(ledger, ident)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------ iframe size and snippet
def player_size(size: tuple[int, int] | None) -> tuple[int, int]:
    """The iframe's (width, height): the video's shape with its longer side PLAYER_SIDE (16:9 unknown)."""
    w, h = size or (16, 9)
    scale = PLAYER_SIDE / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def embed_code(embed_url: str, subject: Subject) -> str:
    """An `<iframe>` snippet for docs and slides: it keeps the video's shape at any width."""
    w, h = player_size(subject.size)
    esc = html.escape
    return (f'<iframe src="{esc(embed_url)}" width="{w}" height="{h}" '
            f'style="border:0;max-width:100%;height:auto;aspect-ratio:{w}/{h}" '
            f'title="{esc(subject.title)}" allow="fullscreen; picture-in-picture" allowfullscreen '
            'loading="lazy"></iframe>')


# ------------------------------------------------------------------ pages
_LINK_STYLE = ("body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:2rem 1rem;color:#1f2328;"
               "background:#fafafa}main{max-width:40rem;margin:0 auto}h1{font-size:1.4rem;margin:0 0 .5rem;"
               "overflow-wrap:anywhere}img{max-width:100%;height:auto;border-radius:6px}")
_EMBED_STYLE = ("html,body{margin:0;height:100%;background:#000;overflow:hidden}"
                "body{display:flex;align-items:center;justify-content:center}"
                "video{display:block;width:100%;height:100%;object-fit:contain;background:#000}"
                "a{position:fixed;top:8px;right:8px;font:13px/1.3 system-ui,sans-serif;color:#fff;"
                "background:rgba(0,0,0,.6);padding:4px 8px;border-radius:4px;text-decoration:none}"
                "a:hover,a:focus{text-decoration:underline}"
                "p{color:#eee;font:16px/1.5 system-ui,sans-serif;text-align:center;margin:0;padding:0 1rem;"
                "position:relative;top:50%;transform:translateY(-50%)}"
                "p a{position:static;display:inline-block;margin-top:.5rem}")


def _meta(attr: str, name: str, content: object) -> str:
    return f'<meta {attr}="{html.escape(name)}" content="{html.escape(str(content))}">'


def link_tags(subject: Subject, base: str, base_path: str = "") -> list[str]:
    """The Open Graph and Twitter tags of a short link; `base` is a validated absolute origin."""
    og = lambda name, value: _meta("property", f"og:{name}", value)  # noqa: E731
    tw = lambda name, value: _meta("name", f"twitter:{name}", value)  # noqa: E731
    video = served_path(subject.video_key)
    poster = served_path(subject.poster_key)
    tags = [og("site_name", SITE_NAME), og("type", "video.other" if video else "website"),
            og("title", subject.title), og("description", subject.description),
            og("url", join(base, base_path, short_path(subject.ident)))]
    if poster:
        tags += [og("image", join(base, base_path, poster)), og("image:type", "image/jpeg"),
                 og("image:alt", f"First frame of the video: {subject.title}")]
    if video:
        url = join(base, base_path, video)
        tags.append(og("video", url))
        if url.startswith("https://"):
            tags.append(og("video:secure_url", url))
        tags.append(og("video:type", "video/mp4"))
        if subject.size:
            tags += [og("video:width", subject.size[0]), og("video:height", subject.size[1])]
    # Twitter plays a card only from an https player page; over http it shows the poster instead.
    player = video and subject.embeddable and base.startswith("https://")
    card = "player" if player else "summary_large_image" if poster else "summary"
    tags += [tw("card", card), tw("title", subject.title), tw("description", subject.description)]
    if poster:
        tags.append(tw("image", join(base, base_path, poster)))
    if player:
        w, h = player_size(subject.size)
        tags += [tw("player", join(base, base_path, embed_path(subject.ident))),
                 tw("player:width", w), tw("player:height", h)]
    return tags


def _page(title: str, head: Sequence[str], body: str, style: str) -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n" + "\n".join(head) + "\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="robots" content="noindex"><style>{style}</style></head>\n'
            f"<body>{body}</body></html>\n")


def link_page(subject: Subject, base: str, base_path: str = "") -> str:
    """The short link's answer: tags for bots, then a meta refresh and a link to the share view."""
    share = join("", base_path, subject.share_path)
    esc = html.escape
    head = [_meta("name", "description", subject.description), *link_tags(subject, base, base_path),
            f'<meta http-equiv="refresh" content="0; url={esc(share)}">']
    poster = served_path(subject.poster_key)
    image = f'<p><img src="{esc(join("", base_path, poster))}" alt=""></p>' if poster else ""
    body = (f"<main><h1>{esc(subject.title)}</h1><p>{esc(subject.description)}</p>{image}"
            f'<p><a href="{esc(share)}">Open it in the playground</a></p></main>')
    return _page(f"{subject.title} · {SITE_NAME}", head, body, _LINK_STYLE)


def embed_page(subject: Subject, base_path: str = "") -> str:
    """A bare player for an iframe: the archived video with its poster, same-origin paths, one link back.
    Not ready or failed: the words instead, and the same link."""
    esc = html.escape
    share = esc(join("", base_path, subject.share_path))
    back = f'<a href="{share}" target="_blank" rel="noopener">Open in the playground</a>'
    video = served_path(subject.video_key)
    if video:
        poster = served_path(subject.poster_key)
        poster_attr = f' poster="{esc(join("", base_path, poster))}"' if poster else ""
        # the largest box of the video's shape that fits: its controls sit on the picture, not at the
        # bottom of a tall frame (without a known size, the whole frame and object-fit: contain)
        fit = ""
        if subject.size:
            w, h = subject.size
            fit = f' style="width:min(100vw,calc(100vh*{w}/{h}));height:auto;aspect-ratio:{w}/{h}"'
        body = (f'<video controls playsinline preload="metadata"{poster_attr}{fit} '
                f'src="{esc(join("", base_path, video))}" aria-label="{esc(subject.title)}"></video>{back}')
    else:
        body = f"<p>{esc(subject.description)}<br>{back}</p>"
    return _page(subject.title, [], body, _EMBED_STYLE)


def not_found_page(message: str = NOT_FOUND, base_path: str = "", heading: str = "Not found") -> str:
    """What an unknown, malformed or hostile id gets: the same words, whatever was asked."""
    home = html.escape(join("", base_path, "/"))
    body = (f"<main><h1>{html.escape(heading)}</h1><p>{html.escape(message)}</p>"
            f'<p><a href="{home}">Make your own video</a></p></main>')
    return _page(f"{heading} · {SITE_NAME}", [], body, _LINK_STYLE)
