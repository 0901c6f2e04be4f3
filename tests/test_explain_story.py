"""`notifier explain` tells a report's story (issue 15, item 4): each event found with the
cycle's listing and the rules that routed it (a ``found`` chapter the cycle commit writes), the
silence that held it and its release into a digest, every delivery per sink and the living
Slack message's link; and whether the silences active now (the state's, the config's standing
ones) or quiet hours would hold an event at each sink it goes to. Real stores on both backends,
the real drain (``Deliverer``, ``holds_of``) with a clock the test moves, the CLI in-process.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from notifier.cli.explain_rules import write_holds
from notifier.config.load import parse_config
from notifier.config.settings import Settings
from notifier.core.events import Event, EventType
from notifier.core.silences import Silence, new_silence_id, parse_matcher
from notifier.delivery.drain import Deliverer
from notifier.delivery.holds import Holds
from notifier.state.store import CycleWrite, SnapshotRow, empty_store, open_store
from tests.factories import API_KEY, PROJECT, RAW, World, report
from tests.helpers import cli, inject, wait_for
from tests.holding import SETTINGS, T0, AnyStore, Clock, Recorder

HOUR = 3600.0
DAY = 86400.0
TO_SLACK = "- {name: all, match: {}, sinks: [slack]}"
NOTE = "While muted (4 h, by alice: 'deploy')"


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The config's state lines: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"path: {tmp_path / 'state.db'}"
    return f"url: {request.getfixturevalue('postgres_url')}"


@pytest.fixture
def store_of(load: Callable[[Path], Settings]) -> Iterator[Callable[[Path], AnyStore]]:
    """The state a config names, opened writable (created); closed after the test."""
    stores: list[AnyStore] = []

    def open_for(config: Path) -> AnyStore:
        stores.append(open_store(load(config).state))
        return stores[-1]

    yield open_for
    for store in stores:
        store.close()


def new_event(rid: str, **fields: Any) -> Event:
    return Event.create(EventType.NEW, PROJECT, report(id=rid, **fields), None, {})


def silence(*matchers: str, start: float, **fields: Any) -> Silence:
    return Silence(
        id=new_silence_id(),
        matchers=tuple(parse_matcher(m) for m in matchers),
        starts_at=start,
        ends_at=start + 4 * HOUR,
        author="alice",
        comment="deploy",
        **fields,
    )


def explain(world: World, config: Path, *args: str) -> str:
    result = cli("explain", *args, "-c", str(config), env=world.env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(RAW))
    return path


# --- REPORT_ID: the story ---------------------------------------------------------------------


def test_a_delivered_report_shows_what_found_it_and_its_living_message(
    world: World, once: Callable[..., int], state: str
) -> None:
    """After a cycle found and delivered a new report: the found chapter (event, listing,
    rules, sinks), each delivery, and a link to the Slack message."""
    rules = "- {name: to both, match: {event: [new, status_changed]}, sinks: [slack, hook]}"
    world.posthog.add_report(PROJECT, title="old")
    assert once(rules=rules, state=state) == 0
    fresh = world.posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert once(rules=rules, state=state) == 0
    wait_for(lambda: len(world.slack.messages) == 1, what="the Slack message")
    ts = world.slack.messages[0].ts
    assert ts is not None
    out = explain(world, world.make_config(rules=rules, state=state), fresh["id"][:8])
    story = out[out.index("  story:") : out.index("  outbox:")]
    assert story.count(" found ") == 1, story
    assert " UTC found new (ready) in a full listing (" in story
    assert "; rules to both → slack, hook\n" in story
    assert "    slack: new delivered, queued" in out
    assert "    hook: new delivered, queued" in out
    link = f"https://slack.com/archives/C0123456789/p{ts.replace('.', '')}"
    assert f"    slack: channel C0123456789, ts {ts}, shows " in out
    assert f" → {link}\n" in out
    assert "  hook: nothing holds it: it would go out at once\n" in out  # today's verdicts
    assert "not consulted" not in out


def test_a_change_no_rule_routed_is_in_the_story_too(
    world: World, once: Callable[..., int], state: str
) -> None:
    """Why did this not notify? The cycle found it, and no rule matched it: the story says so,
    and today's rules name the condition that failed."""
    rules = "- {name: ready only, match: {status: ready}, sinks: [slack]}"
    world.posthog.add_report(PROJECT, title="old")
    assert once(rules=rules, state=state) == 0
    quiet = world.posthog.add_report(PROJECT, title="Still researching", status="in_progress")
    assert once(rules=rules, state=state) == 0
    out = explain(world, world.make_config(rules=rules, state=state), quiet["id"])
    story = out[out.index("  story:") : out.index("  outbox:")]
    assert " found new (in_progress) in a full listing (" in story, story
    assert "; matched no rule: sent nowhere\n" in story
    assert "✗ ready only" in out
    assert world.slack.messages == []


