"""A ceiling on the uploaded files Streamlit keeps in memory: per session and for the whole process.

Why: `server.maxUploadSize` bounds one file (10 MB), but Streamlit keeps every uploaded file in memory until
its session ends, and any session (a share-view tab, or a script speaking the websocket protocol) may
PUT files to /_stcore/upload_file/<session>/<new id> whether or not an uploader asked for them: thirty
10 MB files took a test server from 70 to 423 MB. The browser deletes a file it replaces, so a person
holds at most one file per uploader (four on our pages); a session may keep PER_SESSION_FILES, and all
sessions together TOTAL_BYTES. A file over either is refused with HTTP 413 and words, before it is kept.

Streamlit has no hook for this; the check wraps `add_file` of the runtime's own upload manager (the same
object its upload route calls), once per process. If the manager is not the in-memory one this expects,
nothing is wrapped and a warning is logged.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from starlette.exceptions import HTTPException

from lib.contract import MAX_IMAGE_MB

log = logging.getLogger(__name__)

PER_SESSION_FILES = 6                          # four uploaders on our pages, plus slack
TOTAL_BYTES = 20 * MAX_IMAGE_MB * 1024 * 1024  # every session together: twenty full-size frames

_lock = threading.Lock()
_MARK = "_playground_upload_quota"


def refusal(session_files: int, total_bytes: int, size: int) -> str | None:
    """Why one more file of `size` bytes may not be kept, or None if it may."""
    if session_files + 1 > PER_SESSION_FILES:
        return (f"This page already holds {session_files} uploaded files, the most one page may keep; "
                "remove one or reload the page, then upload again.")
    if total_bytes + size > TOTAL_BYTES:
        return "The server holds as many uploaded images as it can right now; try again in a few minutes."
    return None


def install(manager: Any) -> bool:
    """Wrap `manager.add_file` with the quota (once); False when the manager is not the expected kind."""
    if getattr(manager, _MARK, False):
        return True
    storage = getattr(manager, "file_storage", None)
    if not isinstance(storage, dict) or not callable(getattr(manager, "add_file", None)):
        log.warning("upload quota not installed: unexpected upload manager %s", type(manager).__name__)
        return False
    original = manager.add_file

    def add_file(session_id: str, file: Any) -> None:
        with _lock:
            mine = manager.file_storage.get(session_id) or {}
            held = [f for k, f in mine.items() if k != file.file_id]  # the same id again replaces
            total = sum(len(f.data) for files in list(manager.file_storage.values()) for f in files.values())
            why = refusal(len(held), total, len(file.data))
            if why:
                log.warning("upload refused for session %s: %s", session_id[:8], why)
                raise HTTPException(status_code=413, detail=why)
            original(session_id, file)

    manager.add_file = add_file
    setattr(manager, _MARK, True)
    return True


def install_in_runtime() -> None:
    """Install on the running Streamlit server's upload manager (no-op without a runtime, e.g. AppTest)."""
    from streamlit import runtime

    if not runtime.exists():
        return
    manager = runtime.get_instance().uploaded_file_mgr
    if not getattr(manager, _MARK, False):
        install(manager)
