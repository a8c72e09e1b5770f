"""lib/ui/upload_quota.py on Streamlit's own in-memory upload manager (the server-level attack is in
tests/e2e/test_upload_limits_e2e.py)."""
from __future__ import annotations

import pytest
from starlette.exceptions import HTTPException
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from lib.ui import upload_quota


def rec(file_id: str, size: int) -> UploadedFileRec:
    return UploadedFileRec(file_id=file_id, name="f.png", type="image/png", data=b"\0" * size)


def test_a_session_keeps_at_most_six_files_and_replacing_one_is_fine() -> None:
    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    assert upload_quota.install(mgr) and upload_quota.install(mgr)  # once, however often it is called
    for i in range(upload_quota.PER_SESSION_FILES):
        mgr.add_file("s1", rec(f"f{i}", 1000))
    mgr.add_file("s1", rec("f0", 2000))  # the same id again replaces, it does not add
    with pytest.raises(HTTPException) as info:
        mgr.add_file("s1", rec("f-extra", 1000))
    assert info.value.status_code == 413
    assert info.value.detail.startswith("This page already holds 6 uploaded files")
    mgr.add_file("s2", rec("g0", 1000))  # another session has its own count
    mgr.remove_file("s1", "f1")
    mgr.add_file("s1", rec("f-after-remove", 1000))


def test_all_sessions_together_stay_under_the_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_quota, "TOTAL_BYTES", 10_000)
    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    upload_quota.install(mgr)
    for s in range(4):
        mgr.add_file(f"s{s}", rec("a", 2500))
    with pytest.raises(HTTPException) as info:
        mgr.add_file("s9", rec("a", 1))
    assert "as many uploaded images as it can" in info.value.detail
    mgr.remove_session_files("s0")
    mgr.add_file("s9", rec("a", 2500))


def test_an_unexpected_manager_is_left_alone() -> None:
    class Other:
        def add_file(self, session_id: str, file: object) -> None: ...

    assert upload_quota.install(Other()) is False
