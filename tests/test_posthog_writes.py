"""PostHog writes (issue 14): ``PostHogClient.write`` over TCP against the V6 fake PostHog: each
action's body and path, the follow-up note, PostHog's refusals in words a Slack user can read,
retries, an older server, and the request budget's priority lane for writes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from notifier.config.settings import PostHogSettings
from notifier.core.actions import Click, ReportAction, Write, note_body, write_for
from notifier.core.errors import WriteError
from notifier.core.secrets import remember
from notifier.demo.simulator import FakePostHog
from notifier.posthog.budget import RequestBudget
from notifier.posthog.client import PostHogClient
from tests.factories import API_KEY
from tests.helpers import wait_for

PID = 1
REPORTS = f"/api/projects/{PID}/signals/reports/"
AUTHOR = "posthog-signal-notifier"


@pytest.fixture
def fake() -> Iterator[FakePostHog]:
    with FakePostHog(api_version=6, api_key=API_KEY, projects=(PID,)) as server:
        yield server


def client(
    fake: FakePostHog, *, budget: RequestBudget | None = None, sleeps: list[float] | None = None
) -> PostHogClient:
    config = PostHogSettings(host=fake.url, api_key=API_KEY, project_ids=(PID,), timeout=2.0)
    record = sleeps if sleeps is not None else []
    return PostHogClient(config, sleep=record.append, budget=budget)


def click(report: dict[str, Any], action: ReportAction, **fields: Any) -> Click:
    return Click(
        action=action,
        project_id=PID,
        report_id=report["id"],
        shown_status=report["status"],
        user_id="U123",
        user_name="alice",
        **fields,
    )


def posts(fake: FakePostHog) -> list[tuple[str, Any]]:
    return [(r.path, r.json()) for r in fake.requests if r.method == "POST"]


# --------------------------------------------------------------------------- each action


@pytest.mark.parametrize(
    ("status", "action", "fields", "body", "after"),
    [
        (
            "ready",
            ReportAction.DISMISS,
            {"reason": "wontfix_irrelevant"},
            {
                "state": "suppressed",
                "dismissal_reason": "wontfix_irrelevant",
                "dismissal_note": "Dismissed in Slack by alice",
            },
            "suppressed",
        ),
        (
            "pending_input",
            ReportAction.RESOLVE,
            {},
            {
                "state": "resolved",
                "dismissal_reason": "fixed_outside_posthog",
                "dismissal_note": "Resolved in Slack by alice",
            },
            "resolved",
        ),
    ],
)
def test_a_state_write_sends_its_body_and_returns_the_moved_report(
    fake: FakePostHog,
    status: str,
    action: ReportAction,
    fields: dict[str, Any],
    body: dict[str, Any],
    after: str,
) -> None:
    """Dismiss and resolve: one POST {id}/state/ with exactly the body, no note; PostHog's
    answer (the report) comes back with its new status."""
    report = fake.add_report(PID, status=status)
    answer = client(fake).write(PID, report["id"], write_for(click(report, action, **fields)))
    assert answer["id"] == report["id"]
    assert answer["status"] == after
    assert posts(fake) == [(f"{REPORTS}{report['id']}/state/", body)]
    assert [(w.action, w.body) for w in fake.writes] == [("state", body)]


def test_acknowledge_writes_one_note_and_returns_the_artefact(fake: FakePostHog) -> None:
    report = fake.add_report(PID, status="ready")
    source = client(fake)
    answer = source.write(PID, report["id"], write_for(click(report, ReportAction.ACKNOWLEDGE)))
    body = note_body("Acknowledged in Slack by alice", AUTHOR)
    assert posts(fake) == [(f"{REPORTS}{report['id']}/artefacts/", body)]
    assert answer["type"] == "note"
    assert answer["content"]["note"] == "Acknowledged in Slack by alice"
    still = source.retrieve(PID, report["id"])
    assert still is not None
    assert still.status == "ready"


@pytest.mark.parametrize(
    ("status", "action", "fields", "body", "note"),
    [
        (
            "ready",
            ReportAction.SNOOZE,
            {"snooze_for": 50},
            {"state": "potential", "snooze_for": 50},
            "Snoozed in Slack by alice",
        ),
        (
            "suppressed",
            ReportAction.REOPEN,
            {},
            {"state": "potential"},
            "Reopened in Slack by alice",
        ),
    ],
)
def test_snooze_and_reopen_move_the_report_then_add_the_note(
    fake: FakePostHog,
    status: str,
    action: ReportAction,
    fields: dict[str, Any],
    body: dict[str, Any],
    note: str,
) -> None:
    """The state write first, then the note naming the real actor; the answer is the report."""
    report = fake.add_report(PID, status=status)
    answer = client(fake).write(PID, report["id"], write_for(click(report, action, **fields)))
    assert answer["status"] == "potential"
    rid = report["id"]
    assert posts(fake) == [
        (f"{REPORTS}{rid}/state/", body),
        (f"{REPORTS}{rid}/artefacts/", note_body(note, AUTHOR)),
    ]
    assert [w.action for w in fake.writes] == ["state", "note"]


def test_a_failed_note_after_a_move_is_logged_not_raised(
    fake: FakePostHog, caplog: pytest.LogCaptureFixture
) -> None:
    """The move happened: the note is best effort (a WARNING), the report is returned."""
    report = fake.add_report(PID, status="ready")
    fake.fail_next(503, times=5, path_contains="/artefacts/")
    write = write_for(click(report, ReportAction.SNOOZE, snooze_for=10))
    with caplog.at_level(logging.WARNING, logger="notifier.posthog.writes"):
        answer = client(fake).write(PID, report["id"], write)
    assert answer["status"] == "potential"
    assert [w.action for w in fake.writes] == ["state"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Snoozed in Slack by alice" in w and "503" in w for w in warnings)


# --------------------------------------------------------------------------- refusals


def refused(fake: FakePostHog, report_id: str, write: Write) -> WriteError:
    with pytest.raises(WriteError) as caught:
        client(fake).write(PID, report_id, write)
    error = caught.value
    assert API_KEY not in str(error)
    assert API_KEY not in error.reason
    return error


def test_a_move_posthog_does_not_allow_is_said_with_status_names(fake: FakePostHog) -> None:
    report = fake.add_report(PID, status="resolved")
    dismiss = write_for(click(report, ReportAction.DISMISS, reason="other"))
    error = refused(fake, report["id"], dismiss)
    assert error.status == 409
    assert error.reason == "PostHog does not allow moving a Resolved report to Dismissed"
    assert not error.retryable
    assert fake.writes == []


def test_resolving_a_resolved_report_says_it_already_is(fake: FakePostHog) -> None:
    report = fake.add_report(PID, status="resolved")
    error = refused(fake, report["id"], write_for(click(report, ReportAction.RESOLVE)))
    assert error.status == 409
    assert error.reason == "PostHog says the report is already Resolved"


def test_a_409_that_does_not_parse_keeps_posthogs_words(fake: FakePostHog) -> None:
    report = fake.add_report(PID, status="ready")
    fake.fail_next(409, {"error": "Report is already claimed by Bob."})
    error = refused(fake, report["id"], write_for(click(report, ReportAction.RESOLVE)))
    assert error.reason == "PostHog refused: Report is already claimed by Bob."


def test_a_key_without_task_write_is_told_how_to_fix(fake: FakePostHog) -> None:
    report = fake.add_report(PID, status="ready")
    fake.write_scope_ok = False
    error = refused(fake, report["id"], write_for(click(report, ReportAction.ACKNOWLEDGE)))
    assert error.status == 403
    assert error.reason == (
        "the notifier's PostHog key lacks the task:write scope; add it to the key "
        "(PostHog → Settings → Personal API keys)"
    )
    assert not error.retryable


def test_another_403_gives_posthogs_detail_and_never_the_key(fake: FakePostHog) -> None:
    """A peer echoing the key: scrubbed from the error's text and its reason."""
    remember([API_KEY])
    report = fake.add_report(PID, status="ready")
    detail = f"Invalid token Bearer {API_KEY} for project 1."
    fake.fail_next(403, {"type": "authentication_error", "code": "x", "detail": detail})
    error = refused(fake, report["id"], write_for(click(report, ReportAction.RESOLVE)))
    assert error.status == 403
    assert error.reason.startswith("PostHog refused the notifier's key: Invalid token")


