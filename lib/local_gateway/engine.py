"""The gateway's behaviour behind the HTTP routes: accept tasks, report them, render their videos.

Routes stay thin (server.py); this is where the clock, the store, the render queue, the balance and the
task-level faults meet. Renders run in a small pool of background threads (`render_workers`, default
two), started when a task is accepted so the file is normally ready before the clock says completed.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from lib.image_type import gateway_type
from lib.safe_fetch import FetchError, FetchPolicy, SafeFetcher

from . import clock
from .faults import Faults
from .limits import SlidingWindow
from .render import ImageTooLarge, RenderCancelled, render_clip
from .store import Store, TaskRow
from .validation import ClipRequest

log = logging.getLogger(__name__)

PRICES = {"std": 0.0368, "pro": 0.0625}  # USD per second (docs/api-contract.md §8); 1 USD = 200 credits
SOUND_PRICE = 0.0625  # USD per second added with audio (kling-2-6's pro: $0.125/s with, $0.0625/s without)
CREDITS_PER_USD = 200
EXPIRY_SECONDS = 86400
MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")  # the bytes are sniffed anyway
UPLOAD_NAME = re.compile(r"^upload_[A-Za-z0-9]+\.(jpg|png|webp|gif)$")
_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_task_id(now: float) -> str:
    """ULID-like: time-ordered and unguessable (ids are opaque to clients anyway)."""
    value = (int(now * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_B32[value & 31])
        value >>= 5
    return "video_" + "".join(reversed(chars))


def default_render_workers() -> int:
    """Renders at once when nobody says: two (one on a one-core machine).

    One render keeps the cores busy only part of the time (frames are composed in Python before x264
    sees them, and a short clip is mostly set-up), so a second render fills the gaps; more than that
    only queue for the same cores and each file takes longer to appear (measured in bench/RESULTS.md,
    figure 6)."""
    return max(1, min(2, os.cpu_count() or 1))


class RenderQueue:
    """A small pool of render threads fed in acceptance order; waiters can block on one task.

    A task is rendered by at most one thread at a time (a task queued again while it renders is not
    queued twice), so a video is written once however often it is asked for."""

    def __init__(self, job: Callable[[str, threading.Event], None], workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("a render queue needs at least one worker")
        self._job = job
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._pending: set[str] = set()
        self._current: set[str] = set()
        self._stop = threading.Event()
        self.workers = workers
        self._threads = [threading.Thread(target=self._run, name=f"local-gateway-render-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def enqueue(self, task_id: str, *, urgent: bool = False) -> None:
        with self._cond:
            if task_id in self._pending or task_id in self._current:
                if urgent and task_id in self._queue:
                    self._queue.remove(task_id)
                    self._queue.appendleft(task_id)
                return
            self._pending.add(task_id)
            (self._queue.appendleft if urgent else self._queue.append)(task_id)
            self._cond.notify_all()

    def wait(self, task_id: str, timeout: float) -> bool:
        """Block until `task_id` is neither queued nor rendering; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while task_id in self._pending or task_id in self._current:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._current)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
                task_id = self._queue.popleft()
                self._pending.discard(task_id)
                self._current.add(task_id)
            try:
                self._job(task_id, self._stop)
            except Exception:
                log.exception("render of %s failed", task_id)
            finally:
                with self._cond:
                    self._current.discard(task_id)
                    self._cond.notify_all()


def image_fetch_failed(what: str) -> str:
    """The one sentence for any image URL that could not be used (no hint of what the network answered)."""
    return (f"the {what} image URL could not be used: it must be a public http(s) address that answers "
            "with a JPEG, PNG, WebP or GIF image of at most 10 MB")


def default_image_fetcher() -> SafeFetcher:
    """No trusted origin, no private addresses, short caps: a pasted image is small or not worth the wait."""
    return SafeFetcher(FetchPolicy(), connect_timeout=3.0, read_timeout=10.0, total_timeout=20.0)


