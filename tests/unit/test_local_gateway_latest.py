"""The embedded gateway under contract "latest", over real HTTP: Sound is charged and rendered as a real AAC
track; frames by role at 15 s are taken; under "v1" the newest durations are refused."""
from __future__ import annotations

import io

import av
import requests

from tests.unit.test_local_gateway import submit, wait_terminal


def test_sound_is_charged_and_the_video_has_an_audio_track(local_gateway):
    gw = local_gateway
    gw.control("config", contract="latest", balance=10.0)
    resp = submit(gw, {"mode": "std", "duration": 4, "audio": True})
    assert resp.status_code == 200, resp.text
    balance = requests.get(gw.url + "/v1/balance", headers=gw.headers, timeout=10).json()
    assert round(10.0 - balance["remain_balance"], 4) == round(4 * (0.0368 + 0.0625), 4)
    done, _ = wait_terminal(gw, resp.json()["id"])
    assert done["status"] == "completed", done
    data = requests.get(done["result"]["data"][0]["url"], timeout=30).content
    with av.open(io.BytesIO(data)) as container:
        audio = container.streams.audio
        assert len(audio) == 1 and audio[0].codec_context.name == "aac"
        assert 3.9 < float(audio[0].duration * audio[0].time_base) < 4.1
        frame = next(container.decode(audio=0))
        assert abs(frame.to_ndarray()).max() > 0.05  # a tone, not silence


def test_without_sound_there_is_no_audio_track(local_gateway):
    gw = local_gateway
    gw.control("config", contract="latest")
    done, _ = wait_terminal(gw, submit(gw, {"duration": 3}).json()["id"])
    data = requests.get(done["result"]["data"][0]["url"], timeout=30).content
    with av.open(io.BytesIO(data)) as container:
        assert [s.type for s in container.streams] == ["video"]


def test_v1_refuses_the_newest_durations_and_latest_takes_frames_by_role_at_15s(local_gateway):
    gw = local_gateway
    assert gw.control("info")["contract"] == "v1"
    refused = submit(gw, {"duration": 7})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "duration"
    gw.control("config", contract="latest")
    roles = [{"url": "https://example.com/a.jpg", "role": "first_frame"}]
    assert submit(gw, {"duration": 15, "image_with_roles": roles}).status_code == 200
    v1_shape = submit(gw, {"duration": 15, "image_urls": ["https://example.com/a.jpg"]})
    assert v1_shape.status_code == 400  # the V1 field keeps the V1 rule
