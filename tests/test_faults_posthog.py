"""PostHog misbehaving: failed pages, unreadable bodies, throttling, refused keys, paging that
shifts under the client. The real notifier (httpx over TCP, SQLite) against the fake PostHog; a
failed cycle changes nothing and the next good one reports exactly what happened."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from notifier.config.settings import PostHogSettings, Settings
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.core.events import Event, EventType
from notifier.demo.simulator import FakePostHog
from notifier.posthog.client import STALE_PAGES, PostHogClient
from tests.factories import API_KEY, PROJECT, Notifiers, Run, errors, events, runs
from tests.fakes import FakeSlack, WebhookReceiver

OTHER = 7  # a second project in the same fake PostHog, to show failures stay per project
PAGE_2 = "offset=2"  # matches page 2 of a page_size 2 listing (and no page of OTHER)


@pytest.fixture
def start(
    make_config: Callable[..., Path], load: Callable[[Path], Settings], notifiers: Notifiers
) -> Callable[..., Run]:
    """Build a Run (a Notifier recording its retry waits) from make_config(**config)."""
    return runs(make_config, load, notifiers)


# ------------------------------------------------------------------ a failing page or body

#: Each spoils page 2 for as many attempts as the client makes (3 when the fault is retried).
FAULTS: dict[str, Callable[[FakePostHog], None]] = {
    "500": lambda f: f.fail_next(500, times=3, path_contains=PAGE_2),
    "502": lambda f: f.fail_next(502, times=3, path_contains=PAGE_2),
    "503 Retry-After": lambda f: f.fail_next(503, times=3, path_contains=PAGE_2),
    "504": lambda f: f.fail_next(504, times=3, path_contains=PAGE_2),
    "timeout": lambda f: f.stall_next(2.0, times=3, path_contains=PAGE_2),
    "reset mid-body": lambda f: f.reset_next(times=3, path_contains=PAGE_2),
    "truncated": lambda f: f.fail_next(
        200, raw=b'{"count": 5, "next": null, "results": [{"id": "', path_contains=PAGE_2
    ),
    "not JSON": lambda f: f.fail_next(200, raw=b"\xff\xfe\x00garbage", path_contains=PAGE_2),
    "HTML 200": lambda f: f.fail_next(
        200, raw=b"<!doctype html><html><body>Sign in</body></html>", path_contains=PAGE_2
    ),
    "bad gzip": lambda f: f.fail_next(
        200,
        raw=b"this is not gzip",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        path_contains=PAGE_2,
    ),
    "deeply nested": lambda f: f.fail_next(
        200, raw=b"[" * 100_000 + b"]" * 100_000, path_contains=PAGE_2
    ),
    "JSON list": lambda f: f.fail_next(200, [1, 2], path_contains=PAGE_2),
    "no results": lambda f: f.fail_next(200, {"count": 5}, path_contains=PAGE_2),
    "404 mid-listing": lambda f: f.fail_next(404, path_contains=PAGE_2),
}


def _five_reports_and_three_changes(posthog: FakePostHog, run: Run) -> set[tuple[str, str]]:
    """Baseline 5 reports (pages of 2), then a status change, a deletion and a new report."""
    posthog.add_project(OTHER)
    posthog.add_report(OTHER, title="other project")
    reports = [posthog.add_report(PROJECT, title=f"r{i}", status="candidate") for i in range(5)]
    assert run.poll() is not None
    assert run.poll(OTHER) is not None
    posthog.update_report(PROJECT, reports[1]["id"], status="ready")
    posthog.delete_report(PROJECT, reports[3]["id"])
    new = posthog.add_report(PROJECT, title="arrived during the outage")
    return {
        ("status_changed", reports[1]["id"]),
        ("removed", reports[3]["id"]),
        ("new", new["id"]),
    }


@pytest.mark.parametrize("fault", list(FAULTS))
def test_failed_page_fails_that_project_only_and_the_next_cycle_catches_up(
    posthog: FakePostHog,
    start: Callable[..., Run],
    slack: FakeSlack,
    receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    """Any fault on page 2 of 3 fails the cycle of that project only with one ERROR, changes no
    snapshot row and queues nothing; the next good cycle delivers exactly what happened."""
    caplog.set_level(logging.INFO, logger="notifier")
    short = 0.3 if fault == "timeout" else None  # the fake stalls 2 s: the client gives up
    run = start(posthog_extra="page_size: 2", project_ids=(PROJECT, OTHER), timeout=short)
    expected = _five_reports_and_three_changes(posthog, run)
    before, outbox = run.state(), run.notifier.store.counts()
    FAULTS[fault](posthog)
    caplog.clear()
    assert run.poll() is None
    posthog.clear_faults()
    assert run.state() == before
    assert run.notifier.store.counts() == outbox
    [error] = errors(caplog)
    assert f"project {PROJECT}" in error
    assert all(r.exc_info is None for r in caplog.records)  # understood, not a crash
    assert API_KEY not in caplog.text
    posthog.add_report(OTHER, title="still polled")
    assert len(events(run.poll(OTHER))) == 1
    run.later()  # the 503's Retry-After pauses the project that long
    assert events(run.poll()) == expected
    assert any("recovered after 1 failure" in m for m in errors(caplog, logging.INFO))
    run.notifier.drain_all()
    delivered = [json.loads(r.body)["data"]["report"]["id"] for r in receiver.received]
    assert sorted(delivered) == sorted(rid for _, rid in expected | events_of_other(posthog))
    assert len(slack.messages) == len(delivered)


def events_of_other(posthog: FakePostHog) -> set[tuple[str, str]]:
    """The one report added to OTHER during the fault (delivered too)."""
    return {("new", r["id"]) for r in posthog.reports(OTHER) if r["title"] == "still polled"}


@pytest.mark.parametrize("fault", ["500", "502", "503 Retry-After", "504", "timeout", "reset"])
def test_one_transient_fault_is_retried_within_the_cycle(
    posthog: FakePostHog, start: Callable[..., Run], fault: str
) -> None:
    """A single 5xx, timeout or reset on page 2 is retried once after a short, bounded wait and
    the cycle succeeds with exactly the changes."""
    short = 0.3 if fault == "timeout" else None  # the fake stalls 2 s: the client gives up
    run = start(posthog_extra="page_size: 2", project_ids=(PROJECT, OTHER), timeout=short)
    expected = _five_reports_and_three_changes(posthog, run)
    if fault == "timeout":
        posthog.stall_next(2.0, path_contains=PAGE_2)
    elif fault == "reset":
        posthog.reset_next(path_contains=PAGE_2)
    else:
        posthog.fail_next(int(fault[:3]), path_contains=PAGE_2)
    assert events(run.poll()) == expected
    [wait] = run.waits
    if fault.startswith("503"):
        assert wait == 1.0  # the fake's Retry-After: 1
    else:
        assert 0 <= wait <= 0.5
    page_2 = [r for r in posthog.requests if r.query.get("offset") == "2"]
    assert len(page_2) == 3  # the baseline's, the failed attempt, its retry


def test_persistent_5xx_makes_a_bounded_number_of_requests(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """A 500 that lasts makes three attempts per cycle with growing jittered waits, no more."""
    run = start()
    posthog.fail_next(500, times=100)
    assert run.poll() is None
    assert len(posthog.requests) == 3
    assert len(run.waits) == 2
    assert 0 <= run.waits[0] <= 0.5
    assert 0 <= run.waits[1] <= 1.0


# ---------------------------------------------------------------------------------- waits


def test_throttle_on_page_2_waits_as_the_detail_says(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """429 with PostHog's real shape (no Retry-After) mid-listing: the wait is read from
    "Expected available in N seconds.", the page is asked once more, the cycle succeeds."""
    run = start(posthog_extra="page_size: 2", project_ids=(PROJECT, OTHER))
    expected = _five_reports_and_three_changes(posthog, run)
    posthog.fail_next(
        429,
        {
            "type": "throttled_error",
            "code": "throttled",
            "detail": "Request was throttled. Expected available in 17 seconds.",
            "attr": None,
        },
        headers={},
        path_contains=PAGE_2,
    )
    assert events(run.poll()) == expected
    assert run.waits == [17.0]


@pytest.mark.parametrize(
    ("headers", "body", "wait"),
    [
        ({"Retry-After": "4"}, None, 4.0),
        ({"Retry-After": "2.5"}, None, 2.5),
        ({"Retry-After": "soon"}, {"detail": "Expected available in 3 seconds."}, 3.0),
        ({"Retry-After": "-5"}, None, 0.0),
    ],
)
def test_retry_after_is_honoured(
    posthog: FakePostHog,
    start: Callable[..., Run],
    headers: dict[str, str],
    body: Any,
    wait: float,
) -> None:
    """503 with Retry-After waits exactly that long; an unreadable header falls back to the
    detail."""
    run = start()
    posthog.fail_next(503, body, headers=headers)
    assert run.poll() is not None
    assert run.waits == [wait]


def test_retry_after_as_an_http_date(posthog: FakePostHog, start: Callable[..., Run]) -> None:
    """Retry-After may be an HTTP date: the wait is the time until then."""
    run = start()
    posthog.fail_next(503, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    assert run.poll() is not None
    [wait] = run.waits
    assert 25 <= wait <= 31


@pytest.mark.parametrize(("seconds", "pause"), [(120, 120), (86_400, 3600)])
def test_long_throttle_pauses_the_project_instead_of_hammering(
    posthog: FakePostHog,
    start: Callable[..., Run],
    caplog: pytest.LogCaptureFixture,
    seconds: int,
    pause: float,
) -> None:
    """A wait beyond the client's cap is not slept through: the cycle fails and the project is
    not asked again before PostHog said (at most an hour); other projects go on."""
    posthog.add_project(OTHER)
    run = start(project_ids=(PROJECT, OTHER))
    posthog.throttle_next(seconds)
    assert run.poll() is None
    assert run.waits == []
    health = run.notifier.health[PROJECT]
    assert pause - 5 <= health.not_before - time.time() <= pause
    [error] = errors(caplog)
    assert "rate limiting" in error
    assert f"project {PROJECT}" in error
    asked = len(posthog.requests)
    assert run.poll() is None
    assert len(posthog.requests) == asked
    assert run.poll(OTHER) is not None


def test_a_wait_past_the_cycle_deadline_is_not_slept(posthog: FakePostHog) -> None:
    """A throttle wait that would end after the cycle's deadline fails the cycle at once."""
    waits: list[float] = []
    settings = PostHogSettings(host=posthog.url, api_key=API_KEY, project_ids=(PROJECT,))
    client = PostHogClient(settings, sleep=waits.append)
    posthog.throttle_next(30)
    with pytest.raises(SourceError) as info:
        client.list_reports(PROJECT, cycle=client.start_cycle(PROJECT, time.monotonic() + 10))
    client.close()
    assert info.value.kind is SourceErrorKind.THROTTLED
    assert info.value.retry_after == 30
    assert waits == []
    assert len(posthog.requests) == 1


