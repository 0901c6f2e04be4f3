"""PostHog sending what the client did not expect: unknown statuses and fields, missing ones,
nulls, numbers as strings, huge text, unreadable items, doubtful answers to a fetch by id; and a
Hypothesis fuzz of the body parsers (any bytes, any JSON value: parsed, or the project's
SourceError, never anything else), artefacts included."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from notifier.config.settings import Settings
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.core.events import NO_ENRICHMENT, Enrichment, Event, EventType, Recording
from notifier.core.report import Report
from notifier.demo.simulator import PROJECT_NOT_FOUND, FakePostHog
from notifier.posthog.parse import (
    ARTEFACT_TEXT_CHARS,
    MAX_RECORDINGS,
    decode_json,
    parse_artefact_page,
    parse_enrichment,
    parse_page,
    parse_retrieved,
)
from tests.factories import PROJECT, Notifiers, Run, errors, events, runs
from tests.fakes import FakeSlack, WebhookReceiver, block_errors


@pytest.fixture
def start(
    make_config: Callable[..., Path], load: Callable[[Path], Settings], notifiers: Notifiers
) -> Callable[..., Run]:
    """Build a Run (a Notifier recording its retry waits) from make_config(**config)."""
    return runs(make_config, load, notifiers)


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


_texts = json_values | st.text(max_size=40) | st.just("x" * (ARTEFACT_TEXT_CHARS + 5))
artefact_content = st.fixed_dictionaries(
    {},
    optional={
        "session_id": st.sampled_from(["s1", "s2", "s3", "s4", "../x", "a b", "", "é"])
        | st.uuids().map(str)
        | json_values,
        "content": _texts,
        "explanation": _texts,
        "start_time": json_values,
        "end_time": json_values,
    },
)
artefact_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "type": st.sampled_from(
            ["video_segment", "priority_judgment", "actionability_judgment", "note", "task_run"]
        )
        | json_values,
        "content": artefact_content | json_values,
        "created_at": st.sampled_from(
            ["2026-01-14T09:12:04.100000Z", "2026-01-15T09:00:00Z", "2026-01-15", "", "later"]
        )
        | json_values,
    },
)


def _sound(enrichment: Enrichment) -> None:
    """What the outbox and the Slack card rely on."""
    assert len(enrichment.recordings) <= MAX_RECORDINGS
    sessions = [r.session_id for r in enrichment.recordings]
    assert len(set(sessions)) == len(sessions)
    for recording in enrichment.recordings:
        assert recording.session_id.isascii()
        assert recording.session_id[0].isalnum()
        assert not set(recording.session_id) & set("/?#% \n")
    texts = [r.text for r in enrichment.recordings]
    texts += [enrichment.priority_explanation, enrichment.actionability_explanation]
    for text in texts:
        assert text is None or (text.strip() == text and 0 < len(text) <= ARTEFACT_TEXT_CHARS)
    assert Enrichment.from_json(json.loads(json.dumps(enrichment.to_json()))) == enrichment


@FUZZ
@given(st.lists(artefact_like | json_values, max_size=8))
@example([{"type": "video_segment", "content": {}}, {"type": "priority_judgment", "content": []}])
@example([{"type": "video_segment", "content": {"session_id": "s", "start_time": 1e400}}])
@example([{"type": "video_segment", "content": {"session_id": "s\n"}}])
@example([{"type": ["video_segment"]}, {"type": {"a": 1}}])
def test_parse_enrichment_reads_any_artefacts(items: list[Any]) -> None:
    """Any JSON values as artefacts: an Enrichment that is sound and survives the outbox,
    never an exception; nothing at all when no usable segment or judgment is among them."""
    enrichment = parse_enrichment(items)
    _sound(enrichment)
    usable = [
        i
        for i in items
        if isinstance(i, dict)
        and i.get("type") in ("video_segment", "priority_judgment", "actionability_judgment")
    ]
    if not usable:
        assert enrichment is NO_ENRICHMENT


@FUZZ
@given(page_like | json_values, st.text(max_size=300))
def test_parse_artefact_page_reads_any_json_value_or_raises_the_source_error(
    body: Any, report_id: str
) -> None:
    """An artefacts answer: its items and whether there is more, or the project's SourceError
    (short, whatever the report id)."""
    page = _outcome(lambda: parse_artefact_page(body, PROJECT, report_id))
    if isinstance(page, SourceError):
        _is_project_error(page)
        assert len(str(page)) < 300
        assert not isinstance(body, dict) or not isinstance(body.get("results"), list)
        return
    assert list(page.items) == body["results"]
    assert page.has_next is bool(body.get("next"))


def _segment(session: Any, text: Any = None, at: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "video_segment", "content": {"session_id": session}}
    if text is not None:
        item["content"]["content"] = text
    if at is not None:
        item["created_at"] = at
    return item


def _judgment(kind: str, explanation: Any, at: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": f"{kind}_judgment", "content": {"explanation": explanation}}
    if at is not None:
        item["created_at"] = at
    return item


def test_parse_enrichment_picks_the_newest_three_and_the_latest_judgments() -> None:
    """Served newest first: the first three usable, distinct sessions with their descriptions
    trimmed, and the explanation of the first judgment of each kind (even when that one has
    none, it is the latest verdict)."""
    items = [
        {"type": "note", "content": {"session_id": "n"}},
        _segment("s1", "  Taps Pay four times.\n"),
        _segment("../etc", "not a session id"),
        _judgment("priority", "  latest  "),
        _segment("s1", "same session again"),
        _segment("s2", "   "),
        _judgment("actionability", None),
        _segment("s3"),
        _segment("s4", "a fourth"),
        _judgment("priority", "older"),
        _judgment("actionability", "older"),
    ]
    enrichment = parse_enrichment(items)
    assert enrichment.recordings == (
        Recording("s1", "Taps Pay four times."),
        Recording("s2", None),
        Recording("s3", None),
    )
    assert enrichment.priority_explanation == "latest"
    assert enrichment.actionability_explanation is None


def test_parse_enrichment_orders_by_created_at_when_every_item_has_one() -> None:
    """A server serving oldest first is read newest first when every item is dated; one
    undated item keeps the order served."""
    items = [
        _segment("old", at="2026-01-14T09:00:00Z"),
        _judgment("priority", "old", at="2026-01-14T09:00:01Z"),
        _segment("new", at="2026-01-15T09:00:00+00:00"),
        _judgment("priority", "new", at="2026-01-15T09:00:01.5Z"),
    ]
    dated = parse_enrichment(items)
    assert [r.session_id for r in dated.recordings] == ["new", "old"]
    assert dated.priority_explanation == "new"
    served = parse_enrichment([*items, _segment("undated")])
    assert [r.session_id for r in served.recordings] == ["old", "new", "undated"]
    assert served.priority_explanation == "old"


#: PostHog's example answers (posthog-examples/v1-artefacts.json and v5-artefacts.json).
V1_ARTEFACTS = {
    "results": [
        {
            "id": "5b1d7a40-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            "type": "video_segment",
            "content": {
                "session_id": "0194f3a2-7c1e-7d2a-9b3c-4d5e6f708192",
                "start_time": "2026-01-14T08:55:10Z",
                "end_time": "2026-01-14T08:55:42Z",
                "distinct_id": "user_81",
                "content": "Taps Pay four times; nothing happens; leaves the page.",
                "distance_to_centroid": 0.12,
            },
            "created_at": "2026-01-14T09:12:04.100000Z",
        }
    ],
    "count": 1,
}
V5_ARTEFACTS = {
    "count": 2,
    "next": None,
    "previous": None,
    "results": [
        {
            "claim_id": None,
            "pull_request_id": None,
            "id": "9a0e6c1d-2b3f-4a5e-8d7c-6b5a4f3e2d1c",
            "type": "priority_judgment",
            "content": {
                "explanation": "About 3% of checkouts are affected.",
                "priority": "P1",
                "dollar_value": 4000.0,
            },
            "created_at": "2026-01-15T16:39:58.120000Z",
            "updated_at": "2026-01-15T16:39:58.120000Z",
            "actor_kind": "task",
            "actor_agent": None,
            "created_by": None,
            "task_id": "1f3c2b4a-5d6e-4f70-8a9b-c0d1e2f3a4b5",
        },
        {
            "claim_id": None,
            "pull_request_id": None,
            "id": "7b6a5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
            "type": "actionability_judgment",
            "content": {
                "explanation": "Reproducible; the click handler throws on Safari.",
                "actionability": "immediately_actionable",
                "already_addressed": False,
            },
            "created_at": "2026-01-15T16:39:57.000000Z",
            "updated_at": None,
            "actor_kind": "task",
            "actor_agent": None,
            "created_by": None,
            "task_id": "1f3c2b4a-5d6e-4f70-8a9b-c0d1e2f3a4b5",
        },
    ],
}


def test_real_payloads_read_as_expected() -> None:
    """PostHog's own example answers."""
    v1 = parse_artefact_page(V1_ARTEFACTS, PROJECT, "r")
    assert parse_enrichment(v1.items) == Enrichment(
        recordings=(
            Recording(
                "0194f3a2-7c1e-7d2a-9b3c-4d5e6f708192",
                "Taps Pay four times; nothing happens; leaves the page.",
                "2026-01-14T08:55:10Z",
                "2026-01-14T08:55:42Z",
            ),
        )
    )
    assert not v1.has_next
    assert parse_enrichment(parse_artefact_page(V5_ARTEFACTS, PROJECT, "r").items) == Enrichment(
        priority_explanation="About 3% of checkouts are affected.",
        actionability_explanation="Reproducible; the click handler throws on Safari.",
    )


