"""PostHog sending what the client did not expect: unknown statuses and fields, missing ones,
nulls, numbers as strings, huge text, unreadable items, doubtful answers to a fetch by id; and a
Hypothesis fuzz of the body parser (any bytes, any JSON value: parsed, or the project's
SourceError, never anything else)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from notifier.api import decode_json, parse_page, parse_retrieved
from notifier.errors import SourceError, SourceErrorKind
from notifier.models import Report
from notifier.settings import Settings
from notifier.simulator import PROJECT_NOT_FOUND, FakePostHog
from tests.conftest import PROJECT
from tests.fakes import FakeSlack, WebhookReceiver, block_errors
from tests.test_faults_posthog import Run, errors, events, runs


@pytest.fixture
def start(
    make_config: Callable[..., Path], load: Callable[[Path], Settings]
) -> Iterator[Callable[..., Run]]:
    """Build a Run (a Notifier recording its retry waits) from make_config(**config)."""
    yield from runs(make_config, load)


# --------------------------------------------------------------------------- schema drift


def _on_first_page(posthog: FakePostHog, *items: Any) -> None:
    """Serve ``items`` at the end of PROJECT's first listing page, every cycle."""

    def add(project_id: int, offset: int, body: dict[str, Any]) -> dict[str, Any]:
        if project_id == PROJECT and offset == 0:
            body["results"].extend(json.loads(json.dumps(items)))
        return body

    posthog.rewrite_page = add


def test_drifted_reports_are_read_compared_by_value_and_delivered(
    posthog: FakePostHog,
    start: Callable[..., Run],
    slack: FakeSlack,
    receiver: WebhookReceiver,
) -> None:
    """An unknown status, unknown fields, numbers as strings, nulls everywhere, a report with
    only id and status, a 1 MB summary: all read and delivered (Slack within its limits); the
    same numbers sent as numbers, or fields dropped, are no change."""
    run = start(first_run="notify")
    odd = posthog.add_report(
        PROJECT,
        status="awaiting_triage",
        total_weight="2.50",
        signal_count="7",
        artefact_count="0",
        relevant_user_count=None,
        brand_new_field={"nested": [1, None, {"deep": True}]},
    )
    nulls = {key: None for key in odd if key not in ("id", "status")}
    nulls |= {"id": "00000000-0000-4000-8000-000000000001", "status": "ready"}
    minimal = {"id": "00000000-0000-4000-8000-000000000002", "status": "pending_input"}
    big = posthog.add_report(PROJECT, title="Big", summary="x" * 1_000_000)
    _on_first_page(posthog, nulls, minimal)
    plan = run.poll()
    assert events(plan) == {("new", r["id"]) for r in (odd, big, nulls, minimal)}
    assert plan is not None
    read = {e.report.id: e.report for e in plan.events}
    assert read[odd["id"]].total_weight == 2.5
    assert read[odd["id"]].signal_count == 7
    assert read[odd["id"]].status == "awaiting_triage"
    assert read[nulls["id"]].title is None
    result = run.notifier.drain_all()
    assert (result.delivered, result.dead) == (8, 0)
    assert len(slack.messages) == 4
    for message in slack.messages:
        assert message.blocks is not None
        assert block_errors(message.blocks) == []
    summaries = [json.loads(r.body)["data"]["report"].get("summary") for r in receiver.received]
    assert "x" * 1_000_000 in summaries  # webhooks carry the report as PostHog sent it
    posthog.update_report(PROJECT, odd["id"], total_weight=2.5, signal_count=7, artefact_count=0)
    assert events(run.poll()) == set()

    add = posthog.rewrite_page
    assert add is not None

    def drop(project_id: int, offset: int, body: dict[str, Any]) -> dict[str, Any]:
        body = add(project_id, offset, body)
        for item in body["results"]:
            for key in ("title", "summary", "priority", "total_weight", "relevant_user_count"):
                item.pop(key, None)
        return body

    posthog.rewrite_page = drop
    assert events(run.poll()) == set()


UNREADABLE = [
    {"status": "ready", "title": "no id"},
    {"id": "", "status": "ready"},
    {"id": 42, "status": "ready"},
    {"id": "a-report-without-status"},
    {"id": "a-report-with-null-status", "status": None},
    {"id": "numeric-status", "status": 3},
    "a string",
    None,
    [1, 2],
]


