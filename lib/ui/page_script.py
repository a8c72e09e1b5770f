"""Small in-page behaviours the server cannot do: a live character counter, bringing an element into view,
and keeping a playing video where it is while cards above it come and go.

Why in the page: Streamlit sends a text area's value only when it loses focus (or on Ctrl+Enter), so a
counter drawn by the script stays at its old number while someone types; and only the browser knows what
is in its viewport. st.html is not iframed in 1.67, so a script in it reaches the page's own elements.
Nothing user-written is ever put into these scripts: their settings are one JSON literal built from
constants and widget keys (with "</" escaped), never string-built code. Each script sits in a hidden
container, so it takes no room.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import streamlit as st

HIDDEN_KEY = "page_script"
_CSS = f'[class*="st-key-{HIDDEN_KEY}_"] {{display: none !important;}}'

# Updates "<n> / <max> · …" under a text area on every keystroke; the server's number replaces it on the
# next run (the same number, once the value is sent). Installed once per page (one document listener).
_COUNTER_JS = """
(() => {
  const cfg = __CFG__;
  window.__kpCounters = window.__kpCounters || {};
  window.__kpCounters[cfg.box] = cfg;
  const paint = (box) => {
    const c = window.__kpCounters[box];
    const root = document.querySelector('.st-key-' + box);
    if (!c || !root) return;
    const area = root.querySelector('textarea');
    const out = root.querySelector('.st-key-' + c.counter + ' p');
    if (!area || !out) return;
    const n = area.value.length;
    out.textContent = n + ' / ' + c.max + c.suffix;
    out.style.color = n > c.max ? '#d33' : '';
  };
  paint(cfg.box);
  if (window.__kpCounterOn) return;
  window.__kpCounterOn = true;
  document.addEventListener('input', (e) => {
    const t = e.target;
    if (!t || t.tagName !== 'TEXTAREA') return;
    for (const box of Object.keys(window.__kpCounters)) {
      const root = document.querySelector('.st-key-' + box);
      if (root && root.querySelector('textarea') === t) paint(box);
    }
  }, true);
})();
"""

# Finds the element (it may arrive a moment after this script), marks it for 2.5 s so the eye finds it,
# and scrolls it into view when it is not, but only once the person has stopped pressing (no pointer
# press for SETTLE ms): a double click's second press must land on the button the first one hit, not on
# whatever scrolled under the pointer (lib/presses.py's window is about one press away from that).
_REVEAL_JS = """
(() => {
  const cfg = __CFG__;
  const SETTLE = cfg.mark ? 2500 : 0;  // only a new run's card waits for the presses to stop
  if (!window.__kpPressListening) {
    window.__kpPressListening = true;
    window.addEventListener('pointerdown', () => { window.__kpPressAt = Date.now(); }, true);
  }
  // this script comes from a press (Generate): it counts as one, so a click already on its way still
  // lands on the button it aimed at
  if (cfg.mark) window.__kpPressAt = Math.max(window.__kpPressAt || 0, Date.now());
  const deadline = Date.now() + 4000;
  const mark = (el) => {
    el.setAttribute('data-kp-new', '1');
    setTimeout(() => el.removeAttribute('data-kp-new'), 2500);
  };
  const scroll = (el) => {
    const wait = window.__kpPressAt + SETTLE - Date.now();
    if (wait > 0) { setTimeout(() => scroll(el), wait); return; }
    if (!el.isConnected) return;
    const r = el.getBoundingClientRect();
    const seen = r.top >= 0 && r.top < window.innerHeight * cfg.within;
    el.style.scrollMarginTop = '4.5rem';  // clear of Streamlit's header bar
    if (!seen) el.scrollIntoView({block: 'start', behavior: 'auto'});
  };
  const look = () => {
    const el = document.querySelector('.st-key-' + cfg.key);
    if (!el) { if (Date.now() < deadline) setTimeout(look, 100); return; }
    if (cfg.mark) mark(el);
    // someone watching a video keeps it where it is (hold_playing_video): the outline alone points out
    // the new element then
    const watching = Array.from(document.querySelectorAll('video')).some((v) => {
      const b = v.getBoundingClientRect();
      return !v.paused && !v.ended && b.bottom > 0 && b.top < window.innerHeight;
    });
    if (!watching) scroll(el);
  };
  look();
})();
"""

# A playing video keeps its place on the screen: when content above it grows or shrinks (a new card at
# the top of the column) the scrolling container moves by the same amount. A scroll the person asked for
# (wheel, touch, scroll keys, the scrollbar) is theirs: then only the part the layout moved is undone.
# Streamlit's rerun can also shorten the page for a moment, which pulls the scroll position up with no
# one asking: that is undone too.
_HOLD_JS = """
(() => {
  if (window.__kpHold) return;
  window.__kpHold = true;
  let asked = 0;
  const mine = () => { asked = Date.now(); };
  const keys = new Set(['PageUp', 'PageDown', 'Home', 'End', 'ArrowUp', 'ArrowDown', ' ', 'Tab']);
  const typing = (t) => t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.isContentEditable);
  window.addEventListener('wheel', mine, {capture: true, passive: true});
  window.addEventListener('touchmove', mine, {capture: true, passive: true});
  window.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || !keys.has(e.key)) return;
    if (typing(e.target) && !['Tab', 'PageUp', 'PageDown'].includes(e.key)) return;
    mine();
  }, true);
  window.addEventListener('pointerdown', (e) => {
    const t = e.target;  // the scrollbar: a press on the scrolling element itself
    if (t && t.scrollHeight > t.clientHeight && getComputedStyle(t).overflowY !== 'visible') mine();
  }, true);
  const scroller = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const s = getComputedStyle(p).overflowY;
      if ((s === 'auto' || s === 'scroll') && p.scrollHeight > p.clientHeight) return p;
    }
    return document.scrollingElement;
  };
  let last = null;
  const tick = () => {
    const v = Array.from(document.querySelectorAll('video')).find(
      (x) => !x.paused && !x.ended && x.isConnected && !x.closest('[data-sync-player]'));
    if (!v) { last = null; requestAnimationFrame(tick); return; }
    const box = scroller(v);
    const top = v.getBoundingClientRect().top;
    if (last && last.video === v && last.box === box) {
      const seen = top - last.top;                           // how far it moved on the screen
      const layout = seen + (box.scrollTop - last.scroll);   // of which the page's own change
      const moved = Date.now() - asked < 350 ? layout : seen;
      if (Math.abs(moved) > 1) box.scrollTop += moved;
    }
    last = {video: v, box: box, top: v.getBoundingClientRect().top, scroll: box.scrollTop};
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""

# st.code's copy button shows only while the pointer hovers the code, and a phone has no hover: in a
# popover (Share, Code) the button is what the person came for, so it is always shown there.
_IN_POPOVER = "[data-testid='stPopoverBody'] [data-testid='stCode']"
_COPY = "button[aria-label='Copy to clipboard']"
POPOVER_COPY_CSS = (f"{_IN_POPOVER} div:has({_COPY}), {_IN_POPOVER} div:has({_COPY}) * "
                    "{visibility: visible !important; opacity: 1 !important;}")

_MARK_CSS = ("[data-kp-new] {outline: 2px solid #6C4DF6; outline-offset: 2px; border-radius: .5rem;"
             " transition: outline-color 1s;}")


def _cfg(data: dict[str, Any]) -> str:
    return json.dumps(data).replace("</", "<\\/")


def _run(js: str, data: dict[str, Any] | None = None, css: str = "") -> None:
    body = js.replace("__CFG__", _cfg(data or {}))
    digest = hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()[:12]
    with st.container(key=f"{HIDDEN_KEY}_{digest}"):
        st.html(f"<style>{_CSS}{css}</style><script>{body}</script>", unsafe_allow_javascript=True)


def live_counter(box_key: str, counter_key: str, limit: int, suffix: str = "") -> None:
    """Make the caption in `st.container(key=counter_key)` count the first text area of `box_key` live.

    Streamlit's own "Press Ctrl+Enter to apply" under the box's text areas is hidden: the caption says
    what Ctrl+Enter does on this page, and two hints for one key contradict each other.
    """
    hide = f".st-key-{box_key} [data-testid='InputInstructions'] {{display: none;}}"
    _run(_COUNTER_JS, {"box": box_key, "counter": counter_key, "max": limit, "suffix": suffix}, hide)


def reveal(element_key: str, *, nonce: str = "", mark: bool = False, within: float = 0.75) -> None:
    """Scroll the element with `st.container(key=element_key)` into view unless its top is already in the
    top `within` of the viewport; `mark` outlines it briefly (and, while a video plays in view, is all it
    does: the video keeps its place). A new `nonce` (e.g. the run shown) runs it again even when the
    previous run of the page drew the same call."""
    cfg = {"key": element_key, "mark": mark, "within": within, "nonce": nonce}
    _run(_REVEAL_JS, cfg, _MARK_CSS if mark else "")


def hold_playing_video() -> None:
    """Keep a playing video in place while the page changes above it (installed once per page)."""
    _run(_HOLD_JS)


def style(css: str) -> None:
    """Page CSS (a style-only st.html goes to the page's event container and takes no room)."""
    st.html(f"<style>{css}</style>")


__all__ = ["POPOVER_COPY_CSS", "hold_playing_video", "live_counter", "reveal", "style"]