def test_a_report_held_by_a_silence_then_released(
    world: World, state: str, store_of: Callable[[Path], AnyStore]
) -> None:
    """Held: the outbox entry says by what, the story tells the finding then the hold; once
    the silence has ended by itself, the release and the digest's delivery."""
    config = world.make_config(rules=TO_SLACK, state=state)
    store, clock, slack = store_of(config), Clock(), Recorder("slack")
    muted = silence("title=~Checkout.*", start=T0 - 60)
    store.add_silence(muted)
    event = new_event("rep-held", title="Checkout fails")
    row = SnapshotRow(event.report, listed=True)
    store.commit_cycle(CycleWrite(PROJECT, [row], [], [(event, "slack", ("all",))], T0))
    drain = Deliverer(store, {"slack": slack}, SETTINGS, clock=clock, holds=Holds(store))
    drain.drain("slack")
    assert slack.singles == []

    out = explain(world, config, "rep-held")
    assert f"    slack: new held (by silence:{muted.id}: {NOTE}), queued" in out
    held = f" UTC held for slack by silence {muted.id}: {NOTE}\n"
    assert held in out
    assert out.index(" found new (ready) in an incremental listing; rules all → slack") < out.index(
        held
    )
    assert "released" not in out
    assert "  slack: nothing holds it: it would go out at once\n" in out  # it ended long ago

    clock.now = T0 + 5 * HOUR  # the silence ends by itself
    drain.drain("slack")
    assert slack.digests == [(NOTE, ["rep-held"])]
    out = explain(world, config, "rep-held")
    released = f" UTC released for slack: silence {muted.id} ended; sent in one digest"
    assert released in out
    assert out.index(held) < out.index(released)
    assert f"    slack: new delivered (released from silence:{muted.id}: {NOTE})" in out


def test_a_dropped_entry_says_why_and_a_removed_report_is_still_explained(
    world: World, state: str, store_of: Callable[[Path], AnyStore]
) -> None:
    """A silence expired by hand drops what it held: the outbox and the story say why. Once
    the report is gone from the snapshot, its full id still finds its story."""
    config = world.make_config(rules=TO_SLACK, state=state)
    store, clock, slack = store_of(config), Clock(), Recorder("slack")
    muted = silence("report_id=rep-gone", start=T0 - 60)
    store.add_silence(muted)
    event = new_event("rep-gone")
    store.commit_cycle(CycleWrite(PROJECT, [], [], [(event, "slack", ("all",))], T0))
    drain = Deliverer(store, {"slack": slack}, SETTINGS, clock=clock, holds=Holds(store))
    drain.drain("slack")
    clock.now = T0 + HOUR
    assert store.expire_silence(muted.id, clock.now)
    drain.drain("slack")
    assert (slack.singles, slack.digests) == ([], [])
    out = explain(world, config, "rep-gone")
    assert "  not in the snapshot: removed from PostHog (or forgotten)\n" in out
    why = f"silence {muted.id} was expired by hand"
    assert f"    slack: new dropped (by silence:{muted.id}: {NOTE}), queued" in out
    assert f"; dropped: {why}\n" in out
    assert f" UTC dropped for slack (silence {muted.id}): {why}\n" in out
    assert "── through today's rules (its last copy in the outbox as the current copy)" in out
    unknown = cli("explain", "rep-g", "-c", str(config), env=world.env)  # no prefix: no snapshot
    assert unknown.returncode == 1
    assert "no report with an id starting 'rep-g'" in unknown.stdout