def test_unreadable_items_are_skipped_reported_and_block_removal(
    posthog: FakePostHog, start: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    """Items without a usable id or status (or not objects at all) are skipped with one
    WARNING naming the project; the listing is then not complete, so a report missing from it
    is neither fetched nor removed, while the new one is reported."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(3)]
    run = start()
    assert run.poll() is not None
    posthog.delete_report(PROJECT, reports[0]["id"])
    new = posthog.add_report(PROJECT, title="new")
    _on_first_page(posthog, *UNREADABLE)
    assert events(run.poll()) == {("new", new["id"])}
    assert not [r for r in posthog.requests if reports[0]["id"] in r.path]
    [warning] = [m for m in errors(caplog, logging.WARNING) if "skipped" in m]
    assert f"project {PROJECT}" in warning
    assert f"skipped {len(UNREADABLE)} of the reports" in warning
    posthog.rewrite_page = None
    assert events(run.poll()) == {("removed", reports[0]["id"])}


DOUBTFUL: dict[str, Callable[[FakePostHog, str, dict[str, Any]], None]] = {
    "HTML 404 (a proxy)": lambda f, rid, other: f.fail_next(
        404, raw=b"<html><body>Not Found</body></html>", path_contains=rid
    ),
    "404 Project not found": lambda f, rid, other: f.fail_next(
        404, PROJECT_NOT_FOUND, path_contains=rid
    ),
    "another report": lambda f, rid, other: f.fail_next(200, other, path_contains=rid),
    "HTML 200": lambda f, rid, other: f.fail_next(200, raw=b"<html>hi</html>", path_contains=rid),
    "403": lambda f, rid, other: f.fail_next(403, path_contains=rid),
}


@pytest.mark.parametrize("answer", list(DOUBTFUL))
def test_a_doubtful_answer_to_a_fetch_removes_nothing(
    posthog: FakePostHog, start: Callable[..., Run], answer: str
) -> None:
    """A report missing from the listing is removed only on PostHog's own 404 for it: a proxy's
    page, 'Project not found.', another report or an error leave the decision to the next
    cycle."""
    gone, other = (posthog.add_report(PROJECT, title=f"r{i}") for i in range(2))
    run = start()
    assert run.poll() is not None
    posthog.delete_report(PROJECT, gone["id"])
    DOUBTFUL[answer](posthog, gone["id"], other)
    plan = run.poll()
    assert events(plan) == set()
    assert plan is not None
    assert plan.unresolved == (gone["id"],)
    assert events(run.poll()) == {("removed", gone["id"])}


def test_report_ids_are_quoted_when_fetched(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """An id with '/', '?' or '#' stays one path segment of the configured host."""
    run = start()
    assert run.notifier.source.retrieve(PROJECT, "../x?y=1#z") is None
    [request] = posthog.requests
    assert request.path == f"/api/projects/{PROJECT}/signals/reports/..%2Fx%3Fy%3D1%23z/"
    assert request.query == {}


# ------------------------------------------------------------------------------ the fuzz

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63, 0, -1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(categories=["L", "N", "P", "S", "Z", "C"]), max_size=12)
    | st.sampled_from(["", " ", "2.5", "7", "-1", "1e400", "NaN", "ready", "P1", "\ud800"])
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_fields = [
    "title",
    "summary",
    "total_weight",
    "signal_count",
    "relevant_user_count",
    "artefact_count",
    "priority",
    "actionability",
    "created_at",
    "updated_at",
    "source_products",
]
report_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.uuids().map(str) | json_values,
        "status": st.sampled_from(["ready", "candidate", "brand_new"]) | json_values,
        **dict.fromkeys(_fields, json_values),
    },
)
page_like = st.fixed_dictionaries(
    {},
    optional={
        "count": json_values,
        "next": json_values,
        "previous": json_values,
        "results": st.lists(report_like | json_values, max_size=6) | json_values,
    },
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _usable(report: Report) -> None:
    """What the rest of the pipeline does with a parsed report must work too."""
    assert isinstance(report.id, str)
    assert report.id.strip()
    assert isinstance(report.status, str)
    assert report.status
    for value in (report.total_weight, report.signal_count, report.artefact_count):
        assert value is None or (isinstance(value, int | float) and math.isfinite(value))
    stored = json.dumps(report.to_json())  # the snapshot and the outbox keep this
    assert Report.from_api(json.loads(stored)).version == report.version


def _outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returns, or the SourceError it raises (any other exception propagates)."""
    try:
        return call()
    except SourceError as exc:
        return exc


def _is_project_error(exc: SourceError) -> None:
    assert exc.kind is SourceErrorKind.INVALID_RESPONSE
    assert exc.project_id == PROJECT
    assert str(exc).startswith(f"project {PROJECT}: ")


@FUZZ
@given(page_like | json_values)
@example({"results": [{"id": "a", "status": "ready", "total_weight": 10**400}]})
@example({"results": [{"id": "a", "status": "ready", "signal_count": 10**400}], "count": True})
@example({"results": [{"id": "a", "status": "ready", "title": "\ud800"}], "next": "x"})
@example({"results": [], "count": "²"})
@example({"results": [], "count": "9" * 5000})
def test_parse_page_reads_any_json_value_or_raises_the_source_error(body: Any) -> None:
    """Any JSON value: a Page whose every item is either a usable report or a skip reason, or
    an INVALID_RESPONSE SourceError naming the project; never another exception."""
    page = _outcome(lambda: parse_page(body, PROJECT))
    if isinstance(page, SourceError):
        _is_project_error(page)
        assert not isinstance(body, dict) or not isinstance(body.get("results"), list)
        return
    assert page.items == len(body["results"]) == len(page.reports) + len(page.skipped)
    assert page.count is None or (isinstance(page.count, int) and page.count >= 0)
    assert page.has_next is bool(body.get("next"))
    for report in page.reports:
        _usable(report)


@FUZZ
@given(report_like | json_values, st.uuids().map(str))
def test_parse_retrieved_reads_any_json_value_or_raises_the_source_error(
    body: Any, asked: str
) -> None:
    """A fetch by id: the report asked for, or the project's SourceError."""
    if isinstance(body, dict) and body.get("id") == "same":
        body["id"] = asked
    report = _outcome(lambda: parse_retrieved(body, PROJECT, asked))
    if isinstance(report, SourceError):
        _is_project_error(report)
        return
    assert report.id == asked
    _usable(report)


@FUZZ
@given(
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.tuples(json_values, st.integers(0, 50)).map(lambda t: json.dumps(t[0]).encode()[: t[1]])
)
@example(b"[" * 50_000 + b"]" * 50_000)
@example(b"\xef\xbb\xbf{}")
@example(b'{"a": "\\ud800"}')
def test_decode_json_reads_any_bytes_or_raises_the_source_error(content: bytes) -> None:
    """Any bytes (HTML, cut JSON, binary, deep nesting): a JSON value or the SourceError."""
    value = _outcome(lambda: decode_json(content, PROJECT, content_type="text/html"))
    if isinstance(value, SourceError):
        _is_project_error(value)
        assert "not JSON" in str(value)
