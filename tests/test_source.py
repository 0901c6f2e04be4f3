"""The PostHog client against the fake PostHog over TCP: paging, paths, errors, retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from notifier.config.settings import PostHogSettings
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.demo.simulator import FakePostHog
from notifier.posthog.budget import RequestBudget
from notifier.posthog.client import PostHogClient
from tests.helpers import wait_for

KEY = "phx_source_test_key_123456"


@pytest.fixture
def fake() -> Iterator[FakePostHog]:
    with FakePostHog(api_key=KEY, projects=(1,)) as server:
        yield server


def client(
    fake: FakePostHog, sleeps: list[float] | None = None, **settings: object
) -> PostHogClient:
    config = PostHogSettings(host=fake.url, api_key=KEY, project_ids=(1,), timeout=2.0)
    config = config.model_copy(update=settings)
    record = sleeps if sleeps is not None else []
    return PostHogClient(config, sleep=record.append)


def test_lists_every_page_with_stable_ordering(fake: FakePostHog) -> None:
    """All pages are fetched with limit/offset and ordering=created_at,id; ids de-duplicated."""
    ids = [fake.add_report(1, title=f"r{i}")["id"] for i in range(25)]
    listing = client(fake, page_size=10).list_reports(1)
    assert list(listing.reports) == ids
    assert listing.complete
    assert listing.requests == 3
    queries = [r.query for r in fake.requests]
    assert [q["offset"] for q in queries] == ["0", "10", "20"]
    assert all(q["ordering"] == "created_at,id" and q["limit"] == "10" for q in queries)
    assert all(r.authorization == f"Bearer {KEY}" for r in fake.requests)


@pytest.mark.parametrize(("version", "prefix"), [(1, "signal_reports"), (5, "signals/reports")])
def test_auto_path_finds_the_served_prefix(fake: FakePostHog, version: int, prefix: str) -> None:
    """`auto` tries the newest prefix first and falls back to the old one on 404, then sticks."""
    fake.api_version = version
    fake.add_report(1, status="ready")
    source = client(fake)
    assert len(source.list_reports(1).reports) == 1
    source.list_reports(1)
    last = fake.requests[-1].path
    assert f"/{prefix}/" in last


def test_statuses_filter_is_sent(fake: FakePostHog) -> None:
    """posthog.statuses becomes ?status=a,b and the server's filter applies."""
    fake.add_report(1, status="ready")
    fake.add_report(1, status="failed")
    fake.add_report(1, status="candidate")
    listing = client(fake, statuses=("ready", "failed")).list_reports(1)
    assert sorted(r.status for r in listing.reports.values()) == ["failed", "ready"]
    assert fake.requests[-1].query["status"] == "ready,failed"


@pytest.mark.parametrize(
    ("setup", "kind", "text"),
    [
        (lambda f: setattr(f, "api_key", "phx_other"), SourceErrorKind.AUTH, "task:read"),
        (lambda f: setattr(f, "scopes_ok", False), SourceErrorKind.AUTH, "missing required scope"),
        (lambda f: setattr(f, "allowed_projects", {2}), SourceErrorKind.AUTH, "project 1"),
        (
            lambda f: f.fail_next(
                404,
                {
                    "type": "invalid_request",
                    "code": "not_found",
                    "detail": "Project not found.",
                    "attr": None,
                },
                times=2,
            ),
            SourceErrorKind.NOT_FOUND,
            "posthog.project_ids",
        ),
    ],
)
def test_errors_name_the_project_cause_and_fix(
    fake: FakePostHog, setup: object, kind: SourceErrorKind, text: str
) -> None:
    """401/403/404 become one SourceError naming the project, PostHog's detail and the fix,
    after exactly one request per path (no hammering)."""
    setup(fake)  # type: ignore[operator]
    with pytest.raises(SourceError) as info:
        client(fake).list_reports(1)
    assert info.value.kind is kind
    assert text in str(info.value)
    assert "project 1" in str(info.value)
    assert KEY not in str(info.value)
    assert len(fake.requests) <= 2


def test_bad_status_filter_points_at_the_setting(fake: FakePostHog) -> None:
    """V4+ answers 400 for an unknown status: the error says to check posthog.statuses."""
    with pytest.raises(SourceError) as info:
        client(fake, statuses=("dismissed",)).list_reports(1)
    assert info.value.kind is SourceErrorKind.BAD_REQUEST
    assert "posthog.statuses" in str(info.value)


def test_throttle_wait_is_read_from_detail(fake: FakePostHog) -> None:
    """429 without Retry-After: the wait comes from 'Expected available in N seconds.'"""
    fake.add_report(1)
    fake.throttle_next(7)
    sleeps: list[float] = []
    listing = client(fake, sleeps).list_reports(1)
    assert len(listing.reports) == 1
    assert sleeps == [7.0]