# -------------------------------------------------------------- refused, missing, invalid


def _deny_key(f: FakePostHog) -> None:
    f.api_key = "phx_someone_else"


def _drop_scope(f: FakePostHog) -> None:
    f.scopes_ok = False


def _other_projects(f: FakePostHog) -> None:
    f.allowed_projects = {OTHER}


def _auth_ok(f: FakePostHog, run: Run) -> None:
    f.api_key, f.scopes_ok, f.allowed_projects = API_KEY, True, None


def _refuse_suppressed(f: FakePostHog) -> None:
    """A PostHog that does not know ``suppressed`` as a filter (``check`` accepts it: it is a
    status PostHog has): its 400, as DRF words it."""
    detail = "Invalid status value(s): suppressed"
    body = {"type": "validation_error", "code": "invalid_input", "detail": detail, "attr": "status"}
    f.fail_next(400, body, times=1000, path_contains="suppressed")


def _statuses_fixed(f: FakePostHog, run: Run) -> None:
    f.clear_faults()
    settings = run.notifier.settings
    ready_only = settings.posthog.model_copy(update={"statuses": ("ready",)})
    run.reconfigure(settings.model_copy(update={"posthog": ready_only}))


def _refuse_401(f: FakePostHog) -> None:
    f.fail_next(401, times=100, path_contains=f"/projects/{PROJECT}/")


