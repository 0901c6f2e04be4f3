"""The pure diff: tables for each event type, Hypothesis properties for the invariants."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.core.diff import compare, diff
from notifier.core.events import Event, EventType
from notifier.core.report import Report


def rep(report_id: str = "r1", **fields: Any) -> Report:
    base: dict[str, Any] = {
        "id": report_id,
        "title": "Checkout broken",
        "summary": "Users cannot pay.",
        "status": "ready",
        "total_weight": 1.5,
        "signal_count": 3,
        "relevant_user_count": 4,
        "artefact_count": 2,
        "created_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z",
    }
    base.update(fields)
    return Report.from_api(base)


@pytest.mark.parametrize(
    ("before", "after", "expected_type", "expected_changes"),
    [
        (None, rep(), EventType.NEW, {}),
        (
            rep(status="in_progress"),
            rep(status="ready"),
            EventType.STATUS_CHANGED,
            {"status": ("in_progress", "ready")},
        ),
        (
            rep(status="in_progress", total_weight=1.0),
            rep(total_weight=2.0),
            EventType.STATUS_CHANGED,
            {"status": ("in_progress", "ready"), "total_weight": (1.0, 2.0)},
        ),
        (rep(title="a"), rep(title="b"), EventType.UPDATED, {"title": ("a", "b")}),
        (rep(summary="a"), rep(summary=None), EventType.UPDATED, {"summary": ("a", None)}),
        (rep(signal_count=3), rep(signal_count=5), EventType.UPDATED, {"signal_count": (3, 5)}),
        (
            rep(artefact_count=1, title="a"),
            rep(artefact_count=2, title="b"),
            EventType.UPDATED,
            {"title": ("a", "b")},  # the artefact count is carried, not a change people read
        ),
        (
            rep(relevant_user_count=1),
            rep(relevant_user_count=9),
            EventType.UPDATED,
            {"relevant_user_count": (1, 9)},
        ),
        (rep(priority="P2"), rep(priority="P0"), EventType.UPDATED, {"priority": ("P2", "P0")}),
        (
            rep(actionability=None),
            rep(actionability="immediately_actionable"),
            EventType.UPDATED,
            {"actionability": (None, "immediately_actionable")},
        ),
    ],
)
def test_event_type_and_changes(
    before: Report | None, after: Report, expected_type: EventType, expected_changes: dict[str, Any]
) -> None:
    """Each kind of change yields its event type and exactly the changed fields."""
    snapshot = {before.id: before} if before else {}
    events = diff(7, snapshot, {after.id: after})
    assert len(events) == 1
    event = events[0]
    assert event.type is expected_type
    assert dict(event.changes) == expected_changes
    assert event.previous == before
    assert event.report == after
    assert event.project_id == 7


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (rep(updated_at="2026-01-01T00:00:00Z"), rep(updated_at="2026-02-01T00:00:00Z")),
        (rep(), Report.from_api({**rep().to_json(), "work_state": "working"})),
        # notes, commits and task runs move the artefact count: carried, never a change alone
        (rep(artefact_count=2), rep(artefact_count=40)),
        # a PostHog upgrade drops relevant_user_count and adds priority: not a change
        (
            rep(),
            Report.from_api(
                {
                    **{k: v for k, v in rep().to_json().items() if k != "relevant_user_count"},
                    "priority": "P1",
                }
            ),
        ),
    ],
)
def test_untracked_or_appearing_fields_are_not_changes(before: Report, after: Report) -> None:
    """updated_at, unknown fields, the artefact count and fields present in only one copy make
    no event."""
    assert diff(1, {before.id: before}, {after.id: after}) == []


def test_removed_only_when_confirmed_gone() -> None:
    """A report missing from current produces `removed` only when listed in `gone`."""
    before = rep("r1")
    assert diff(1, {"r1": before}, {}) == []
    events = diff(1, {"r1": before}, {}, gone={"r1"})
    assert [e.type for e in events] == [EventType.REMOVED]
    assert events[0].report == before
    assert diff(1, {}, {}, gone={"r1"}) == []


def test_events_in_creation_order() -> None:
    """Events come in report creation order, whatever the listing order."""
    late = rep("b", created_at="2026-03-01T00:00:00Z")
    early = rep("a", created_at="2026-01-01T00:00:00Z")
    events = diff(1, {}, {"b": late, "a": early})
    assert [e.report.id for e in events] == ["a", "b"]


def test_flip_flop_gives_distinct_event_ids() -> None:
    """ready → in_progress → ready: the second `ready` is a new event, not a duplicate id."""
    ready1 = rep(status="ready", updated_at="2026-01-01T00:00:00Z")
    working = rep(status="in_progress", updated_at="2026-01-02T00:00:00Z")
    ready2 = rep(status="ready", updated_at="2026-01-03T00:00:00Z")
    first = diff(1, {"r1": working}, {"r1": ready1})[0]
    again = diff(1, {"r1": working}, {"r1": ready2})[0]
    assert first.id != again.id


def test_compare_ignores_fields_missing_on_either_side() -> None:
    """compare() looks at a tracked field only when both copies carry it."""
    v1 = rep()
    v5 = Report.from_api(
        {**{k: v for k, v in v1.to_json().items() if k != "relevant_user_count"}, "priority": "P0"}
    )
    assert compare(v1, v5) == {}


def test_event_json_round_trip() -> None:
    """An event survives the outbox: to_json then from_json gives an equal event."""
    before, after = rep(status="in_progress"), rep(status="ready", priority="P1")
    event = diff(3, {"r1": before}, {"r1": after})[0]
    again = Event.from_json(event.to_json())
    assert again == event
    assert dict(again.changes) == dict(event.changes)


# -- properties -------------------------------------------------------------------------------

statuses = st.sampled_from(["potential", "candidate", "in_progress", "ready", "resolved", "weird"])
reports = st.builds(
    lambda rid, status, weight, count, title: rep(
        rid, status=status, total_weight=weight, signal_count=count, title=title
    ),
    st.sampled_from(["a", "b", "c", "d", "e"]),
    statuses,
    st.floats(0, 10, allow_nan=False),
    st.integers(0, 50),
    st.one_of(st.none(), st.text(max_size=20)),
)
listings = st.lists(reports, max_size=5).map(lambda rs: {r.id: r for r in rs})


@given(listings)
def test_diff_of_a_state_with_itself_is_empty(state: dict[str, Report]) -> None:
    """diff(s, s) is empty."""
    assert diff(1, state, state) == []


@given(listings, listings)
def test_same_inputs_same_event_ids(before: dict[str, Report], after: dict[str, Report]) -> None:
    """The diff is deterministic: recomputing it (after a crash) yields the same ids."""
    first = [e.id for e in diff(1, before, after)]
    second = [e.id for e in diff(1, dict(before), dict(after))]
    assert first == second
    assert len(set(first)) == len(first)


@given(listings, listings)
def test_every_change_is_reported_once(before: dict[str, Report], after: dict[str, Report]) -> None:
    """Every new or changed id gets exactly one event; unchanged ids none."""
    events = diff(1, before, after)
    ids = [e.report.id for e in events]
    assert len(ids) == len(set(ids))
    for rid, report in after.items():
        changed = rid not in before or compare(before[rid], report) != {}
        assert (rid in ids) == changed


@pytest.mark.parametrize(
    ("field", "raw", "parsed"),
    [
        ("total_weight", 10**400, None),  # too big for a float: unknown, not a crash
        ("total_weight", "2.50", 2.5),
        ("total_weight", "NaN", None),
        ("signal_count", "7", 7),
        ("signal_count", 2.5, None),
        ("signal_count", True, None),
        ("artefact_count", 10**30, None),
        ("artefact_count", 12, 12),
    ],
)
def test_numbers_are_read_leniently(field: str, raw: Any, parsed: Any) -> None:
    """Numbers as strings are read; what is not a usable number reads as unknown (None)."""
    report = Report.from_api({"id": "r", "status": "ready", field: raw})
    assert getattr(report, field) == parsed