# --- the found chapters the cycle commit writes -------------------------------------------------


def test_one_found_chapter_per_event_and_none_twice(store: AnyStore) -> None:
    """Each event queued by a cycle gets one chapter (its rules and sinks merged, the cycle's
    listing); the same cycle committed again adds none; reminders tell their own."""
    before = report(id="r1", status="in_progress")
    moved = Event.create(
        EventType.STATUS_CHANGED,
        PROJECT,
        report(id="r1"),
        before,
        {"status": ("in_progress", "ready")},
    )
    reminder = Event.create(EventType.REMINDER, PROJECT, report(id="r1"), None, {})
    write = CycleWrite(
        PROJECT,
        [],
        [],
        [(moved, "slack", ("a",)), (moved, "hook", ("a", "b")), (reminder, "slack", ("a",))],
        T0,
        full_sync=False,
        listing="status=ready",
    )
    assert store.commit_cycle(write) == 3
    assert store.commit_cycle(write) == 0  # recomputed: nothing new, nothing told twice
    chapters = store.story("r1")
    assert [(c.kind, c.at) for c in chapters] == [("found", T0)]
    assert chapters[0].detail == {
        "event": "status_changed",
        "changes": ["status"],
        "status": "ready",
        "was": "in_progress",
        "rules": ["a", "b"],
        "sinks": ["slack", "hook"],
        "listing": "incremental",
        "filter": "status=ready",
        "baseline": False,
    }


def test_found_chapters_are_pruned_with_the_outbox(store: AnyStore) -> None:
    """Stories are forgotten by age whatever became of the report: a long-gone report's found
    chapters go with the delivered entries; a recent one's stay."""
    now = time.time()
    old, recent = new_event("gone"), new_event("recent")
    store.commit_cycle(CycleWrite(PROJECT, [], [], [(old, "slack", ("a",))], now - 90 * DAY))
    store.commit_cycle(CycleWrite(PROJECT, [], [], [(recent, "slack", ("a",))], now))
    assert [c.kind for c in store.story("gone")] == ["found"]
    store.prune(before=now - 7 * DAY, messages_before=now - 30 * DAY)
    assert store.story("gone") == []
    assert [c.kind for c in store.story("recent")] == ["found"]


# --- silences and quiet hours now -------------------------------------------------------------


