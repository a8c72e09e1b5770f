"""lib.playground: the use cases behind the pages, on a real SQLite ledger (no browser, no stubs)."""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from lib import playground
from lib.archive import Archive
from lib.config import load_settings
from lib.contract import VideoRequest
from lib.gateway import GatewayClient
from lib.ledger import COMPLETED, DRAFT, FAILED, IN_PROGRESS, UNKNOWN, Ledger, RunFilter
from lib.worker import Worker

IMG = "https://example.com/a.jpg"


def make_services(tmp_path: Path, *, budget: float | None = None, base_url: str = "http://127.0.0.1:9",
                  key: str = "local-playground") -> SimpleNamespace:
    """Real ledger/archive/client/worker; the worker is never started, so nothing is sent."""
    env = {"PLAYGROUND_DATA": str(tmp_path), "TOAPIS_BASE_URL": base_url}
    if budget is not None:
        env["PLAYGROUND_BUDGET_USD"] = str(budget)
    settings = load_settings(env=env)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    client = GatewayClient(base_url, key)
    archive = Archive(tmp_path / "archive")
    worker = Worker(ledger, client, archive)
    return SimpleNamespace(settings=settings, ledger=ledger, client=client, archive=archive, worker=worker,
                           local_gateway=None)


@pytest.fixture
def svc(tmp_path: Path) -> SimpleNamespace:
    s = make_services(tmp_path)
    yield s
    s.ledger.close()


def test_invalid_request_writes_nothing(svc):
    out = playground.submit(svc, VideoRequest("  ", duration=15, image_urls=("ftp://x/y.png",)), run_id="r1")
    assert not out.ok and out.run is None
    fields = {p.field for p in out.errors}
    assert {"prompt", "duration", "first_frame"} <= fields
    assert svc.ledger.count_runs() == 0


def test_submit_writes_a_draft_once_per_run_id(svc):
    req = VideoRequest("a red fox", mode="std", duration=5, aspect_ratio="16:9")
    first = playground.submit(svc, req, run_id="press-1")
    again = playground.submit(svc, req, run_id="press-1")
    assert first.ok and first.created and first.run.state == DRAFT
    assert again.ok and not again.created and again.run.run_id == "press-1"
    assert svc.ledger.count_runs() == 1
    later = playground.submit(svc, req, run_id="press-2")  # a deliberate later press: a new take
    assert later.created and svc.ledger.count_runs() == 2
    assert first.run.est_cost == pytest.approx(5 * svc.settings.prices.std)


def test_budget_refusal_says_the_numbers_and_writes_nothing(tmp_path):
    svc = make_services(tmp_path, budget=0.3)
    req = VideoRequest("fox", mode="std", duration=5)          # ≈ $0.184
    assert playground.submit(svc, req, run_id="a").created
    assert playground.budget_left(svc) == pytest.approx(0.3 - 0.184)
    out = playground.submit(svc, req, run_id="b")
    assert not out.ok and out.run is None
    assert "$0.18" in out.refused and "$0.12" in out.refused and "$0.30" in out.refused
    assert svc.ledger.count_runs() == 1
    # the same press again is still a no-op, not a refusal: it is already counted
    assert playground.submit(svc, req, run_id="a").ok


def test_compare_pair_is_one_group_or_nothing(tmp_path):
    svc = make_services(tmp_path)
    outs = playground.submit_pair(svc, VideoRequest("whale", duration=5), run_ids=("s", "p"), group_id="g")
    runs = svc.ledger.group("g")
    assert [o.ok for o in outs] == [True, True]
    assert sorted((r.run_id, r.request.mode, r.label, r.source) for r in runs) == [
        ("p", "pro", "pro", "compare"), ("s", "std", "std", "compare")]
    again = playground.submit_pair(svc, VideoRequest("whale", duration=5), run_ids=("s", "p"), group_id="g")
    assert all(o.ok and not o.created for o in again) and svc.ledger.count_runs() == 2

    tight = make_services(tmp_path / "b", budget=0.4)   # std 0.184 + pro 0.3125 > 0.4: refuse both
    outs = playground.submit_pair(tight, VideoRequest("whale"), run_ids=("s", "p"), group_id="g")
    assert outs[0].refused and "comparison" in outs[0].refused.lower()
    assert tight.ledger.count_runs() == 0
    bad = playground.submit_pair(svc, VideoRequest(""), run_ids=("x", "y"), group_id="h")
    assert bad[0].errors and svc.ledger.group("h") == []


def test_rerun_restores_every_setting(svc):
    req = VideoRequest("fox", mode="pro", duration=10, aspect_ratio="9:16", image_urls=(IMG, IMG + "?2"),
                       negative_prompt="blur", watermark=True)
    run = playground.submit(svc, req, run_id="r").run
    assert playground.rerun(svc, run) == req