def test_a_report_posthog_no_longer_has(fake: FakePostHog) -> None:
    report = fake.add_report(PID, status="ready")
    fake.delete_report(PID, report["id"])
    for action in (ReportAction.ACKNOWLEDGE, ReportAction.RESOLVE):
        error = refused(fake, report["id"], write_for(click(report, action)))
        assert error.status == 404
        assert error.reason == "PostHog no longer has this report"


def test_bad_data_gives_posthogs_detail_with_its_field(fake: FakePostHog) -> None:
    report = fake.add_report(PID, status="ready")
    bad = Write("state", {"state": "suppressed", "dismissal_reason": "nope"})
    error = refused(fake, report["id"], bad)
    assert error.status == 400
    assert (
        error.reason
        == 'PostHog refused the change: dismissal_reason: "nope" is not a valid choice.'
    )
    assert not error.retryable


def test_transient_failures_are_retried_into_one_write(fake: FakePostHog) -> None:
    report = fake.add_report(PID, status="ready")
    fake.fail_next(503, times=2, path_contains="/state/")
    sleeps: list[float] = []
    write = write_for(click(report, ReportAction.RESOLVE))
    answer = client(fake, sleeps=sleeps).write(PID, report["id"], write)
    assert answer["status"] == "resolved"
    assert len(posts(fake)) == 3
    assert len(fake.writes) == 1
    assert len(sleeps) == 2