def test_a_silence_in_the_state_would_hold_a_hypothetical_report(
    world: World, state: str, store_of: Callable[[Path], AnyStore], tmp_path: Path
) -> None:
    """--report with a state: its active silences are consulted, sink by sink."""
    rules = "- {name: all, match: {}, sinks: [slack, hook]}"
    config = world.make_config(rules=rules, state=state)
    muted = silence("sink=slack", "title=~Checkout.*", start=time.time() - 60)
    store_of(config).add_silence(muted)
    until = datetime.fromtimestamp(muted.ends_at or 0, UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = explain(world, config, "--report", str(saved(tmp_path)))
    assert (
        f"  slack: held by silence {muted.id} (until {until}, by alice: 'deploy'); one digest "
        "when it ends\n"
    ) in out
    assert "  hook: nothing holds it: it would go out at once\n" in out
    assert "not consulted" not in out


def test_quiet_hours_and_standing_silences_for_a_report_file_without_a_state(
    world: World, tmp_path: Path
) -> None:
    """No state: the config's standing silences and quiet hours only, said; nothing created."""
    hour = datetime.now(UTC).hour
    ends = f"{(hour + 2) % 24:02d}:00"
    intervals = f"""
silences:
  - matchers: ["sink=slack-hook"]
    comment: under construction
time_intervals:
  - name: now
    time_intervals:
      - times: [{{start_time: "{hour:02d}:00", end_time: "{ends}"}}]
  - name: never
    time_intervals:
      - years: ["2001"]
"""
    rules = "- {name: all, match: {}, sinks: [slack, hook, slack-hook]}"
    config = world.make_config(rules=rules, extra=intervals)
    inject(
        config, "    channel: C0123456789\n", "    channel: C0123456789\n    mute_during: [now]\n"
    )
    hook = "    secret: ${WEBHOOK_SECRET}\n"
    inject(config, hook, f"{hook}    active_during: [never]\n    on_mute: drop\n")
    out = explain(world, config, "--report", str(saved(tmp_path)))
    assert "  slack: held: quiet hours (now) until " in out
    assert f"{ends} UTC; one digest when they end\n" in out
    assert "  hook: would be dropped: quiet hours (outside never) for more than 8 d; " in out
    assert (
        "  slack-hook: would be dropped: silence config:1 (in the config: 'under construction') "
        "(a standing silence drops what it holds)\n"
    ) in out
    state = tmp_path / "state.db"
    assert f"the state's were not consulted — no state at {state} yet" in out
    assert not state.exists()


CONFIG = f"""posthog:
  host: https://us.posthog.com
  api_key: {API_KEY}
  project_ids: [1]
time_intervals:
  - name: nights
    time_intervals:
      - times: [{{start_time: "22:00", end_time: "07:00"}}]
        location: Europe/Berlin
sinks:
  slack: {{type: console, mute_during: [nights]}}
  hook: {{type: console}}
  pager: {{type: console}}
rules:
  - {{name: all, sinks: [slack, hook]}}
  - {{name: owl, sinks: [pager], mute_during: [nights], on_mute: drop}}
"""


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (datetime(2026, 3, 5, 1, 0, tzinfo=UTC), "07:00 Europe/Berlin"),  # 02:00 there
        (datetime(2026, 3, 4, 22, 0, tzinfo=UTC), "Thu 5 Mar 07:00 Europe/Berlin"),  # 23:00
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "07:00 Europe/Berlin"),  # the DST night
    ],
)
def test_quiet_hours_say_until_when_in_the_intervals_zone(
    tmp_path: Path, now: datetime, until: str
) -> None:
    """A sink's quiet hours hold; a rule's hold (here: drop) only what all its rules route."""
    settings = parse_config(CONFIG, source="test", env={}, base_dir=tmp_path)
    out, store = io.StringIO(), empty_store()
    try:
        write_holds(settings, new_event("r"), store, now.timestamp(), out)
    finally:
        store.close()
    assert out.getvalue().splitlines()[2:] == [
        f"  slack: held: quiet hours (nights) until {until}; one digest when they end",
        "  hook: nothing holds it: it would go out at once",
        f"  pager: would be dropped: quiet hours (nights) until {until}; on_mute: drop",
    ]


def test_an_event_routed_by_several_muted_rules_waits_for_the_first_to_wake(
    tmp_path: Path,
) -> None:
    """Every rule muted: held until the earliest of their ends, in that interval's zone; one
    awake: not held."""
    early = """  - name: early
    time_intervals:
      - times: [{start_time: "00:00", end_time: "05:00"}]
        location: Europe/Berlin
sinks:"""
    owls = "  - {name: owl, sinks: [pager], mute_during: [nights], on_mute: drop}\n"
    text = CONFIG.replace("sinks:", early, 1).replace(
        owls, owls + "  - {name: lark, sinks: [pager], mute_during: [early]}\n"
    )
    settings = parse_config(text, source="test", env={}, base_dir=tmp_path)
    lines = []
    for now in (datetime(2026, 3, 5, 1, 0, tzinfo=UTC), datetime(2026, 3, 5, 4, 30, tzinfo=UTC)):
        out, store = io.StringIO(), empty_store()
        try:
            write_holds(settings, new_event("r"), store, now.timestamp(), out)
        finally:
            store.close()
        lines += [line for line in out.getvalue().splitlines() if line.startswith("  pager:")]
    assert lines == [  # not dropped: lark holds rather than drops
        "  pager: held: quiet hours (nights, early) until 05:00 Europe/Berlin; one digest when "
        "they end",
        "  pager: nothing holds it: it would go out at once",  # 05:30 there: lark is awake
    ]
