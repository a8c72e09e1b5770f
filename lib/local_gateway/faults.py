"""One-shot faults for tests and demos: HTTP-level faults per endpoint and task-level failures.

Faults are a FIFO queue: each request takes the first fault whose endpoint matches, and a fault is gone
after `count` uses. That keeps a scripted scenario ("one 429, then success") exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

ENDPOINTS = ("submit", "query", "upload", "balance", "file", "any")
MODES = ("status", "drop", "malformed", "delay", "unknown_status")


@dataclass
class Fault:
    endpoint: str
    mode: str
    status: int = 500
    retry_after: int = 1
    delay: float = 0.0
    count: int = 1
    value: str = "paused"  # the status word sent by mode unknown_status

    @classmethod
    def from_body(cls, body: Any) -> Fault:
        """Parse a POST /__control/faults body; ValueError with words on a bad one."""
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        endpoint = body.get("endpoint", "any")
        mode = body.get("mode", "status")
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        try:
            fault = cls(
                endpoint=endpoint,
                mode=mode,
                status=int(body.get("status", 500)),
                retry_after=int(body.get("retry_after", 1)),
                delay=float(body.get("delay", 0.0)),
                count=int(body.get("count", 1)),
                value=str(body.get("value", "paused")),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad number in fault: {exc}") from None
        if not 100 <= fault.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if fault.count < 1 or fault.delay < 0 or fault.delay > 600 or fault.retry_after < 0:
            raise ValueError("count must be >= 1, delay within 0..600 s, retry_after >= 0")
        return fault

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TaskFailure:
    code: str
    message: str


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: list[Fault] = []
        self._tasks: list[TaskFailure] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._http.append(fault)

    def take(self, category: str) -> Fault | None:
        """The fault for this request, if any; uses it up."""
        with self._lock:
            for fault in self._http:
                if fault.endpoint in (category, "any"):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._http.remove(fault)
                    return Fault(**{**fault.__dict__, "count": 1})
        return None

    def fail_next(self, count: int, code: str, message: str) -> None:
        with self._lock:
            self._tasks.extend(TaskFailure(code, message) for _ in range(count))

    def take_failure(self) -> TaskFailure | None:
        with self._lock:
            return self._tasks.pop(0) if self._tasks else None

    def pending(self) -> dict[str, Any]:
        with self._lock:
            return {"faults": [f.to_dict() for f in self._http], "fail_next": len(self._tasks)}

    def clear(self) -> None:
        with self._lock:
            self._http.clear()
            self._tasks.clear()