CAUSES: dict[
    str,
    tuple[
        Callable[[FakePostHog], None],
        Callable[[FakePostHog, Run], None],
        int,
        dict[str, str],
        tuple[str, ...],
    ],
] = {
    # cause: (break it, fix it, project that fails, config, words the ERROR must hold)
    "invalid key": (_deny_key, _auth_ok, PROJECT, {}, ("is invalid", "create a personal API")),
    "401 for one project": (
        _refuse_401,
        lambda f, run: f.clear_faults(),
        PROJECT,
        {},
        ("HTTP 401", "is invalid", "create a personal API"),
    ),
    "missing scope": (_drop_scope, _auth_ok, PROJECT, {}, ("add the scope 'task:read'",)),
    "other projects": (
        _other_projects,
        _auth_ok,
        PROJECT,
        {},
        (f"add project {PROJECT} to the key", "posthog.project_ids"),
    ),
    "unknown project": (
        lambda f: None,
        lambda f, run: f.add_project(99),
        99,
        {},
        ("Project not found", "posthog.project_ids"),
    ),
    "bad status filter": (
        _refuse_suppressed,
        _statuses_fixed,
        PROJECT,
        {"posthog_extra": "statuses: [ready, suppressed]"},
        ("Invalid status value(s): suppressed", "posthog.statuses"),
    ),
}
#: Causes that hit every project alike (one key, one config): no "others unaffected" there.
SHARED = {"invalid key", "missing scope", "bad status filter"}


