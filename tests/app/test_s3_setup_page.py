"""A bad object-storage setting on the set-up page (AppTest, every page): the setting's name, what it must
be and what to set, never the secret key; a share link names only the setting."""
from __future__ import annotations

import pytest

from lib.ui.setup_page import TITLE as SETUP_TITLE
from tests.app.test_robustness import all_text, assert_no_traceback, open_page

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYzEXAMPLEKEY"


@pytest.mark.parametrize("page", ["app.py", "pages/run.py"])
def test_a_bad_bucket_name_is_said_on_the_setup_page(monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.setenv("PLAYGROUND_ARCHIVE", "s3://Bad_Bucket/kling")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    at = open_page(page, {})
    assert_no_traceback(at, page)
    assert [t.value for t in at.title] == [SETUP_TITLE]
    text = all_text(at)
    assert SECRET not in text and "PLAYGROUND_ARCHIVE" in text
    if page == "pages/run.py":  # a stranger with a share link reads which setting, not its value
        assert "Bad_Bucket" not in text
        return
    assert ("PLAYGROUND_ARCHIVE names the bucket 'Bad_Bucket', which is not a valid bucket name (3 to 63 "
            "lower-case letters, digits, dots or dashes, starting and ending with a letter or digit)."
            ) in text
    assert "**What to do:** Set PLAYGROUND_ARCHIVE to a folder" in text


def test_half_a_key_is_said_on_the_setup_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_ARCHIVE", "s3://team-archive/kling")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    at = open_page("app.py", {})
    assert_no_traceback(at, "app.py")
    text = all_text(at)
    assert SECRET not in text
    assert ("AWS_ACCESS_KEY_ID is not set, but the other half of the object store's access key is: both or "
            "neither are needed.") in text