class Engine:
    def __init__(
        self, data_dir: Path, speed: float = 1.0, *, image_fetcher: SafeFetcher | None = None,
        progress: str = clock.FAST, seed: int | None = None, render_workers: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        # Tests that must fetch from loopback pass their own fetcher; the default refuses it.
        self.image_fetcher = image_fetcher or default_image_fetcher()
        self.videos = self.data_dir / "videos"
        self.posters = self.data_dir / "posters"
        self.uploads = self.data_dir / "uploads"
        for d in (self.videos, self.posters, self.uploads):
            d.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.data_dir / "local_gateway.db")
        self.speed = float(speed)
        self.set_progress(progress, seed)
        self.allow_pro_15 = True
        # "v1": the seed page's rules; "latest": the newest page's fields too (POST config {"contract"}, or
        # the app's TOAPIS_CONTRACT for the embedded gateway)
        self.contract = "v1"
        self.faults = Faults()
        self.limiter = SlidingWindow()
        self.renders = RenderQueue(self._render, render_workers or default_render_workers())
        for task in self.store.unrendered_tasks():  # accepted before a restart, never finished
            self.renders.enqueue(task.id)

    def set_progress(self, progress: str, seed: int | None = None) -> None:
        """Pick the clock's progress model for tasks accepted from now on (README "Clock").

        With a seed, the n-th task accepted gets the n-th shape of that seed's sequence: a bench or a test
        sees the same shapes on every run. Without one, each task draws its own."""
        if progress not in clock.PROGRESS_MODELS:
            raise ValueError(f"progress must be one of {', '.join(clock.PROGRESS_MODELS)}")
        self.progress, self.seed = progress, seed
        self._seq = itertools.count()

    def _progress_for_new_task(self) -> str | None:
        if self.progress == clock.FAST:
            return None
        shape = f"{self.seed}-{next(self._seq)}" if self.seed is not None else secrets.token_hex(8)
        return f"{clock.REALISTIC}:{shape}"

    def timeline(self, task: TaskRow) -> clock.Timeline:
        return clock.Timeline.for_task(task.mode, task.duration, task.speed, task.progress)

    def close(self) -> None:
        self.renders.stop()
        self.store.close()

    # -- tasks ----------------------------------------------------------------------------------------------
    def accept(self, req: ClipRequest, raw: dict) -> TaskRow | None:
        """Charge and store a new task; None if the balance cannot pay for it."""
        now = time.time()
        task = TaskRow(
            id=new_task_id(now),
            created_at=now,
            model="kling-v3",
            mode=req.mode,
            duration=req.duration,
            aspect=req.aspect,
            prompt=req.prompt,
            request=raw,
            first_image=req.first_image,
            last_image=req.last_image,
            speed=self.speed,
            cost=round((PRICES[req.mode] + (SOUND_PRICE if req.audio else 0.0)) * req.duration, 6),
            fail_code=None,
            fail_message=None,
            refunded=False,
            rendered_at=None,
            expired=False,
            progress=self._progress_for_new_task(),
        )
        if not self.store.charge(task):
            return None
        failure = self.faults.take_failure()
        if failure is not None:
            self.store.set_failure(task.id, failure.code, failure.message)
            return self.store.get_task(task.id)
        self.renders.enqueue(task.id)
        return task

    def video_path(self, task_id: str) -> Path:
        return self.videos / f"{task_id}.mp4"

    def poster_path(self, task_id: str) -> Path:
        return self.posters / f"{task_id}.jpg"

    def read(self, task: TaskRow, now: float | None = None) -> clock.Reading:
        """The task's state now; queues a render when the file is missing (after a restart or a wipe)."""
        now = time.time() if now is None else now
        rendered_at = task.rendered_at
        if task.fail_code is None and (rendered_at is None or not self.video_path(task.id).exists()):
            rendered_at = None
            self.renders.enqueue(task.id)
        timeline = self.timeline(task)
        reading = clock.read(
            task.id, task.created_at, now, timeline, rendered_at=rendered_at, fail=task.fail_code is not None
        )
        if reading.status == "failed" and not task.refunded:
            self.store.refund(task)
        return reading

    def body(self, task: TaskRow, base_url: str, now: float | None = None) -> dict:
        """The GET /v1/videos/generations/{id} body for the task's state (docs/api-contract.md §4.1)."""
        reading = self.read(task, now)
        out: dict = {
            "id": task.id,
            "object": "generation.task",
            "model": task.model,
            "status": reading.status,
            "progress": reading.progress,
            "created_at": int(task.created_at),
        }
        if reading.status == "completed":
            done = int(reading.finished_at or task.created_at)
            out["completed_at"] = done
            out["expires_at"] = done + EXPIRY_SECONDS
            out["result"] = {
                "type": "video",
                "data": [
                    {
                        "url": f"{base_url}/files/videos/{task.id}.mp4",
                        "format": "mp4",
                        "thumbnail_url": f"{base_url}/files/posters/{task.id}.jpg",
                    }
                ],
            }
        elif reading.status == "failed":
            out["error"] = {"code": task.fail_code, "message": task.fail_message}
        return out

    def settle(self) -> None:
        """Refund failed tasks whose failure time has passed (balance reads are then exact)."""
        now = time.time()
        for task in self.store.unrefunded_failures():
            self.read(task, now)

    def wait_rendered(self, task_id: str, timeout: float = 120.0) -> bool:
        self.renders.enqueue(task_id, urgent=True)
        return self.renders.wait(task_id, timeout) and self.video_path(task_id).exists()

    # -- rendering ------------------------------------------------------------------------------------------
    def _render(self, task_id: str, stop: threading.Event) -> None:
        task = self.store.get_task(task_id)
        if task is None or task.fail_code is not None:
            return
        video, poster = self.video_path(task_id), self.poster_path(task_id)
        if video.exists() and poster.exists() and task.rendered_at is not None:
            return
        try:
            first = self._image(task.first_image, "first frame") if task.first_image else None
            last = self._image(task.last_image, "last frame") if task.last_image else None
        except ValueError as exc:
            self.store.set_failure(task_id, "generation_failed", f"Generation failed: {exc}")
            return
        try:
            render_clip(
                video,
                prompt=task.prompt,
                mode=task.mode,
                duration=task.duration,
                aspect=task.aspect,
                first_image=first,
                last_image=last,
                poster_path=poster,
                cancel=stop,
                audio=task.request.get("audio") is True,
            )
        except RenderCancelled:
            return
        except ImageTooLarge as exc:  # refused from its header: nothing was decoded
            self.store.set_failure(task_id, "generation_failed", f"Generation failed: {exc}")
            return
        except Exception:  # a bad input image or a disk problem: fail the task rather than retry forever
            log.exception("render of %s failed", task_id)
            self.store.set_failure(
                task_id,
                "generation_failed",
                "Generation failed: the video could not be produced from these inputs",
            )
            return
        self.store.mark_rendered(task_id, time.time())

    def _image(self, url: str, what: str) -> bytes | Path:
        """An input image: our own uploads are read from disk (any host/port), other URLs are fetched.

        Fetched through lib/safe_fetch with no trusted origin: a pasted URL can never reach loopback, the
        private network or a metadata endpoint. Every failure gives the same words, whatever the network
        answered, so the task's error cannot tell a closed port from an open one.
        """
        parsed = urlparse(url)
        name = parsed.path.rsplit("/", 1)[-1]
        if (
            parsed.path.startswith("/files/uploads/")
            and UPLOAD_NAME.match(name)
            and self.store.get_upload(name) is not None
        ):
            return self.uploads / name
        try:
            with self.image_fetcher.open(url, max_bytes=MAX_IMAGE_BYTES, content_types=IMAGE_TYPES) as resp:
                data = resp.read()
        except FetchError as exc:
            log.info("%s image not fetched: %s", what, exc)
            raise ValueError(image_fetch_failed(what)) from None
        if gateway_type(data) is None:
            log.info("%s image not fetched: the body is not a JPEG, PNG, WebP or GIF", what)
            raise ValueError(image_fetch_failed(what))
        return data

    # -- uploads --------------------------------------------------------------------------------------------
    def save_upload(self, data: bytes, filename: str | None, mime: str, ext: str) -> dict:
        upload_id = "upload_" + secrets.token_hex(8)
        name = f"{upload_id}.{ext}"
        path = self.uploads / name
        tmp = path.with_name(name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        self.store.add_upload(
            upload_id, time.time(), name, filename, mime, len(data), hashlib.sha256(data).hexdigest()
        )
        return {"id": upload_id, "name": name, "mime_type": mime, "size": len(data)}

    # -- balance --------------------------------------------------------------------------------------------
    def balance_body(self) -> dict:
        self.settle()
        remain, used = self.store.balance()
        return {
            "success": True,
            "remain_balance": round(remain, 4),
            "used_balance": round(used, 4),
            "remain_credits": round(remain * CREDITS_PER_USD),
            "used_credits": round(used * CREDITS_PER_USD),
            "credits_per_usd": CREDITS_PER_USD,
            "unlimited_quota": False,
        }
