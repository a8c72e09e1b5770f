"""LocalGateway: the server in a background thread, for the app, the tests and the CLI.

uvicorn runs on a socket we bind ourselves, so `port=0` gives a real port before the thread even starts,
and `start()` returns only once the gateway answers.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from lib.safe_fetch import SafeFetcher

from .engine import Engine
from .server import ABORT_KEY, build_app

log = logging.getLogger(__name__)


class DroppableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, also handing the app a way to drop the connection without a response.

    ASGI has no "close without answering"; the "drop" fault needs exactly that to imitate a gateway that
    vanishes mid-request.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        inner = self.app

        async def app(scope: dict, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[ABORT_KEY] = transport.abort
            await inner(scope, receive, send)

        self.app = app


class LocalGateway:
    def __init__(
        self, data_dir: Path | str, host: str = "127.0.0.1", port: int = 0, speed: float = 1.0,
        *, image_fetcher: SafeFetcher | None = None, progress: str = "fast", seed: int | None = None,
        render_workers: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.progress, self.seed = progress, seed  # the clock's progress model (README "Clock")
        self.host = host
        self.port = port
        self.speed = speed
        self.render_workers = render_workers  # None: engine.default_render_workers()
        self.image_fetcher = image_fetcher  # None: pasted image URLs may not reach private addresses
        self.engine: Engine | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LocalGateway(url={self.url if self._server else None!r}, data_dir={str(self.data_dir)!r})"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> LocalGateway:
        """Start serving; returns once GET /__control/info answers (RuntimeError otherwise)."""
        if self._server is not None:
            return self
        self.engine = Engine(self.data_dir, speed=self.speed, image_fetcher=self.image_fetcher,
                             progress=self.progress, seed=self.seed, render_workers=self.render_workers)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            self.engine.close()
            self.engine = None
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.engine),
            http=DroppableH11Protocol,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"local-gateway-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                break
            if self._server.started and self._answers():
                log.info("local gateway at %s (data %s, speed %s)", self.url, self.data_dir, self.speed)
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"local gateway did not start on {self.host}:{self.port}")

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            conn.request("GET", "/__control/info")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self.engine is not None:
            self.engine.close()
        self._server = self._thread = None
        self.engine = None

    def __enter__(self) -> LocalGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
