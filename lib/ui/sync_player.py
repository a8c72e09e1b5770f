"""One control for every finished cell of a grid: play, pause and seek together, plus a wipe view.

Layout: each cell's video is drawn inside that cell (`cell_video`), one bar (`bar`) drives every video of
its group wherever it is on the page (they share `data-sp-group`), and stays in view while the grid
scrolls (sticky); the wipe view (`wipe`) is a separate small player with its own play control.

Why plain HTML/JS in `st.html(..., unsafe_allow_javascript=True)`: st.video elements cannot be driven
together, and a components iframe would put the videos in another document (tests and the page could not
reach them). st.html is not iframed in 1.67, so the videos live in the page itself with stable data
attributes. Sources are same-origin archive URLs (`/archive/videos/<token>.mp4`), served with HTTP Range, so
seeking works. Everything interpolated into the HTML is escaped; the script's settings are one JSON
literal (with "</" escaped), never string-built code.

Sync: the longest video is the leader; a requestAnimationFrame loop (plus a 250 ms interval for hidden
tabs) pulls every follower back to the leader's time (modulo its own length): a drift over 0.025 s is
absorbed by its playback rate, one over 0.4 s (a stall) by a seek. Play, pause and seek act on all videos
at once; seeks wait for every video to land before resuming. Cells stay within 0.1 s of each other.
"""
from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import streamlit as st

if TYPE_CHECKING:
    from lib.archive import Archive
    from lib.ledger import Run

DRIFT_S = 0.05      # aim: cells within 0.05 s of the leader (the promise is 0.1 s between any two)
SEEK_OVER_S = 0.4   # beyond this drift (a stall), seek instead of nudging the playback rate
_KEY_RE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class SyncItem:
    """One video of the synced group; an empty `src` is a placeholder slot (keeps a grid's columns)."""

    run_id: str
    label: str
    src: str
    poster: str | None = None


def _safe_key(key: str) -> str:
    return _KEY_RE.sub("-", key).strip("-") or "sync"


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


_VIDEO_STYLE = ("width:100%;aspect-ratio:16/9;background:#000;border-radius:.4rem;object-fit:contain;"
                "display:block")
_CSS = """
.sp-root{font-family:inherit;color:inherit}
.sp-bar{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem;margin:.25rem 0 .75rem}
.sp-bar button{border:1px solid rgba(128,128,128,.5);background:transparent;color:inherit;border-radius:.5rem;
 padding:.3rem .8rem;cursor:pointer;font:inherit;min-width:6.5rem}
.sp-bar button:hover{border-color:#6C4DF6;color:#6C4DF6}
.sp-bar input[type=range]{flex:1 1 12rem;accent-color:#6C4DF6;min-width:8rem}
.sp-time{font-variant-numeric:tabular-nums;font-size:.85rem;opacity:.8;min-width:7.5rem;text-align:right}
.sp-stage video{width:100%;aspect-ratio:16/9;background:#000;border-radius:.4rem;
 object-fit:contain;display:block}
.sp-slot{aspect-ratio:16/9;border:1px dashed rgba(128,128,128,.5);border-radius:.4rem;display:flex;
 align-items:center;justify-content:center;text-align:center;padding:.5rem;font-size:.85rem;opacity:.7}
.sp-wipe{margin-top:1rem;border-top:1px solid rgba(128,128,128,.3);padding-top:.75rem}
.sp-wipe summary{cursor:pointer;margin-bottom:.5rem;font-size:.95rem}
.sp-wipe-pick{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;font-size:.9rem;margin-bottom:.5rem}
.sp-wipe-pick select{font:inherit;padding:.2rem .4rem;border-radius:.4rem;max-width:100%}
.sp-stage{position:relative;max-width:960px}
.sp-stage video[data-wipe=b]{position:absolute;inset:0;height:100%}
.sp-line{position:absolute;top:0;bottom:0;width:2px;background:#fff;box-shadow:0 0 4px #000;
 pointer-events:none}
.sp-tag{position:absolute;bottom:.6rem;padding:.1rem .4rem;border-radius:.3rem;background:rgba(0,0,0,.6);
 color:#fff;font-size:.75rem;pointer-events:none}
.sp-wipe input[type=range]{width:100%;max-width:960px;accent-color:#6C4DF6}
.sp-wipe .sp-bar{max-width:960px}
.sp-vid .sp-slot{font-size:.8rem}
"""