@pytest.mark.parametrize(("req", "mode", "duration"), [
    (VideoRequest("t", mode="std", duration=5), "pro", 5),   # Promote keeps the duration (issue 14)
    (VideoRequest("t", mode="std", duration=10), "pro", 10),
    (VideoRequest("t", mode="std", duration=15), "pro", 15),
    (VideoRequest("t", mode="std", duration=5, image_urls=(IMG,)), "pro", 5),
    (VideoRequest("t", mode="std", duration=10, image_urls=(IMG,)), "pro", 10),
])
def test_promote_makes_a_pro_child(svc, req, mode, duration):
    parent = playground.submit(svc, req, run_id="parent").run
    out = playground.promote(svc, parent, run_id="child")
    child = out.run
    assert out.created and child.parent_id == "parent" and child.source == "promote"
    assert child.request == req.replace(mode=mode, duration=duration)
    assert [c.run_id for c in svc.ledger.children("parent")] == ["child"]
    again = playground.promote(svc, parent, run_id="child")  # a second click with the same press id
    assert not again.created and [c.run_id for c in svc.ledger.children("parent")] == ["child"]


def test_recover_by_task_id_saves_only_a_task_the_gateway_confirms(tmp_path, local_gateway):
    svc = make_services(tmp_path, base_url=local_gateway.url, key=local_gateway.key)
    try:
        with pytest.raises(ValueError, match="task id"):
            playground.recover(svc, "not a task id!")
        # an id the gateway does not know: its own words (not the API key's), and nothing saved
        with pytest.raises(ValueError) as unknown:
            playground.recover(svc, "task_never_made_here")
        assert str(unknown.value) == playground.NO_SUCH_TASK
        assert "No task with that id on this gateway" in str(unknown.value)
        assert "key" not in str(unknown.value).lower()
        assert svc.ledger.count_runs(RunFilter()) == 0
        task = svc.client.submit(VideoRequest("made with curl", mode="std", duration=5))
        run = playground.recover(svc, task.id)
        assert run.task_id == task.id and run.source == "recovered"
        assert playground.recover(svc, f" {task.id} ").run_id == run.run_id
        assert svc.ledger.count_runs(RunFilter()) == 1
    finally:
        svc.ledger.close()


def test_recover_when_the_gateway_is_unreachable_saves_nothing_and_says_so(svc):
    with pytest.raises(ValueError, match="Nothing was saved"):
        playground.recover(svc, "task_abc123")  # svc's gateway is a closed port
    assert svc.ledger.count_runs(RunFilter()) == 0


def test_explain_names_the_real_cause_of_a_frame_download_failure(svc):
    run = playground.submit(svc, VideoRequest("x"), run_id="f").run
    for code, message in (("timeout", "could not download the first frame image"),
                          ("generation_failed", "Generation failed: the first frame image URL could not "
                                                "be used: it must be a public http(s) address")):
        failed = dataclasses.replace(run, state=FAILED, task_id="task_1", error_code=code,
                                     error_message=message)
        text = playground.explain(failed)
        assert text.startswith("The gateway could not fetch a frame image"), text
        assert "did not answer in time" not in text


def test_explain_a_recovered_id_the_gateway_lacks_with_the_workers_words(svc):
    run = playground.submit(svc, VideoRequest("x"), run_id="f").run
    words = ("The gateway has no task t1 (HTTP 404, 3 times). Check the id was copied whole and belongs "
             "to this API key's account; nothing was billed here.")
    gone = dataclasses.replace(run, state=FAILED, task_id="t1", error_code="task_not_found",
                               error_message=words)
    assert playground.explain(gone) == words  # not "The gateway rejected the API key"


@pytest.mark.parametrize(("req", "duration"), [
    (VideoRequest("t", mode="std", duration=5), 10),
    (VideoRequest("t", mode="pro", duration=10), 15),
    (VideoRequest("t", mode="pro", duration=5, image_urls=(IMG,)), 10),
])
def test_extend_keeps_the_mode_and_asks_for_the_next_duration(svc, req, duration):
    parent = playground.submit(svc, req, run_id="parent").run
    out = playground.extend(svc, parent, run_id="longer")
    assert out.created and out.run.parent_id == "parent" and out.run.source == "extend"
    assert out.run.request == req.replace(mode=req.effective_mode, duration=duration)


