"""TOAPIS_CONTRACT: the newest kling-v3 page's fields (docs/api-contract.md §3.2) behind one setting.

Under v1 nothing outside the seed page is sent or accepted; under latest, Sound is priced on its own,
every duration 3–15 s is offered with no image-to-video limit, and frames and references go by role.
"""
from __future__ import annotations

import pytest

from lib import spend_labels
from lib.config import SettingError, load_settings
from lib.contract import (
    LATEST,
    LATEST_DURATIONS,
    MAX_REFERENCES,
    V1,
    Prices,
    VideoRequest,
    estimate_cost,
    forbidden_reason,
    sound_cost,
    validate,
)

IMG, IMG2, REF = "https://example.com/a.jpg", "https://example.com/b.jpg", "https://example.com/r.jpg"


def latest(**kw) -> VideoRequest:
    return VideoRequest("A drummer", contract=LATEST, **kw)


def test_the_setting_defaults_to_v1_and_reads_latest():
    assert load_settings({}).contract == V1
    assert load_settings({"TOAPIS_CONTRACT": " Latest "}).contract == LATEST


@pytest.mark.parametrize("raw", ["v2", "newest", "1", "v1,latest", "x" * 300])
def test_a_bad_contract_setting_is_refused_in_words(raw):
    with pytest.raises(SettingError) as err:
        load_settings({"TOAPIS_CONTRACT": raw})
    assert err.value.name == "TOAPIS_CONTRACT"
    assert "must be v1 or latest" in str(err.value) and len(str(err.value)) < 200
    assert "TOAPIS_CONTRACT=latest" in err.value.fix


def test_the_sound_price_is_a_setting_and_checked():
    assert load_settings({"PLAYGROUND_PRICE_SOUND": "0.1"}).prices.sound == 0.1
    with pytest.raises(SettingError):
        load_settings({"PLAYGROUND_PRICE_SOUND": "-1"})


def test_latest_offers_every_second_from_3_to_15():
    assert tuple(range(3, 16)) == LATEST_DURATIONS
    for d in LATEST_DURATIONS:
        assert not validate(latest(duration=d)), d
    for d in (2, 16, 0):
        assert [p.field for p in validate(latest(duration=d))] == ["duration"]
    assert "3 to 15 s" in validate(latest(duration=16))[0].message


def test_latest_has_no_image_to_video_limit_but_v1_keeps_it():
    assert not validate(latest(duration=15, image_urls=(IMG, IMG2)))
    assert forbidden_reason("pro", 15, 2, LATEST) is None
    assert forbidden_reason("pro", 15, 1, V1) is not None
    assert [p.field for p in validate(VideoRequest("x", duration=15, image_urls=(IMG,)))] == ["duration"]


def test_v1_refuses_the_newest_fields_in_words_and_never_sends_them():
    req = VideoRequest("A cat", audio=True, references=(REF,), duration=12)
    fields = {p.field: p.message for p in validate(req)}
    assert set(fields) == {"audio", "references", "duration"}
    assert "this app sends v1" in fields["audio"] and "TOAPIS_CONTRACT=latest" in fields["references"]
    assert set(req.to_payload()) == {"model", "prompt", "duration"}


def test_the_latest_payload_names_frames_and_references_by_role():
    req = latest(mode="pro", duration=9, image_urls=(IMG, IMG2), references=(REF,), audio=True)
    body = req.to_payload()
    assert body == {"model": "kling-v3", "prompt": "A drummer", "reference_images": [REF],
                    "image_with_roles": [{"url": IMG, "role": "first_frame"},
                                         {"url": IMG2, "role": "last_frame"}],
                    "audio": True, "mode": "pro", "duration": 9}
    assert VideoRequest.from_dict(body) == req                  # a gateway body reads back
    assert VideoRequest.from_dict(req.to_dict()) == req         # a ledger row reads back
    assert "audio" not in latest().to_payload()                 # Sound off: not sent (the default)


def test_a_v1_request_stores_exactly_what_it_always_did():
    assert set(VideoRequest("A cat", duration=5).to_dict()) == {
        "prompt", "mode", "duration", "aspect_ratio", "image_urls", "negative_prompt", "watermark"}


def test_references_are_checked_like_frames():
    assert not validate(latest(references=(REF,) * MAX_REFERENCES))
    too_many = validate(latest(references=(REF,) * (MAX_REFERENCES + 1)))
    assert "remove 1" in too_many[0].message
    base64 = validate(latest(references=("data:image/png;base64,AAAA",)))
    assert "reference image 1" in base64[0].message and "base64" in base64[0].message
    assert "true/false" in validate(latest(audio="yes"))[0].message  # type: ignore[arg-type]


def test_sound_is_priced_on_its_own():
    prices = Prices(std=0.0368, pro=0.0625, sound=0.0625)
    req = latest(mode="std", duration=12, audio=True)
    assert sound_cost(req, prices) == 0.75
    assert estimate_cost(req, prices) == pytest.approx(12 * 0.0368 + 0.75)
    assert estimate_cost(latest(mode="std", duration=12), prices) == pytest.approx(12 * 0.0368)
    # Sound under v1 is never priced (it is never sent)
    assert sound_cost(VideoRequest("x", duration=5, audio=True), prices) == 0.0
    assert spend_labels.priced("Generate", req, prices) == \
        "Generate · Std 720p · 12 s · ≈ $1.19 (Sound ≈ $0.75)"
    pair = (req.replace(mode="std"), req.replace(mode="pro"))
    assert spend_labels.pair(pair, prices) == "Compare std vs pro · 12 s · ≈ $2.69 (Sound ≈ $1.50)"
    assert spend_labels.priced("Generate", req.replace(audio=None), prices) == \
        "Generate · Std 720p · 12 s · ≈ $0.44"


def test_a_snippet_never_shows_a_local_address_for_a_latest_image():
    from lib import links

    local = "http://127.0.0.1:8765/files/uploads/upload_1.png"
    req = latest(image_urls=(local, IMG), references=(local, REF), audio=True)
    body = links.public_payload(req)
    assert body["image_with_roles"] == [{"url": links.IMAGE_PLACEHOLDER, "role": "first_frame"},
                                        {"url": IMG, "role": "last_frame"}]
    assert body["reference_images"] == [links.IMAGE_PLACEHOLDER, REF] and body["audio"] is True
    assert req.to_payload()["reference_images"][0] == local  # the request itself is untouched