# The player script. It finds its root by id, so a re-render (new cells finished) starts a fresh loop and
# the old one stops when its root leaves the document. Play state and time survive such a re-render
# through window.__syncPlayers[key].
#
# Why rate nudging and not only seeks: in software decoding a seek of a 1080p clip stalls it for 0.2-0.4 s
# (it decodes from the previous keyframe), so "seek whenever it drifts 0.05 s" keeps the pro cells
# permanently behind. Small drifts are absorbed by playbackRate (a drift of 0.1 s is gone in ~0.25 s),
# only a large one (a stall) is seeked, aimed ahead by that video's measured seek time. Explicit seeks
# pause everything, seek everything, wait for every 'seeked', then resume together. Distances are taken
# around the loop, so 4.99 s and 0.01 s of a 5 s clip are 0.02 s apart.
_JS = r"""
(function(){
  const cfg = __CFG__;
  const root = document.getElementById(cfg.root);
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "0";
  const memo = (window.__syncPlayers = window.__syncPlayers || {});
  const q = (s) => root.querySelector(s);
  const wipeBox = q("details[data-sp=wipe]");
  // a grid bar drives its group's videos wherever the cells put them; a wipe player drives its own two,
  // only while it is open (closed, they hold no source: no decoding)
  const vids = () => cfg.group
      ? Array.from(document.querySelectorAll('video[data-sp-group="' + cfg.group + '"]'))
          .filter((v) => v.getAttribute("src"))
      : (wipeBox && wipeBox.open ? Array.from(root.querySelectorAll("video[data-sp-video=wipe]")) : []);
  const btn = q("[data-sp=play]"), seek = q("[data-sp=seek]"), time = q("[data-sp=time]");
  const state = {playing: false, dragging: false, token: 0, busy: false};
  const lag = new WeakMap();  // measured seek time per video (s)
  function leader(){
    let best = null;
    for (const v of vids()) { if (!best || (v.duration || 0) > (best.duration || 0)) best = v; }
    return best;
  }
  function target(v, t){ const d = v.duration; return (d && isFinite(d) && d > 0) ? (t % d) : t; }
  function offset(v, t){
    const d = v.duration; let o = v.currentTime - target(v, t);
    if (d && isFinite(d)) { if (o > d / 2) o -= d; else if (o < -d / 2) o += d; }
    return o;
  }
  function hardSeek(v, want){
    const started = performance.now();
    v.addEventListener("seeked", () => {
      const took = (performance.now() - started) / 1000;
      lag.set(v, 0.5 * (lag.get(v) || took) + 0.5 * took);
    }, {once: true});
    v.currentTime = want;
  }
  function show(){
    const L = leader(); if (!L) return;
    const t = L.currentTime, d = L.duration || 0;
    if (!state.dragging && d) seek.value = String(Math.round(1000 * t / d));
    time.textContent = t.toFixed(1) + " / " + (d ? d.toFixed(1) : "–") + " s";
    root.dataset.time = t.toFixed(3);
    memo[cfg.key] = {t: t, playing: state.playing};
  }
  function correct(){
    const L = leader(); if (!L || state.busy) return;
    const t = L.currentTime;
    for (const v of vids()) {
      if (v === L || v.readyState < 2 || v.seeking) continue;
      const o = offset(v, t);
      if (Math.abs(o) > cfg.seek_over) {
        hardSeek(v, target(v, t + (state.playing ? (lag.get(v) || 0.15) : 0)));
        v.playbackRate = 1;
      } else if (state.playing && Math.abs(o) > cfg.drift / 2) {
        v.playbackRate = Math.min(2, Math.max(0.5, 1 - 4 * o));
      } else if (v.playbackRate !== 1) {
        v.playbackRate = 1;
      }
      if (state.playing && v.paused) v.play().catch(() => {});
    }
    L.playbackRate = 1;
  }
  function startAll(){ for (const v of vids()) { v.playbackRate = 1; v.play().catch(() => {}); } }
  function seekAll(t){
    // pause, seek every video, wait until all have landed, then resume together (if playing)
    const my = ++state.token;
    state.busy = true;
    for (const v of vids()) v.pause();
    return Promise.all(vids().map((v) => new Promise((ok) => {
      const want = target(v, t);
      if (Math.abs(v.currentTime - want) < 0.001 && !v.seeking) { ok(); return; }
      v.addEventListener("seeked", ok, {once: true});
      setTimeout(ok, 3000);
      v.currentTime = want;
    }))).then(() => {
      if (my !== state.token) return;
      state.busy = false;
      if (state.playing && !state.dragging) startAll();
      show();
    });
  }
  function setPlaying(on){
    state.playing = on;
    root.dataset.playing = on ? "1" : "0";
    btn.textContent = on ? cfg.pause_label : cfg.play_label;
    btn.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) { if (!state.busy) startAll(); }
    else {
      for (const v of vids()) v.pause();
      const L = leader(); if (L) seekAll(L.currentTime);
    }
  }
  btn.addEventListener("click", () => setPlaying(!state.playing));
  seek.addEventListener("input", () => {
    state.dragging = true;
    const L = leader(); const d = (L && L.duration) || 0;
    seekAll(d * Number(seek.value) / 1000);
  });
  seek.addEventListener("change", () => {
    state.dragging = false;
    const L = leader(); const d = (L && L.duration) || 0;
    seekAll(d * Number(seek.value) / 1000);
  });
  if (!cfg.group && wipeBox) {
    wipeBox.addEventListener("toggle", () => { if (!wipeBox.open) setPlaying(false); });
  }
  root.syncPlay = () => setPlaying(true);
  root.syncPause = () => setPlaying(false);
  root.syncSeek = (t) => seekAll(t);
  // wipe view: two pickers choose the sources, a slider moves the boundary (clip-path on the top video)
  const wa = q("[data-sp=wipe-a]"), wb = q("[data-sp=wipe-b]"), pos = q("[data-sp=wipe-pos]");
  if (wipeBox && wa && wb && pos) {
    const va = q("video[data-wipe=a]"), vb = q("video[data-wipe=b]"), line = q(".sp-line");
    const ta = q(".sp-tag[data-for=a]"), tb = q(".sp-tag[data-for=b]");
    const src = Object.fromEntries(cfg.items.map((it) => [it.run_id, it]));
    function load(sel, v, tag){
      const it = src[sel.value]; if (!it) return;
      tag.textContent = it.label;
      if (v.dataset.runId === it.run_id && v.getAttribute("src")) return;
      v.dataset.runId = it.run_id;
      v.pause();
      v.playbackRate = 1;
      v.addEventListener("loadeddata", () => {
        const L = leader(); if (L && L !== v) hardSeek(v, target(v, L.currentTime));
        if (state.playing) v.play().catch(() => {});
      }, {once: true});
      v.src = it.src;
    }
    function unload(v){ v.pause(); v.removeAttribute("src"); v.load(); }
    function wipe(){
      const p = Number(pos.value);
      vb.style.clipPath = "inset(0 0 0 " + p + "%)";
      line.style.left = "calc(" + p + "% - 1px)";
      root.dataset.wipe = String(p);
    }
    wipeBox.addEventListener("toggle", () => {
      if (wipeBox.open) { load(wa, va, ta); load(wb, vb, tb); } else { unload(va); unload(vb); }
    });
    wa.addEventListener("change", () => load(wa, va, ta));
    wb.addEventListener("change", () => load(wb, vb, tb));
    pos.addEventListener("input", wipe);
    wipe();
  }
  const before = memo[cfg.key];
  function frame(){
    if (!root.isConnected) return;
    correct(); show();
    requestAnimationFrame(frame);
  }
  const tick = setInterval(() => {
    if (!root.isConnected) { clearInterval(tick); return; }
    correct(); show();
  }, 250);
  // the cells may mount after the bar: wait (bounded) until every video of the group is in the page
  const present = new Promise((ok) => {
    const until = performance.now() + 8000;
    (function look(){
      if (vids().length >= cfg.count || performance.now() > until) ok(); else setTimeout(look, 100);
    })();
  });
  present.then(() => Promise.all(vids().map((v) => v.readyState >= 2 ? null : new Promise((ok) => {
    v.addEventListener("loadeddata", ok, {once: true});
    v.addEventListener("error", ok, {once: true});
    setTimeout(ok, 8000);
  })))).then(() => {
    const t = before ? before.t : 0;
    return seekAll(t);
  }).then(() => {
    root.dataset.ready = "loaded";
    if (before && before.playing) setPlaying(true);
    requestAnimationFrame(frame);
  });
})();
"""