def test_throttle_longer_than_the_cap_fails_the_cycle(fake: FakePostHog) -> None:
    """A wait beyond the client's cap is not slept through: the cycle fails as throttled."""
    fake.throttle_next(3600)
    sleeps: list[float] = []
    with pytest.raises(SourceError) as info:
        client(fake, sleeps).list_reports(1)
    assert info.value.kind is SourceErrorKind.THROTTLED
    assert info.value.retry_after == 3600
    assert sleeps == []


def test_transient_errors_are_retried_a_bounded_number_of_times(fake: FakePostHog) -> None:
    """503 with Retry-After is honoured; three failures in a row fail the cycle."""
    fake.fail_next(503, headers={"Retry-After": "2"}, times=3)
    sleeps: list[float] = []
    with pytest.raises(SourceError) as info:
        client(fake, sleeps).list_reports(1)
    assert info.value.kind is SourceErrorKind.TRANSIENT
    assert sleeps == [2.0, 2.0]
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    "raw",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"count": 1, "results": [',
        b"[1, 2]",
        b'{"count": 1}',
    ],
)
def test_unreadable_bodies_fail_the_cycle(fake: FakePostHog, raw: bytes) -> None:
    """An HTML page with status 200, truncated JSON or a wrong shape is an invalid response."""
    fake.fail_next(200, raw=raw)
    with pytest.raises(SourceError) as info:
        client(fake).list_reports(1)
    assert info.value.kind is SourceErrorKind.INVALID_RESPONSE


def test_items_without_id_are_skipped_and_listing_is_incomplete(fake: FakePostHog) -> None:
    """An item with no id is skipped and the listing is marked incomplete."""
    body = {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [{"id": "a", "status": "ready"}, {"status": "ready", "title": "no id"}],
    }
    fake.fail_next(200, body)
    listing = client(fake).list_reports(1)
    assert list(listing.reports) == ["a"]
    assert listing.skipped == 1
    assert not listing.complete


def test_retrieve_returns_none_on_404(fake: FakePostHog) -> None:
    """Retrieve gives the report, or None when PostHog answers 404."""
    report = fake.add_report(1, title="x")
    source = client(fake)
    source.list_reports(1)
    found = source.retrieve(1, report["id"])
    assert found is not None
    assert found.title == "x"
    fake.delete_report(1, report["id"])
    assert source.retrieve(1, report["id"]) is None


def test_a_timeout_is_transient(fake: FakePostHog) -> None:
    """A server stalling past the timeout fails the cycle as transient."""
    fake.stall_seconds = 1.0
    source = client(fake, timeout=0.2)
    with pytest.raises(SourceError) as info:
        source.list_reports(1)
    assert info.value.kind is SourceErrorKind.TRANSIENT


# ------------------------------------------------------------------------------ artefacts


def _artefact_requests(fake: FakePostHog) -> list[dict[str, str]]:
    return [r.query for r in fake.requests if r.path.endswith("/artefacts/")]


@pytest.mark.parametrize(("version", "prefix"), [(1, "signal_reports"), (3, "signal_reports")])
def test_artefacts_before_v4_take_one_request(fake: FakePostHog, version: int, prefix: str) -> None:
    """V1–V3 answer every artefact at once: one request at the prefix the listing found,
    items as served, newest first, even when many."""
    fake.api_version = version
    report = fake.add_report(1)
    for n in range(150):
        fake.add_artefact(1, report["id"], "video_segment", {"session_id": f"s{n}"})
    source = client(fake)
    source.list_reports(1)
    items = source.artefacts(1, report["id"])
    assert [i["content"]["session_id"] for i in items] == [f"s{n}" for n in range(149, -1, -1)]
    [request] = [r for r in fake.requests if r.path.endswith("/artefacts/")]
    assert request.path == f"/api/projects/1/{prefix}/{report['id']}/artefacts/"


def test_v5_artefacts_stop_at_the_first_page_that_suffices(fake: FakePostHog) -> None:
    """Three recordings and both judgments on the first page: no second page is read, though
    PostHog says there is more."""
    report = fake.add_report(1)
    for n in range(150):
        fake.add_artefact(1, report["id"], "note", {"n": n})
    fake.add_artefact(1, report["id"], "priority_judgment", {"explanation": "p"})
    fake.add_artefact(1, report["id"], "actionability_judgment", {"explanation": "a"})
    for n in range(3):
        fake.add_artefact(1, report["id"], "video_segment", {"session_id": f"s{n}"})
    items = client(fake).artefacts(1, report["id"])
    assert len(items) == 100
    assert _artefact_requests(fake) == [{"limit": "100"}]