def test_event_json_carries_enrichment_only_when_there_is_one() -> None:
    """The outbox JSON: no 'enrichment' key without one (rows as before), the enrichment
    round-trips, and rows written before it existed, or with a mangled one, still load."""
    report = Report.from_api({"id": "r1", "status": "ready", "title": "t"})
    plain = Event.create(EventType.NEW, PROJECT, report, None, {})
    assert "enrichment" not in plain.to_json()
    enrichment = Enrichment(
        (Recording("s1", "text", "2026-01-14T08:55:10Z", "12.5"), Recording("s2")),
        "why",
        None,
    )
    rich = Event(**{**{f: getattr(plain, f) for f in Event.__slots__}, "enrichment": enrichment})
    data = json.loads(json.dumps(rich.to_json()))
    assert data["enrichment"] == {
        "recordings": [
            {
                "session_id": "s1",
                "text": "text",
                "start_time": "2026-01-14T08:55:10Z",
                "end_time": "12.5",
            },
            {"session_id": "s2"},
        ],
        "priority_explanation": "why",
    }
    again = Event.from_json(data)
    assert again == rich
    assert again.enrichment == enrichment
    assert Event.from_json(plain.to_json()).enrichment is NO_ENRICHMENT
    for mangled in (
        None,
        [],
        "x",
        {"recordings": [{"text": "no id"}, 3], "priority_explanation": 1},
    ):
        assert Event.from_json({**data, "enrichment": mangled}).enrichment == NO_ENRICHMENT