def _js_literal(value: Any) -> str:
    """JSON as a JS literal with no '<', '>' or '&' left in it.

    Two reasons: a label cannot close the script element, and Streamlit's DOMPurify pass (SAFE_FOR_XML)
    silently drops any script whose text contains '<' followed by a letter, digit, '/' or '!'.
    """
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _bar(play_label: str = "▶ Play all", aria: str = "seek all") -> str:
    return ('<div class="sp-bar">'
            f'<button type="button" data-sp="play" aria-pressed="false">{play_label}</button>'
            f'<input type="range" data-sp="seek" min="0" max="1000" value="0" step="1" aria-label="{aria}">'
            '<span class="sp-time" data-sp="time">0.0 / – s</span>'
            "</div>")


def _script(cfg: dict[str, Any]) -> str:
    return f"<script>{_JS.replace('__CFG__', _js_literal(cfg))}</script>"


def _digest(items: Sequence[SyncItem]) -> str:
    return hashlib.sha1(  # noqa: S324 - a DOM id, not security
        json.dumps([(i.run_id, i.src, i.label) for i in items]).encode()).hexdigest()[:8]


def cell_html(item: SyncItem, key: str) -> str:
    """One cell's video (or its placeholder words), tied to the group's bar by `data-sp-group` (pure)."""
    k = _safe_key(key)
    if not item.src:
        return f'<div class="sp-vid"><div class="sp-slot">{html.escape(item.label)}</div></div>'
    poster = f' poster="{_attr(item.poster)}"' if item.poster else ""
    return (f'<div class="sp-vid" data-run-id="{_attr(item.run_id)}">'
            f'<video data-sp-video="cell" data-sp-group="{k}" data-run-id="{_attr(item.run_id)}" '
            f'src="{_attr(item.src)}"{poster} muted loop playsinline preload="auto" '
            f'aria-label="{_attr(item.label)}" style="{_VIDEO_STYLE}"></video></div>')


