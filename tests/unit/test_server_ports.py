"""A server whose picked port is taken before it binds starts again on another port (two xdist workers
pick ports at the same time); a port the test chose is never swapped behind its back."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures import servers
from tests.fixtures.servers import GatewayProcess, PortTaken


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_picked_port_that_was_taken_is_picked_again(
    tmp_path: Path, taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([taken])
    real = servers.free_port
    monkeypatch.setattr(servers, "free_port", lambda: next(picks, None) or real())
    gw = GatewayProcess(tmp_path / "gw").start()
    try:
        assert gw.port != taken
        assert requests.get(f"{gw.url}/__control/info", timeout=10).status_code == 200
        assert gw.log.read_text().lower().count("already in use") == 1  # the first try did meet it
    finally:
        gw.stop()


def test_a_port_the_test_chose_is_not_swapped(tmp_path: Path, taken: int) -> None:
    gw = GatewayProcess(tmp_path / "gw", port=taken)
    with pytest.raises(PortTaken):
        gw.start()
    assert gw.port == taken
