"""Recordings from a report's signals (PostHog V6), for sinks with ``enrich: [artefacts]``: the
real notifier (httpx over TCP, SQLite, slack_sdk to the fake Slack) against the fake PostHog.

V6 serves a report's session recordings as ``session_replay`` signals at ``…/reports/{id}/
signals/`` (unpaginated and costly: at most one request per report per change about to be
sent); older servers have no such endpoint (404, remembered per project) and may still serve
``video_segment`` artefacts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from notifier.config.settings import Settings
from notifier.core.events import Recording
from notifier.core.report import Links
from notifier.demo.simulator import FakePostHog
from notifier.posthog.signals import read_recordings
from tests.factories import PROJECT, Notifiers
from tests.fakes import FakeSlack, WebhookReceiver
from tests.test_enrich import EXPECTED, Run, add_rich, artefact_requests, enriching

#: Three segments of three sessions, oldest first: (session, title, start, problem type).
SEGMENTS = (
    ("sess-a", "Rage clicks on Pay", "2026-01-15T16:20:41Z", "blocking_exception"),
    ("sess-b", "Leaves at the address form", "2026-01-15T16:25:02Z", "abandonment"),
    ("sess-c", "Scrolls up and down the plans", "2026-01-15T16:31:10.500000Z", "confusion"),
)
WATCH = re.compile(r"<([^|>]+)\|Watch recording>: ([^\n]*)")


def signals_requests(posthog: FakePostHog) -> list[str]:
    """The report id of every ``/signals/`` request, in order."""
    return [r.path.split("/")[-3] for r in posthog.requests if r.path.endswith("/signals/")]


def at_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def add_replayed(posthog: FakePostHog, title: str, **fields: Any) -> dict[str, Any]:
    """A report with three session-replay signals, an error-tracking signal and both
    judgments (artefacts)."""
    report = posthog.add_report(PROJECT, title=title, **fields)
    rid = report["id"]
    for session, segment, start, problem in SEGMENTS:
        posthog.add_recording(
            PROJECT, rid, session_id=session, segment_title=segment, start_time=start,
            problem_type=problem,
        )  # fmt: skip
    posthog.add_signal(PROJECT, rid, content="TypeError: cannot read 'token'")
    posthog.add_artefact(
        PROJECT, rid, "priority_judgment", {"explanation": "3% of checkouts.", "priority": "P1"}
    )
    posthog.add_artefact(
        PROJECT, rid, "actionability_judgment", {"explanation": "Reproducible on Safari."}
    )
    return report


@pytest.fixture
def start(
    make_config: Callable[..., Path], load: Callable[[Path], Settings], notifiers: Notifiers
) -> Callable[..., Run]:
    """A factory of Runs: ``enrich`` names the sinks with ``enrich: [artefacts]``, ``sinks``
    sets other sink fields; the rest goes to make_config."""

    def make(
        *,
        enrich: Sequence[str] = ("slack",),
        sinks: dict[str, dict[str, Any]] | None = None,
        **config: Any,
    ) -> Run:
        config.setdefault("poll_extra", "full_sync_every: 0s")
        settings = enriching(load(make_config(**config)), enrich, **(sinks or {}))
        waits: list[float] = []
        return Run(notifiers.build(settings, waits=waits), waits)

    return make


# ------------------------------------------------------------------------------ V6 signals


def test_a_new_report_reaches_slack_with_three_recordings_at_their_start(
    posthog: FakePostHog,
    start: Callable[..., Run],
    slack: FakeSlack,
    receiver: WebhookReceiver,
) -> None:
    """V6: a new report with three session-replay signals and an error signal reaches Slack
    with three "Watch recording" links, newest first, each opening at its segment's start and
    naming its title and problem type in words; the webhook gets the same recordings with their
    links. One /signals/ request and one artefacts request for both sinks."""
    posthog.api_version = 6
    run = start(enrich=("slack", "hook"))
    run.poll()
    report = add_replayed(posthog, "Checkout button unresponsive")
    plan = run.poll()
    assert plan.enriched == 1
    assert signals_requests(posthog) == [report["id"]]
    assert artefact_requests(posthog) == [report["id"]]
    assert run.notifier.drain_all().delivered == 2

    [message] = slack.messages
    card = "\n".join(b["text"]["text"] for b in message.blocks or [] if "text" in b)
    replay = f"{posthog.url}/project/{PROJECT}/replay/"
    assert WATCH.findall(card) == [
        (f"{replay}sess-{session}?timestamp={at_ms(begins)}", f"{title} ({problem})")
        for session, title, begins, problem in (
            ("c", "Scrolls up and down the plans", SEGMENTS[2][2], "confusion"),
            ("b", "Leaves at the address form", SEGMENTS[1][2], "abandonment"),
            ("a", "Rage clicks on Pay", SEGMENTS[0][2], "blocking exception"),
        )
    ]
    assert "3% of checkouts." in card
    assert "TypeError" not in card  # the error signal is no recording

    [body] = receiver.bodies()
    recordings = body["data"]["enrichment"]["recordings"]
    assert [r["session_id"] for r in recordings] == ["sess-c", "sess-b", "sess-a"]
    assert recordings[2] == {
        "session_id": "sess-a",
        "text": "The user struggled here.",
        "start_time": "2026-01-15T16:20:41Z",
        "end_time": "2026-01-15T16:21:11.000000Z",
        "title": "Rage clicks on Pay",
        "problem_type": "blocking_exception",
        "url": f"{replay}sess-a?timestamp={at_ms(SEGMENTS[0][2])}",
    }


def test_t_counts_from_the_recordings_start_when_posthog_sends_it() -> None:
    """PostHog's player reads ``t`` as seconds from the recording's start and ``timestamp`` as
    an instant (Unix ms): with ``session_start_time`` the link says ``t``; without, the
    instant; a bare number (an old segment's) opens the recording at its beginning."""
    signal = {
        "source_product": "session_replay",
        "timestamp": "2026-01-15T16:21:07Z",
        "extra": {
            "session_id": "sess-1",
            "segment_title": "Rage clicks",
            "start_time": "2026-01-15T16:20:41.900000Z",
            "session_start_time": "2026-01-15T16:18:00Z",
            "problem_type": "non_blocking_exception",
        },
    }
    [recording] = read_recordings([signal, {"source_product": "error_tracking", "extra": {}}])
    links = Links("https://eu.posthog.com")
    assert recording.url(links, 7) == "https://eu.posthog.com/project/7/replay/sess-1?t=161"
    assert recording.problem() == "non blocking exception"
    bare = Recording("sess-1", start_time="2026-01-15T16:20:41Z")
    assert bare.url(links, 7).endswith("/replay/sess-1?timestamp=1768494041000")
    assert Recording("sess-1", start_time="12.5").url(links, 7).endswith("/replay/sess-1")


def test_unusable_signals_give_no_recording() -> None:
    """Signals of other products, without a usable session id, or not objects: skipped; the
    same session twice counts once; at most three."""

    def replay(session: Any, moment: str = "2026-01-15T16:00:00Z") -> dict[str, Any]:
        return {"source_product": "session_replay", "timestamp": moment,
                "extra": {"session_id": session, "problem_type": "<!here>"}}  # fmt: skip

    signals = [
        None,
        "text",
        {"source_product": "session_replay", "extra": "not an object"},
        replay("../../admin"),
        replay(42),
        replay("s1", "2026-01-15T16:01:00Z"),
        replay("s1", "2026-01-15T16:02:00Z"),
        *(replay(f"s{i}", f"2026-01-15T15:0{i}:00Z") for i in range(2, 6)),
    ]
    found = read_recordings(signals)
    assert [r.session_id for r in found] == ["s1", "s5", "s4"]
    assert all(r.problem_type is None for r in found)  # not a problem type: not shown


# ------------------------------------------------------------------------------ cost


def test_one_signals_request_per_report_per_change(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """At most one /signals/ request per report per change about to be sent (to the one sink
    that enriches): none in a quiet cycle, one for an update, none for a removal, none for a
    cycle the sink digests, none for a report whose sources include no session replay."""
    posthog.api_version = 6
    rules = "- {name: all, match: {event: [new, updated, removed]}, sinks: [slack, hook]}"
    run = start(rules=rules, sinks={"slack": {"digest_after": 3}})
    run.poll()
    report = add_replayed(posthog, "first")
    run.poll()
    assert signals_requests(posthog) == [report["id"]]
    assert run.poll().requests == 1  # quiet: the listing only
    posthog.update_report(PROJECT, report["id"], title="first, retitled")
    run.poll()
    assert signals_requests(posthog) == [report["id"]] * 2
    posthog.delete_report(PROJECT, report["id"])
    run.poll()
    flood = [add_replayed(posthog, f"flood {i}") for i in range(4)]  # > digest_after 3
    run.poll()
    errors_only = posthog.add_report(PROJECT, title="errors", source_products=["error_tracking"])
    run.poll()
    assert signals_requests(posthog) == [report["id"]] * 2
    assert {f["id"] for f in flood} | {errors_only["id"]} <= set(run.queued("slack"))


def test_150_artefacts_cost_one_artefacts_request(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """V6, newest first: the latest judgments are on the first page, and the recordings come
    from the signals, so a report with 150 artefacts costs one artefacts request."""
    posthog.api_version = 6
    run = start()
    run.poll()
    report = posthog.add_report(PROJECT, title="busy")
    rid = report["id"]
    posthog.add_recording(PROJECT, rid, session_id="sess-1", segment_title="Stuck")
    for i in range(98):
        posthog.add_artefact(PROJECT, rid, "note", {"note": f"old {i}"})
    posthog.add_artefact(PROJECT, rid, "priority_judgment", {"explanation": "Why P1."})
    posthog.add_artefact(PROJECT, rid, "actionability_judgment", {"explanation": "Why."})
    for i in range(50):
        posthog.add_artefact(PROJECT, rid, "note", {"note": f"new {i}"})
    run.poll()
    assert artefact_requests(posthog) == [rid]
    enrichment = run.queued("slack")[rid].enrichment
    assert [r.title for r in enrichment.recordings] == ["Stuck"]
    assert enrichment.priority_explanation == "Why P1."


# --------------------------------------------------------------------- older servers


def test_v5_video_segments_still_give_recordings_and_the_404_is_remembered(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """V5 has no /signals/ (PostHog's bare 404): the report's artefacts are there, so the
    server lacks the endpoint; the recordings come from its video segments as before, and the
    project's later reports are not asked for signals again."""
    posthog.api_version = 5
    run = start()
    run.poll()
    first = add_rich(posthog, "first")
    run.poll()
    assert signals_requests(posthog) == [first["id"]]
    second = add_rich(posthog, "second")
    run.poll()
    assert signals_requests(posthog) == [first["id"]]
    queued = run.queued("slack")
    assert queued[first["id"]].enrichment == EXPECTED
    assert queued[second["id"]].enrichment == EXPECTED
    assert artefact_requests(posthog) == [first["id"], second["id"]]


def test_endpoint_not_found_is_remembered_a_deleted_report_is_not(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """PostHog's "Endpoint not found." says the server has no /signals/: remembered at once.
    A bare "Not found." for a report without artefacts may be a report deleted meanwhile:
    the next report is asked again."""
    posthog.api_version = 6
    run = start()
    run.poll()
    first = add_replayed(posthog, "first")
    bare = posthog.add_report(PROJECT, title="no artefacts")
    posthog.add_recording(PROJECT, bare["id"], session_id="sess-9")
    posthog.fail_next(404, path_contains=f"{bare['id']}/signals/")  # a report just deleted?
    run.poll()
    assert sorted(signals_requests(posthog)) == sorted([first["id"], bare["id"]])
    gone = {
        "type": "invalid_request",
        "code": "not_found",
        "detail": "Endpoint not found.",
        "attr": None,
    }
    second = add_replayed(posthog, "second")
    posthog.fail_next(404, gone, path_contains=f"{second['id']}/signals/")
    run.poll()
    third = add_replayed(posthog, "third")
    run.poll()
    asked = signals_requests(posthog)
    assert asked.count(second["id"]) == 1
    assert third["id"] not in asked
    assert run.queued("slack")[third["id"]].enrichment.priority_explanation == "3% of checkouts."