def layout_css(*, sticky_key: str, columns_key: str | None = None) -> str:
    """The bar's container sticks under Streamlit's header while its grid scrolls; on a phone the grid's
    columns stay side by side (Streamlit stacks columns under 640 px: std above pro, nothing compared)."""
    # Streamlit wraps a keyed container in a layout wrapper as tall as the container: the wrapper sticks
    css = (f"[data-testid=stLayoutWrapper]:has(> .st-key-{sticky_key}),.st-key-{sticky_key}"
           "{position:sticky;top:3.75rem;z-index:20}"
           f".st-key-{sticky_key}{{background:var(--sp-bg,#fff);padding:.15rem .5rem;border-radius:.5rem;"
           "box-shadow:0 2px 6px rgba(0,0,0,.15)}"
           f".st-key-{sticky_key} .sp-bar{{margin:.25rem 0}}")
    if columns_key:
        css += (f"@media (max-width:640px){{.st-key-{columns_key} [data-testid=stHorizontalBlock]"
                ":has(> [data-testid=stColumn]){flex-wrap:nowrap!important;gap:.4rem!important}"
                f".st-key-{columns_key} [data-testid=stColumn]{{min-width:0!important;width:auto!important;"
                "flex:1 1 0!important}"
                # half a phone is narrow: a priced button wraps instead of ending in "…"
                f".st-key-{columns_key} button{{height:auto!important;max-width:100%}}"
                f".st-key-{columns_key} button p,.st-key-{columns_key} button div"
                "{white-space:normal!important;overflow:visible!important;text-overflow:clip!important;text-align:left}}")
    return f"<style>{css}</style>"


def bar_html(key: str, count: int, *, sticky_key: str, columns_key: str | None = None) -> str:
    """The one play/pause/seek bar of a group: it drives every `cell_html` video of the same key (pure)."""
    k = _safe_key(key)
    root_id = f"sp-{k}-{int(count)}"
    cfg = {"root": root_id, "key": k, "group": k, "count": int(count), "drift": DRIFT_S,
           "seek_over": SEEK_OVER_S, "items": [], "play_label": "▶ Play all", "pause_label": "❚❚ Pause all"}
    return (f'<div class="sp-root" id="{root_id}" data-sync-player="{k}" data-count="{int(count)}">'
            f"<style>{_CSS}</style>{layout_css(sticky_key=sticky_key, columns_key=columns_key)}"
            f"{_bar()}{_script(cfg)}</div>")


