"""PLAYGROUND_ARCHIVE=s3://bucket/prefix and its settings (lib/config.py): read, checked, explained.

Every bad value names its setting, says what it must be and what to set (the set-up page draws exactly
these words, tests/app/test_s3_setup_page.py), and the secret access key is never echoed, whatever is
wrong. A folder archive with no S3 settings stays exactly as before.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lib import startup
from lib.config import REPO_ROOT, SettingError, load_settings
from lib.storage import LocalFolder, S3Location, open_storage

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY"
GOOD = {"PLAYGROUND_ARCHIVE": "s3://team-archive/kling/videos", "PLAYGROUND_S3_ENDPOINT": "http://127.0.0.1:8333/",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET}


def test_an_s3_archive_is_read_whole() -> None:
    s = load_settings(GOOD)
    assert s.archive_s3 == S3Location(bucket="team-archive", prefix="kling/videos",
                                      endpoint_url="http://127.0.0.1:8333", region="us-east-1",
                                      access_key_id="AKIAEXAMPLE", secret_access_key=SECRET)
    assert s.archive_location == s.archive_s3 and s.archive_s3.url == "s3://team-archive/kling/videos"
    assert SECRET not in repr(s) and "AKIAEXAMPLE" not in repr(s)


def test_region_keys_and_endpoint_are_optional() -> None:
    s = load_settings({"PLAYGROUND_ARCHIVE": "s3://bucket.with.dots", "AWS_REGION": "eu-central-1"})
    assert s.archive_s3 == S3Location(bucket="bucket.with.dots", region="eu-central-1")
    assert load_settings({**GOOD, "PLAYGROUND_S3_REGION": "auto"}).archive_s3.region == "auto"


def test_a_folder_archive_is_unchanged(tmp_path: Path) -> None:
    s = load_settings({"PLAYGROUND_ARCHIVE": str(tmp_path), "AWS_ACCESS_KEY_ID": "only-half"})
    assert s.archive_s3 is None and s.archive_location == tmp_path
    assert isinstance(open_storage(s.archive_location), LocalFolder)
    assert load_settings({}).archive_location == REPO_ROOT / "data" / "archive"


@pytest.mark.parametrize(("change", "name", "words"), [
    ({"PLAYGROUND_ARCHIVE": "gs://bucket/x"}, "PLAYGROUND_ARCHIVE", "gs:// stores are not supported"),
    ({"PLAYGROUND_ARCHIVE": "s3://Bad_Bucket/x"}, "PLAYGROUND_ARCHIVE", "not a valid bucket name"),
    ({"PLAYGROUND_ARCHIVE": "s3://ab"}, "PLAYGROUND_ARCHIVE", "not a valid bucket name"),
    ({"PLAYGROUND_ARCHIVE": "s3://"}, "PLAYGROUND_ARCHIVE", "not a valid bucket name"),
    ({"PLAYGROUND_ARCHIVE": "s3://bucket/../etc"}, "PLAYGROUND_ARCHIVE", "must be folder names"),
    ({"PLAYGROUND_ARCHIVE": "s3://bucket/a/.hidden"}, "PLAYGROUND_ARCHIVE", "must be folder names"),
    ({"PLAYGROUND_ARCHIVE": "s3://bucket/a b"}, "PLAYGROUND_ARCHIVE", "must be folder names"),
    ({"PLAYGROUND_ARCHIVE": "s3://bucket:9000/x"}, "PLAYGROUND_ARCHIVE", "no port, ?query or #fragment"),
    ({"PLAYGROUND_ARCHIVE": "s3://bucket/x?versionId=1"}, "PLAYGROUND_ARCHIVE", "no port, ?query"),
    ({"PLAYGROUND_ARCHIVE": "s3://bucket:99999999/x"}, "PLAYGROUND_ARCHIVE", "cannot be read"),
    ({"PLAYGROUND_S3_ENDPOINT": "127.0.0.1:8333"}, "PLAYGROUND_S3_ENDPOINT", "must be the http(s) address"),
    ({"PLAYGROUND_S3_ENDPOINT": "http://127.0.0.1:8333/bucket"}, "PLAYGROUND_S3_ENDPOINT", "with no path"),
    ({"PLAYGROUND_S3_ENDPOINT": "http://[oops"}, "PLAYGROUND_S3_ENDPOINT", "cannot be read as a URL"),
    ({"PLAYGROUND_S3_REGION": "Europe West"}, "PLAYGROUND_S3_REGION", "must be a region name"),
    ({"AWS_SECRET_ACCESS_KEY": ""}, "AWS_SECRET_ACCESS_KEY", "both or neither are needed"),
    ({"AWS_ACCESS_KEY_ID": ""}, "AWS_ACCESS_KEY_ID", "both or neither are needed"),
    ({"AWS_ACCESS_KEY_ID": "has space"}, "AWS_ACCESS_KEY_ID", "must be an access key id"),
    ({"AWS_SECRET_ACCESS_KEY": SECRET + " tail"}, "AWS_SECRET_ACCESS_KEY", "characters a secret key never"),
])
def test_each_bad_value_names_its_setting_in_words(change: dict[str, str], name: str, words: str) -> None:
    with pytest.raises(SettingError) as err:
        load_settings({**GOOD, **change})
    problem = startup.diagnose(err.value)
    assert problem.setting == name and words in problem.problem, problem
    assert problem.fix.startswith(("Set ", "Copy ", "Remove ")), problem.fix
    for text in (problem.problem, problem.fix, problem.detail):
        assert SECRET not in text and "tail" not in text


@pytest.mark.parametrize("url", [f"s3://AKIAEXAMPLE:{SECRET}@bucket/x", f"s3://me:{SECRET}@[oops/x"])
def test_a_credential_in_the_archive_url_is_never_echoed(url: str) -> None:
    with pytest.raises(SettingError) as err:
        load_settings({**GOOD, "PLAYGROUND_ARCHIVE": url})
    assert err.value.name == "PLAYGROUND_ARCHIVE" and SECRET not in str(err.value) + err.value.fix


def test_an_endpoint_with_a_login_is_never_echoed() -> None:
    with pytest.raises(SettingError) as err:
        load_settings({**GOOD, "PLAYGROUND_S3_ENDPOINT": f"https://me:{SECRET}@s3.example.com"})
    assert "must not contain a user name or password" in str(err.value) and SECRET not in str(err.value)


def test_s3_settings_without_an_s3_archive_are_pointed_out(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as err:
        load_settings({"PLAYGROUND_ARCHIVE": str(tmp_path), "PLAYGROUND_S3_ENDPOINT": "http://127.0.0.1:1"})
    assert err.value.name == "PLAYGROUND_S3_ENDPOINT" and "would be ignored" in str(err.value)
