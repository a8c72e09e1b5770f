"""One control for every finished cell of a grid: play, pause and seek together, plus a wipe view.

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
from typing import Any

import streamlit as st

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


_CSS = """
.sp-root{font-family:inherit;color:inherit}
.sp-bar{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem;margin:.25rem 0 .75rem}
.sp-bar button{border:1px solid rgba(128,128,128,.5);background:transparent;color:inherit;border-radius:.5rem;
 padding:.3rem .8rem;cursor:pointer;font:inherit;min-width:6.5rem}
.sp-bar button:hover{border-color:#6C4DF6;color:#6C4DF6}
.sp-bar input[type=range]{flex:1 1 12rem;accent-color:#6C4DF6;min-width:8rem}
.sp-time{font-variant-numeric:tabular-nums;font-size:.85rem;opacity:.8;min-width:7.5rem;text-align:right}
.sp-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:.75rem}
.sp-grid[data-cols]{grid-template-columns:repeat(var(--sp-cols),minmax(0,1fr))}
@media (max-width:640px){.sp-grid[data-cols]{grid-template-columns:minmax(0,1fr)}}
.sp-cell{margin:0;display:flex;flex-direction:column;gap:.25rem}
.sp-cell video,.sp-stage video{width:100%;aspect-ratio:16/9;background:#000;border-radius:.4rem;
 object-fit:contain;display:block}
.sp-cell figcaption{font-size:.85rem;opacity:.85}
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
  // the wipe view's two videos take part only while it is open (closed, they hold no source: no decoding)
  const vids = () => Array.from(root.querySelectorAll(
      wipeBox && wipeBox.open ? "video[data-sp-video]" : "video[data-sp-video=cell]"));
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
    btn.textContent = on ? "❚❚ Pause all" : "▶ Play all";
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
  Promise.all(vids().map((v) => v.readyState >= 2 ? null : new Promise((ok) => {
    v.addEventListener("loadeddata", ok, {once: true});
    v.addEventListener("error", ok, {once: true});
    setTimeout(ok, 8000);
  }))).then(() => {
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


def build_html(items: Sequence[SyncItem], key: str, *, wipe: bool = True, columns: int | None = None) -> str:
    """The whole player as one HTML string (pure: tested without a browser).

    `columns` lines the videos up like the grid above them (e.g. std | pro); narrow screens get one column.
    """
    k = _safe_key(key)
    digest = hashlib.sha1(  # noqa: S324 - a DOM id, not security
        json.dumps([(i.run_id, i.src, i.label) for i in items]).encode()).hexdigest()[:8]
    videos = [i for i in items if i.src]
    root_id = f"sp-{k}-{digest}"
    cfg = {"root": root_id, "key": k, "drift": DRIFT_S, "seek_over": SEEK_OVER_S,
           "items": [{"run_id": i.run_id, "label": i.label, "src": i.src} for i in videos]}
    cfg_json = _js_literal(cfg)
    cells = []
    for i in items:
        if not i.src:
            cells.append(f'<figure class="sp-cell sp-empty"><div class="sp-slot">{html.escape(i.label)}</div>'
                         "</figure>")
            continue
        poster = f' poster="{_attr(i.poster)}"' if i.poster else ""
        cells.append(
            f'<figure class="sp-cell" data-run-id="{_attr(i.run_id)}">'
            f'<video data-sp-video="cell" data-run-id="{_attr(i.run_id)}" src="{_attr(i.src)}"{poster} '
            f'muted loop playsinline preload="auto"></video>'
            f"<figcaption>{html.escape(i.label)}</figcaption></figure>")
    cols = f' data-cols="{int(columns)}" style="--sp-cols:{int(columns)}"' if columns and columns > 0 else ""
    wipe_html = ""
    if wipe and len(videos) >= 2:
        a, b = videos[0], videos[1]
        opts_a = "".join(f'<option value="{_attr(i.run_id)}"{" selected" if i is a else ""}>'
                         f"{html.escape(i.label)}</option>" for i in videos)
        opts_b = "".join(f'<option value="{_attr(i.run_id)}"{" selected" if i is b else ""}>'
                         f"{html.escape(i.label)}</option>" for i in videos)
        wipe_html = (
            '<details class="sp-wipe" data-sp="wipe">'
            "<summary><strong>Wipe view</strong>: two cells on top of each other, a slider between them"
            "</summary>"
            '<div class="sp-wipe-pick">'
            f'<label>left <select data-sp="wipe-a" aria-label="left video">{opts_a}</select></label>'
            f'<label>right <select data-sp="wipe-b" aria-label="right video">{opts_b}</select></label>'
            "</div>"
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
            "</details>")
    return (
        f'<div class="sp-root" id="{root_id}" data-sync-player="{k}" data-count="{len(videos)}">'
        f"<style>{_CSS}</style>"
        '<div class="sp-bar">'
        '<button type="button" data-sp="play" aria-pressed="false">▶ Play all</button>'
        '<input type="range" data-sp="seek" min="0" max="1000" value="0" step="1" aria-label="seek all">'
        '<span class="sp-time" data-sp="time">0.0 / – s</span>'
        "</div>"
        f'<div class="sp-grid"{cols}>{"".join(cells)}</div>'
        f"{wipe_html}"
        f"<script>{_JS.replace('__CFG__', cfg_json)}</script>"
        "</div>")


def _src(archive: Any, path: str) -> str:
    """Same-origin path of an archived file, honouring server.baseUrlPath."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{archive.public_url(path)}" if base else archive.public_url(path)


def items_for(runs: Sequence[Any], archive: Any, labels: dict[str, str] | None = None, *,
              keep_slots: bool = False) -> list[SyncItem]:
    """Archived runs become videos (same-origin files that answer Range requests, so seeking works).

    With keep_slots, a run not archived yet, or a plain string in `runs`, becomes a placeholder slot, so
    the player keeps the grid's columns; without it they are left out.
    """
    out = []
    for run in runs:
        if isinstance(run, str):
            if keep_slots:
                out.append(SyncItem("", run, ""))
            continue
        label = (labels or {}).get(run.run_id) or run.label or run.run_id[:8]
        if not getattr(run, "video_path", None):
            if keep_slots:
                out.append(SyncItem(run.run_id, f"{label}: not finished yet", ""))
            continue
        poster = _src(archive, run.poster_path) if getattr(run, "poster_path", None) else None
        out.append(SyncItem(run.run_id, label, _src(archive, run.video_path), poster))
    return out


def grid(runs: Sequence[Any], archive: Any, *, key: str, labels: dict[str, str] | None = None,
         wipe: bool = True, columns: int | None = None) -> int:
    """Draw the synced player for the archived runs among `runs`; returns how many videos it holds.

    `runs` are ledger Runs (their `video_path` is played); with `columns`, runs not archived yet and plain
    strings (e.g. "pro · 15 s: not sent") hold their place so the videos line up like the grid.
    """
    items = items_for(runs, archive, labels, keep_slots=bool(columns))
    count = sum(1 for i in items if i.src)
    if not count:
        return 0
    with st.container(key=f"sync_{_safe_key(key)}"):
        st.html(build_html(items, key, wipe=wipe, columns=columns), unsafe_allow_javascript=True)
    return count


__all__ = ["DRIFT_S", "SEEK_OVER_S", "SyncItem", "build_html", "grid", "items_for"]