def wipe_html(items: Sequence[SyncItem], key: str) -> str:
    """Two cells on top of each other with a slider between them, and their own play control (pure).

    Needs two videos; an empty string otherwise.
    """
    videos = [i for i in items if i.src]
    if len(videos) < 2:
        return ""
    k = f"{_safe_key(key)}-wipe"
    root_id = f"sp-{k}-{_digest(videos)}"
    cfg = {"root": root_id, "key": k, "group": None, "count": 2, "drift": DRIFT_S, "seek_over": SEEK_OVER_S,
           "items": [{"run_id": i.run_id, "label": i.label, "src": i.src} for i in videos],
           "play_label": "▶ Play", "pause_label": "❚❚ Pause"}
    a, b = videos[0], videos[1]
    opts_a = "".join(f'<option value="{_attr(i.run_id)}"{" selected" if i is a else ""}>'
                     f"{html.escape(i.label)}</option>" for i in videos)
    opts_b = "".join(f'<option value="{_attr(i.run_id)}"{" selected" if i is b else ""}>'
                     f"{html.escape(i.label)}</option>" for i in videos)
    return (
        f'<div class="sp-root" id="{root_id}" data-sp-wipe-player="{k}">'
        f"<style>{_CSS}</style>"
        '<details class="sp-wipe" data-sp="wipe">'
        "<summary><strong>Wipe view</strong>: two cells on top of each other, a slider between them"
        "</summary>"
        '<div class="sp-wipe-pick">'
        f'<label>left <select data-sp="wipe-a" aria-label="left video">{opts_a}</select></label>'
        f'<label>right <select data-sp="wipe-b" aria-label="right video">{opts_b}</select></label>'
        "</div>"
        f'{_bar("▶ Play", "seek the wipe view")}'
        '<div class="sp-stage">'
        '<video data-sp-video="wipe" data-wipe="a" muted loop playsinline preload="auto"></video>'
        '<video data-sp-video="wipe" data-wipe="b" muted loop playsinline preload="auto" '
        'style="clip-path:inset(0 0 0 50%)"></video>'
        '<div class="sp-line" style="left:calc(50% - 1px)"></div>'
        f'<span class="sp-tag" data-for="a" style="left:.4rem">{html.escape(a.label)}</span>'
        f'<span class="sp-tag" data-for="b" style="right:.4rem">{html.escape(b.label)}</span>'
        "</div>"
        '<input type="range" data-sp="wipe-pos" min="0" max="100" value="50" step="1" '
        'aria-label="wipe position">'
        "</details>"
        f"{_script(cfg)}</div>")


def _src(archive: Archive, path: str) -> str:
    """Same-origin path of an archived file, honouring server.baseUrlPath."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{archive.public_url(path)}" if base else archive.public_url(path)


def items_for(runs: Sequence[Run], archive: Archive, labels: dict[str, str] | None = None) -> list[SyncItem]:
    """The archived runs among `runs` as videos (same-origin files that answer Range requests, so seeking
    works); the others are left out."""
    out = []
    for run in runs:
        label = (labels or {}).get(run.run_id) or run.label or run.run_id[:8]
        item = item_for(run, archive, label)
        if item.src:
            out.append(item)
    return out


def item_for(run: Run, archive: Archive, label: str) -> SyncItem:
    """A ledger Run as one video item: its archived copy on our own route, or words while it has none."""
    video_path = getattr(run, "video_path", None)
    if not video_path:
        return SyncItem(run.run_id, f"{label}: not finished yet", "")
    poster_path = getattr(run, "poster_path", None)
    poster = _src(archive, poster_path) if poster_path else None
    return SyncItem(run.run_id, label, _src(archive, video_path), poster)


def cell_video(run: Run, archive: Archive, *, key: str, label: str) -> bool:
    """Draw one cell's video inside the current (cell) container; True when a video was drawn."""
    item = item_for(run, archive, label)
    if not item.src:
        return False
    st.html(cell_html(item, key))
    return True


def bar(key: str, count: int, *, sticky_key: str, columns_key: str | None = None) -> None:
    """Draw the group's bar in a container keyed `sticky_key` (it sticks within its parent container, so
    put it in the same container as the cells)."""
    with st.container(key=sticky_key):
        st.html(bar_html(key, count, sticky_key=sticky_key, columns_key=columns_key),
                unsafe_allow_javascript=True)


def wipe(runs: Sequence[Run], archive: Archive, *, key: str, labels: dict[str, str]) -> bool:
    """Draw the wipe view for the archived runs (at least two); True when drawn."""
    body = wipe_html(items_for(runs, archive, labels), key)
    if body:
        with st.container(key=f"wipe_{_safe_key(key)}"):
            st.html(body, unsafe_allow_javascript=True)
    return bool(body)


__all__ = ["DRIFT_S", "SEEK_OVER_S", "SyncItem", "bar", "bar_html", "cell_html", "cell_video", "item_for",
           "items_for", "layout_css", "wipe", "wipe_html"]