@pytest.mark.parametrize("cause", list(CAUSES))
def test_refused_requests_log_one_error_and_back_off(
    posthog: FakePostHog,
    start: Callable[..., Run],
    caplog: pytest.LogCaptureFixture,
    cause: str,
) -> None:
    """401/403/404/400: one ERROR naming the project, PostHog's cause and the fix; the project
    pauses with a growing backoff (no request while paused), repeats are a WARNING, other
    projects are polled as usual, and recovery is one INFO line."""
    breaks, fixes, failing, config, words = CAUSES[cause]
    posthog.add_project(OTHER)
    posthog.add_report(OTHER, title="other")
    ids = (failing, OTHER)
    run = start(project_ids=ids, **config)
    if cause not in SHARED:
        assert run.poll(OTHER) is not None
    breaks(posthog)
    caplog.set_level(logging.INFO, logger="notifier")
    interval = run.notifier.settings.poll.interval
    health = run.notifier.health[failing]
    pauses = []
    for attempt in range(1, 4):
        asked = len(posthog.requests)
        assert run.poll(failing) is None
        assert len(posthog.requests) - asked <= 2  # at most both API paths, no retries
        pauses.append(health.not_before - time.time())
        asked = len(posthog.requests)
        assert run.poll(failing) is None  # paused: PostHog is not asked
        assert len(posthog.requests) == asked
        if cause not in SHARED:
            assert run.poll(OTHER) is not None
        health.not_before = 0.0  # the pause is over
        assert health.failures == attempt
    assert pauses[0] >= 1.5 * interval
    assert pauses[0] < pauses[1] < pauses[2]
    [error] = errors(caplog)
    assert f"project {failing}" in error
    for word in words:
        assert word in error
    warnings = [m for m in errors(caplog, logging.WARNING) if "still failing" in m]
    assert len(warnings) == 2
    assert "(3 in a row)" in warnings[-1]
    assert API_KEY not in caplog.text
    fixes(posthog, run)
    assert run.poll(failing) is not None
    assert health.failures == 0
    assert health.not_before == 0.0
    assert any("recovered after 3 failures" in m for m in errors(caplog, logging.INFO))


