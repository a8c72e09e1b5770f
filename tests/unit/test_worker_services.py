"""lib/services.py: the process wiring, started the way the app starts it (no key -> embedded gateway)."""
from __future__ import annotations

import time

import pytest

from lib import ledger as L
from lib.config import load_settings
from lib.contract import VideoRequest
from lib.gateway import GatewayClient, GatewayUnavailable
from lib.ledger import Ledger
from lib.services import start_services


def test_no_key_starts_the_embedded_gateway_and_a_worker_that_finishes_runs(tmp_path):
    settings = load_settings(env={
        "PLAYGROUND_DATA": str(tmp_path), "LOCAL_GATEWAY_SPEED": "40", "PLAYGROUND_FIRST_LOOK": "0.2",
    })
    services = start_services(settings)
    try:
        assert services.local_gateway is not None
        assert services.base_url.startswith("http://127.0.0.1:")
        assert services.worker.running
        assert services.worker.client.limiter is services.client.limiter is services.limiter
        assert services.balance() is not None  # the gateway answers
        run_id = Ledger.new_id()
        services.ledger.create_run(run_id, VideoRequest(prompt="a paper boat", aspect_ratio="1:1"), 0.18)
        services.worker.wake()
        deadline = time.monotonic() + 30
        run = services.ledger.get(run_id)
        while run.video_path is None and time.monotonic() < deadline:
            time.sleep(0.05)
            run = services.ledger.get(run_id)
        assert run.state == L.COMPLETED and run.video_path.startswith("videos/")
        assert run_id not in run.video_path and services.archive.exists(run.video_path)
        assert (settings.archive_dir / run.video_path).stat().st_size > 1000
        url = services.base_url
    finally:
        services.stop()
    assert not services.worker.running
    with pytest.raises(GatewayUnavailable):  # stop() stopped the embedded gateway too
        GatewayClient(url, "local-playground", timeout=(0.5, 0.5)).balance()


def test_base_url_without_key_uses_that_gateway(local_gateway, tmp_path):
    settings = load_settings(env={"PLAYGROUND_DATA": str(tmp_path), "TOAPIS_BASE_URL": local_gateway.url})
    services = start_services(settings, start_worker=False)
    try:
        assert services.local_gateway is None
        assert services.base_url == local_gateway.url
        assert services.balance() is not None
    finally:
        services.stop()