@pytest.mark.parametrize("req", [
    VideoRequest("t", mode="pro", duration=15),
    VideoRequest("t", mode="std", duration=10, image_urls=(IMG,)),  # frames allow at most 10 s
])
def test_nothing_to_extend_is_said_in_words_and_sends_nothing(svc, req):
    parent = playground.submit(svc, req, run_id="parent").run
    assert playground.extend_request(req) is None
    with pytest.raises(ValueError, match="nothing to extend"):
        playground.extend(svc, parent, run_id="longer")
    assert svc.ledger.get("longer") is None


def test_eta_from_the_progress_slope(svc):
    run = playground.submit(svc, VideoRequest("x"), run_id="e").run
    assert playground.eta_seconds(run, now=run.created_at + 5) is None          # draft: no slope yet
    t0 = 1000.0
    running = dataclasses.replace(run, state=IN_PROGRESS, submitted_at=t0, updated_at=t0 + 10, progress=40)
    assert playground.eta_seconds(running, now=t0 + 10) == pytest.approx(15.0)   # 4 %/s, 60 % left
    assert playground.eta_seconds(running, now=t0 + 14) == pytest.approx(11.0)
    assert playground.eta_seconds(running, now=t0 + 99) == 0.0
    barely = dataclasses.replace(running, progress=3)
    assert playground.eta_seconds(barely, now=t0 + 10) is None  # 3 % after a queue: too early to guess
    done = dataclasses.replace(running, state=COMPLETED, progress=100, completed_at=t0 + 30)
    assert playground.eta_seconds(done, now=t0 + 40) is None
    assert playground.elapsed_seconds(dataclasses.replace(done, created_at=t0 - 1), now=t0 + 99) == 31


@pytest.mark.parametrize(("code", "message", "words"), [
    ("content_policy_violation", "flagged", "content policy"),
    ("generation_failed", "call upstream API failed: upstream returned status 422", "content policy"),
    ("generation_failed", "insufficient balance", "Top up"),
    ("generation_failed", "Too many requests", "rate limit"),
    ("generation_failed", "internal error", "upstream failure"),
])
def test_explain_failed_tasks_in_words(svc, code, message, words):
    run = playground.submit(svc, VideoRequest("x"), run_id="f").run
    failed = dataclasses.replace(run, state=FAILED, task_id="task_1", error_code=code, error_message=message)
    text = playground.explain(failed)
    assert words in text and message in text


def test_explain_keeps_the_workers_words_and_hints_recovery(svc):
    run = playground.submit(svc, VideoRequest("x"), run_id="f").run
    refused = dataclasses.replace(run, state=FAILED, error_code="payment_required",
                                  error_message="Your gateway balance is too low. Top up.")
    assert playground.explain(refused) == "Your gateway balance is too low. Top up."
    unknown = dataclasses.replace(run, state=UNKNOWN, error_message="The gateway did not answer in time.")
    assert "recover it by task id" in playground.explain(unknown)


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


def test_upload_frame_checks_locally_then_uploads_once(tmp_path, local_gateway):
    svc = make_services(tmp_path, base_url=local_gateway.url, key=local_gateway.key)
    url, problems = playground.upload_frame(svc, _png(100, 100), "tiny.png")
    assert url is None and "at least 300 px" in problems[0].message
    url, problems = playground.upload_frame(svc, b"not an image", "x.png", "last_frame")
    assert url is None and problems[0].field == "last_frame"
    assert local_gateway.requests("upload") == []          # nothing bad was sent

    data = _png(640, 360)
    url, problems = playground.upload_frame(svc, data, "frame.png")
    assert url and url.startswith("http") and problems == []
    again, _ = playground.upload_frame(svc, data, "renamed.png")
    assert again == url
    assert len(local_gateway.requests("upload")) == 1      # deduplicated by content
    row = svc.ledger.find_upload(__import__("hashlib").sha256(data).hexdigest())
    assert row and Path(row["local_path"]).read_bytes() == data


def test_find_pair_is_the_other_mode_with_the_same_settings(svc):
    from lib import pairs

    base = VideoRequest("a heron in reeds", mode="std", duration=5, aspect_ratio="16:9")
    std = playground.submit(svc, base, run_id="std").run
    assert pairs.find_pair(svc.ledger, std) is None
    playground.submit(svc, base.replace(mode="pro", duration=10), run_id="longer")  # another duration
    playground.submit(svc, base.replace(mode="pro", aspect_ratio="1:1"), run_id="square")
    playground.submit(svc, base.replace(mode="pro", prompt="a heron in reeds at night"), run_id="night")
    assert pairs.find_pair(svc.ledger, std) is None
    pro = playground.submit(svc, base.replace(mode="pro"), run_id="pro").run
    assert pairs.find_pair(svc.ledger, std).run_id == "pro"
    assert pairs.find_pair(svc.ledger, pro).run_id == "std"
    assert pairs.pair_request(pro.request) == base