def test_a_different_error_is_a_new_error(
    posthog: FakePostHog, start: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    """The same failure again (even with other numbers in it) is a WARNING; a different one is
    a new ERROR."""
    run = start()
    posthog.throttle_next(100)
    run.poll()
    run.notifier.health[PROJECT].not_before = 0.0
    posthog.throttle_next(200)
    run.poll()
    run.notifier.health[PROJECT].not_before = 0.0
    posthog.scopes_ok = False
    run.poll()
    assert len(errors(caplog)) == 2
    assert "rate limiting" in errors(caplog)[0]
    assert "(3 in a row)" in errors(caplog)[1]
    assert "task:read" in errors(caplog)[1]
    [warning] = [m for m in errors(caplog, logging.WARNING) if "still failing" in m]
    assert "(2 in a row)" in warning


# ------------------------------------------------------------------ the key stays at home


def test_next_links_to_another_origin_never_get_the_key(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """`next` naming another origin is not followed: that origin receives no request, and
    every request the configured host received carries the key."""
    with FakePostHog(api_key="phx_other", projects=(PROJECT,)) as elsewhere:
        posthog.link_base = elsewhere.url
        for i in range(5):
            posthog.add_report(PROJECT, title=f"r{i}")
        run = start(posthog_extra="page_size: 2", first_run="notify")
        assert len(events(run.poll())) == 5
        assert elsewhere.requests == []
    assert {r.authorization for r in posthog.requests} == {f"Bearer {API_KEY}"}
    assert [r.query["offset"] for r in posthog.report_requests()] == ["0", "2", "4"]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(
    posthog: FakePostHog, start: Callable[..., Run], caplog: pytest.LogCaptureFixture, status: int
) -> None:
    """A redirect (to another origin) fails the cycle with the fix, and sends nothing there."""
    with FakePostHog(api_key="phx_other", projects=(PROJECT,)) as elsewhere:
        run = start()
        target = f"{elsewhere.url}/api/projects/{PROJECT}/signals/reports/"
        posthog.fail_next(status, {}, headers={"Location": target})
        assert run.poll() is None
        assert elsewhere.requests == []
    assert "set posthog.host" in errors(caplog)[0]


# ------------------------------------------------------------------ paging under change


def _rewrite(posthog: FakePostHog, change: Callable[[int, dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite every listing page of PROJECT with change(offset, body)."""

    def hook(project_id: int, offset: int, body: dict[str, Any]) -> dict[str, Any]:
        return change(offset, body) if project_id == PROJECT else body

    posthog.rewrite_page = hook


def test_same_id_on_two_pages_is_one_report(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """A report served on two pages is one report (the later copy); nothing new, nothing
    removed."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(5)]
    run = start(posthog_extra="page_size: 2")
    assert run.poll() is not None

    def repeat(offset: int, body: dict[str, Any]) -> dict[str, Any]:
        if offset == 2:  # r1 instead of r2, as if r2 had moved before it
            body["results"][0] = {**reports[1], "title": "r1 again"}
        return body

    _rewrite(posthog, repeat)
    plan = run.poll()
    assert plan is not None
    assert plan.reports == 4
    assert [(e.type, e.report.title) for e in plan.events] == [(EventType.UPDATED, "r1 again")]
    assert [r.path for r in posthog.report_requests() if not r.query] == [
        f"/api/projects/{PROJECT}/signals/reports/{reports[2]['id']}/"
    ]  # the one it missed was looked for, and found


def test_next_looping_to_the_same_page_does_not_loop(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """`next` pointing at the page itself changes nothing: offsets are the client's own."""
    for i in range(5):
        posthog.add_report(PROJECT, title=f"r{i}")
    run = start(posthog_extra="page_size: 2", first_run="notify")

    def loop(offset: int, body: dict[str, Any]) -> dict[str, Any]:
        body["next"] = f"{posthog.url}/api/projects/{PROJECT}/signals/reports/?offset={offset}"
        return body

    _rewrite(posthog, loop)
    assert len(events(run.poll())) == 5
    assert len(posthog.report_requests()) == 4  # 3 pages and the empty one after them


@pytest.mark.parametrize("count", [5, None, "many"])
def test_a_server_repeating_the_same_page_fails_the_cycle_quickly(
    posthog: FakePostHog, start: Callable[..., Run], count: Any
) -> None:
    """A server that ignores offset (the same page forever, always "more") fails the cycle
    after a few pages, whatever count says; nothing changes."""
    for i in range(5):
        posthog.add_report(PROJECT, title=f"r{i}")
    run = start(posthog_extra="page_size: 2")
    assert run.poll() is not None
    before = run.state()
    first: dict[str, Any] = {}

    def same(offset: int, body: dict[str, Any]) -> dict[str, Any]:
        if not first:
            first.update(body, count=count, next="more")
        return json.loads(json.dumps(first))

    _rewrite(posthog, same)
    asked = len(posthog.requests)
    with pytest.raises(SourceError) as info:
        run.notifier.source.list_reports(PROJECT)
    assert "paging looks broken" in str(info.value)
    assert len(posthog.requests) - asked == STALE_PAGES + 1
    assert run.poll() is None
    assert run.state() == before


def test_count_larger_than_the_pages_hold(
    posthog: FakePostHog, start: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    """A count that promises more than the pages hold ends at the first empty page; that
    listing is incomplete, so a report missing from it is not concluded removed (not even
    fetched) until a complete listing misses it too."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(5)]
    run = start(posthog_extra="page_size: 2")
    assert run.poll() is not None
    posthog.delete_report(PROJECT, reports[2]["id"])
    new = posthog.add_report(PROJECT, title="new")
    posthog.count_override = 50
    assert events(run.poll()) == {("new", new["id"])}
    assert not [r for r in posthog.requests if reports[2]["id"] in r.path]
    assert any("incomplete" in m for m in errors(caplog, logging.WARNING))
    posthog.count_override = None
    assert events(run.poll()) == {("removed", reports[2]["id"])}


def test_count_shrinking_mid_listing(posthog: FakePostHog, start: Callable[..., Run]) -> None:
    """A count that shrinks after page 1 ends the listing early (next is null): the reports it
    missed are fetched one by one, so none is removed, and the new one it missed is reported
    by the next cycle."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(7)]
    run = start(posthog_extra="page_size: 2")
    assert run.poll() is not None
    new = posthog.add_report(PROJECT, title="new, last in the order")

    def shrink(project_id: int, offset: int) -> None:
        posthog.count_override = 3

    posthog.on_list_page = shrink
    first = events(run.poll())
    fetched = {r.path.rstrip("/").rsplit("/", 1)[-1] for r in posthog.requests if not r.query}
    assert fetched == {r["id"] for r in reports[4:]}
    posthog.on_list_page = posthog.count_override = None
    assert first | events(run.poll()) == {("new", new["id"])}


def test_insert_before_the_offset_repeats_and_delete_skips(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """Between two page fetches a report is inserted early in the order (one item repeats)
    and another deleted (one item is skipped): no false new or removed; every change is
    reported within two cycles."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(6)]
    run = start(posthog_extra="page_size: 2")
    assert run.poll() is not None
    early = reports[0]["created_at"]
    inserted: list[str] = []

    def churn(project_id: int, offset: int) -> None:
        if offset == 0:  # r0 was served; r2 slides onto page 1, unseen
            posthog.delete_report(PROJECT, reports[0]["id"])
        if offset == 2:  # r3, r4 served; an early report pushes r4 back onto page 3
            posthog.on_list_page = None
            inserted.append(posthog.add_report(PROJECT, title="early", created_at=early)["id"])
            posthog.update_report(PROJECT, reports[5]["id"], status="pending_input")

    posthog.on_list_page = churn
    first = events(run.poll())
    assert first == {("status_changed", reports[5]["id"])}
    second = events(run.poll())
    assert second == {("new", inserted[0]), ("removed", reports[0]["id"])}
    assert events(run.poll()) == set()


def test_a_report_skipped_by_paging_and_then_deleted_is_removed(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """A report the listing skipped (found by id, so nothing happened) stays one to look for:
    deleted before the next cycle, it is reported removed then, not kept forever."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(6)]
    run = start(posthog_extra="page_size: 2")
    assert run.poll() is not None

    def delete_r1(project_id: int, offset: int) -> None:
        if offset == 0:  # r0, r1 served; r2 slides onto page 1, unseen
            posthog.on_list_page = None
            posthog.delete_report(PROJECT, reports[1]["id"])

    posthog.on_list_page = delete_r1
    assert events(run.poll()) == set()
    posthog.delete_report(PROJECT, reports[2]["id"])
    assert events(run.poll()) == {("removed", reports[1]["id"]), ("removed", reports[2]["id"])}


@pytest.mark.parametrize(("version", "seed"), [(v, s) for v in (5, 1) for s in range(4)])
def test_churn_while_paging_never_invents_or_loses_a_change(
    posthog: FakePostHog, start: Callable[..., Run], version: int, seed: int
) -> None:
    """Random inserts (anywhere in the order), deletions, status and weight changes between
    page fetches, over many cycles: replaying every event gives exactly PostHog's state after
    one quiet cycle; no id is `new` twice and nothing alive is `removed`. V1 orders by weight
    (re-orders as weights change) and has unstable ties."""
    rng = random.Random(seed)
    posthog.api_version = version
    statuses = ["ready"] if version == 1 else ["candidate", "in_progress", "ready", "failed"]
    for _ in range(9):
        posthog.add_report(PROJECT, status=rng.choice(statuses), total_weight=1.0)
    run = start(posthog_extra="page_size: 3", first_run="notify")

    def alive() -> list[dict[str, Any]]:
        return [r for r in posthog.reports(PROJECT) if r["status"] != "deleted"]

    def mutate(*_: int) -> None:
        roll, live = rng.random(), alive()
        if roll < 0.2 or not live:
            when = rng.choice(live)["created_at"] if live else None
            extra = {"created_at": when} if when else {}
            posthog.add_report(PROJECT, status=rng.choice(statuses), total_weight=1.0, **extra)
        elif roll < 0.35:
            posthog.delete_report(PROJECT, rng.choice(live)["id"])
        elif roll < 0.55 and version > 1:
            posthog.update_report(PROJECT, rng.choice(live)["id"], status=rng.choice(statuses))
        elif roll < 0.85:
            report = rng.choice(live)
            weight = rng.choice([0.5, 1.0, 2.0, 3.0])
            posthog.update_report(PROJECT, report["id"], total_weight=weight)

    posthog.on_list_page = mutate
    seen: list[Event] = []
    for _ in range(6):
        plan = run.poll()
        assert plan is not None
        seen.extend(plan.events)
        mutate()
    posthog.on_list_page = None
    posthog.unstable_ties = False  # a quiet cycle: nothing moves while it pages
    plan = run.poll()
    assert plan is not None
    seen.extend(plan.events)
    assert posthog.errors == []

    state: dict[str, tuple[str, float | None]] = {}
    created: set[str] = set()
    for event in seen:
        rid, report = event.report.id, event.report
        if event.type is EventType.NEW:
            assert rid not in created, "the same report was new twice"
            created.add(rid)
        else:
            assert rid in state, f"{event.type} for a report never announced"
        if event.type is EventType.REMOVED:
            del state[rid]
        else:
            state[rid] = (report.status, report.total_weight)
    truth = {r["id"]: (r["status"], float(r["total_weight"])) for r in alive()}
    assert state == truth
    assert events(run.poll()) == set()