def test_posthog_down_after_the_retries_is_retryable_in_words(fake: FakePostHog) -> None:
    report = fake.add_report(PID, status="ready")
    fake.fail_next(503, times=10)
    error = refused(fake, report["id"], write_for(click(report, ReportAction.RESOLVE)))
    assert error.retryable
    assert error.status == 503
    assert error.reason == "PostHog is unreachable (HTTP 503) — try again in a minute"
    assert len(posts(fake)) == 3
    assert fake.writes == []


@pytest.mark.parametrize("action", [ReportAction.ACKNOWLEDGE, ReportAction.RESOLVE])
def test_an_older_posthog_is_refused_with_the_fix(fake: FakePostHog, action: ReportAction) -> None:
    """V5 serves signals/reports too but has no writes: 405 for a note, 404 for state/ while
    the report is there. Neither is taken for a report gone."""
    fake.api_version = 5
    report = fake.add_report(PID, status="ready")
    error = refused(fake, report["id"], write_for(click(report, action)))
    assert error.reason == "this PostHog has no write API; upgrade PostHog or remove `actions:`"
    assert not error.retryable


def test_a_server_found_to_be_old_gets_no_write_request(fake: FakePostHog) -> None:
    """Once a listing found reports at signal_reports/ (V1–V3), a write asks nothing."""
    fake.api_version = 2
    report = fake.add_report(PID, status="ready")
    source = client(fake)
    source.list_reports(PID)
    before = len(fake.requests)
    with pytest.raises(WriteError) as caught:
        source.write(PID, report["id"], write_for(click(report, ReportAction.RESOLVE)))
    assert "no write API" in caught.value.reason
    assert len(fake.requests) == before


# --------------------------------------------------------------------------- budget lane


def test_a_write_waiting_for_the_budget_goes_before_every_waiting_read(
    fake: FakePostHog,
) -> None:
    """Four requests a minute, all spent; three reads queue, then a write. The next token goes
    to the write (the fake sees its POST first), the following ones to the reads in order."""
    report = fake.add_report(PID, status="ready")
    budget = RequestBudget(4, 3600)  # real clock: a token every 15 s, none comes by itself
    for _ in range(4):
        budget.acquire(0)
    source = client(fake, budget=budget)
    done: list[str] = []

    def read(n: int) -> None:
        source.retrieve(PID, report["id"])
        done.append(f"read{n}")

    def write() -> None:
        source.write(PID, report["id"], write_for(click(report, ReportAction.ACKNOWLEDGE)))
        done.append("write")

    threads = []
    for n, target in enumerate([read, read, read, write]):
        thread = threading.Thread(target=target, args=(n,) if target is read else (), daemon=True)
        thread.start()
        threads.append(thread)
        wait_for(lambda n=n: len(budget._queue) == n + 1, 5)

    def give(tokens: int) -> None:
        with budget._cond:
            budget._buckets[0].tokens = tokens
            budget._cond.notify_all()

    give(1)
    wait_for(lambda: len(fake.requests) == 1, 5)
    assert fake.requests[0].method == "POST"
    give(3)
    for thread in threads:
        thread.join(timeout=10)
    assert [r.method for r in fake.requests] == ["POST", "GET", "GET", "GET"]
    assert done[0] == "write"


def test_urgent_requests_keep_their_own_order_ahead_of_the_rest() -> None:
    """Two urgent tickets queued after two plain ones: served urgent-first, each lane FIFO."""
    budget = RequestBudget(4, 3600)
    for _ in range(4):
        budget.acquire(0)
    served: list[str] = []
    lock = threading.Lock()

    def take(name: str, urgent: bool) -> None:
        budget.acquire(PID, urgent=urgent)
        with lock:
            served.append(name)

    threads = []
    for i, (name, urgent) in enumerate(
        [("read1", False), ("read2", False), ("write1", True), ("write2", True)]
    ):
        thread = threading.Thread(target=take, args=(name, urgent), daemon=True)
        thread.start()
        threads.append(thread)
        wait_for(lambda i=i: len(budget._queue) == i + 1, 5)
    for expected in (["write1"], ["write1", "write2"]):
        with budget._cond:
            budget._buckets[0].tokens = 1
            budget._cond.notify_all()
        wait_for(lambda expected=expected: served == expected, 5)
    with budget._cond:
        budget._buckets[0].tokens = 2
        budget._cond.notify_all()
    for thread in threads:
        thread.join(timeout=10)
    assert served == ["write1", "write2", "read1", "read2"]