def test_v5_artefacts_read_two_pages_at_most(fake: FakePostHog) -> None:
    """When the first page lacks recordings or judgments the second one is read (offset after
    the first), and never a third."""
    report = fake.add_report(1)
    fake.add_artefact(1, report["id"], "video_segment", {"session_id": "oldest"})
    for n in range(350):
        fake.add_artefact(1, report["id"], "note", {"n": n})
    items = client(fake).artefacts(1, report["id"])
    assert len(items) == 200
    assert _artefact_requests(fake) == [{"limit": "100"}, {"limit": "100", "offset": "100"}]
    fake.requests.clear()
    assert len(client(fake).artefacts(1, report["id"], pages=5)) == 351
    assert len(_artefact_requests(fake)) == 4


def test_artefacts_of_a_gone_report_are_none_but_doubtful_404s_raise(fake: FakePostHog) -> None:
    """PostHog's own 404 for the report: no artefacts. 'Project not found.' or a proxy's page:
    a SourceError, not an empty answer. The id stays one path segment."""
    source = client(fake)
    assert source.artefacts(1, "gone") == []
    assert source.artefacts(1, "../x?y=1#z") == []
    assert fake.requests[-1].path == "/api/projects/1/signals/reports/..%2Fx%3Fy%3D1%23z/artefacts/"
    with pytest.raises(SourceError) as project:
        source.artefacts(9, "gone")
    assert project.value.kind is SourceErrorKind.NOT_FOUND
    fake.fail_next(404, raw=b"<html>nope</html>")
    with pytest.raises(SourceError) as proxy:
        source.artefacts(1, "gone")
    assert proxy.value.kind is SourceErrorKind.INVALID_RESPONSE


@pytest.mark.parametrize(
    ("fault", "kind", "text"),
    [
        (
            lambda f: f.fail_next(
                403,
                {
                    "type": "authentication_error",
                    "code": "permission_denied",
                    "detail": "API key missing required scope 'task:read'",
                    "attr": None,
                },
            ),
            SourceErrorKind.AUTH,
            "add the scope 'task:read'",
        ),
        (lambda f: f.fail_next(500, times=3), SourceErrorKind.TRANSIENT, "HTTP 500"),
        (lambda f: f.fail_next(200, raw=b"<html>hi</html>"), SourceErrorKind.INVALID_RESPONSE, ""),
        (
            lambda f: f.fail_next(200, {"results": {"a": 1}, "count": 1}),
            SourceErrorKind.INVALID_RESPONSE,
            "'results' list",
        ),
    ],
)
def test_artefact_failures_raise_the_source_error(
    fake: FakePostHog, fault: object, kind: SourceErrorKind, text: str
) -> None:
    """Refusals, server errors and unreadable bodies raise like the listing's do."""
    report = fake.add_report(1)
    fault(fake)  # type: ignore[operator]
    with pytest.raises(SourceError) as info:
        client(fake).artefacts(1, report["id"])
    assert info.value.kind is kind
    assert text in str(info.value)


def test_artefacts_keep_to_the_deadline_and_the_budget(fake: FakePostHog) -> None:
    """A deadline already past makes no request; an empty budget that would outlast the
    deadline fails at once rather than wait."""
    report = fake.add_report(1)
    source = client(fake)
    with pytest.raises(SourceError):
        source.artefacts(1, report["id"], cycle=source.start_cycle(1, time.monotonic() - 1))
    assert fake.requests == []
    budget = RequestBudget(1, 100)
    config = PostHogSettings(host=fake.url, api_key=KEY, project_ids=(1,), timeout=2.0)
    paced = PostHogClient(config, sleep=lambda _s: None, budget=budget)
    assert paced.artefacts(1, report["id"], cycle=paced.start_cycle(1, time.monotonic() + 5)) == []
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        paced.artefacts(1, report["id"], cycle=paced.start_cycle(1, time.monotonic() + 5))
    assert info.value.kind is SourceErrorKind.THROTTLED
    assert time.monotonic() - started < 4
    assert len(fake.requests) == 1


def test_a_retry_wait_ends_at_once_when_the_notifier_stops(fake: FakePostHog) -> None:
    """A Retry-After wait is spent on the cancel event: setting it (the notifier stops) ends
    the wait and the cycle at once, with no request after the one that was refused."""
    cancel = threading.Event()
    config = PostHogSettings(host=fake.url, api_key=KEY, project_ids=(1,), timeout=2.0)
    source = PostHogClient(config, cancel=cancel, max_wait=600)
    fake.fail_next(503, headers={"Retry-After": "300"})
    failed: list[BaseException] = []

    def listing() -> None:
        try:
            source.list_reports(1)
        except SourceError as exc:
            failed.append(exc)

    thread = threading.Thread(target=listing, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(fake.requests) >= 1, what="the refused request")
        asked = len(fake.requests)
        cancel.set()
        thread.join(timeout=30)  # a bound: the wait itself was 300 s
        assert not thread.is_alive(), "the wait went on after the notifier stopped"
    finally:
        cancel.set()
        source.close()
    [error] = failed
    assert "stopping" in str(error)
    assert len(fake.requests) == asked
