"""Quiet hours in the delivery (issue 15, item 2): while a sink's ``mute_during`` interval
holds (or none of its ``active_during`` ones), what it would receive waits in the state and
goes out as one digest when the interval ends; ``on_mute: drop`` drops it. A rule's quiet hours
hold an event only when every rule that routed it is muted. Across midnight, both daylight-
saving changes (a fixed offset would release an hour early or late) and a restart in the
middle, with a clock the test moves; the configuration is parsed from YAML as a user writes it
and the holds are the daemon's (``holds_of``), on both backends.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from notifier.cli.outbox import cmd_outbox
from notifier.cli.shared import EXIT_OK
from notifier.config.load import parse_config
from notifier.config.settings import Settings, StateSettings
from notifier.core.events import Event
from notifier.delivery.drain import Deliverer
from notifier.delivery.holds import holds_of
from notifier.state.store import open_store
from tests.factories import API_KEY
from tests.holding import SETTINGS, AnyStore, Clock, Recorder, event, queue

CONFIG = """posthog:
  host: https://us.posthog.com
  api_key: ${POSTHOG_PERSONAL_API_KEY}
  project_ids: [1]
time_intervals:
  - name: nights
    time_intervals:
      - times:
          - start_time: "22:00"
            end_time: "07:00"
        location: Europe/Berlin
  - name: workhours
    time_intervals:
      - weekdays: ["monday:friday"]
        times:
          - start_time: "09:00"
            end_time: "17:00"
        location: Europe/Berlin
sinks:
  slack:
    type: console
    mute_during: [nights]
  hook:
    type: console
  pager:
    type: console
    active_during: workhours
    on_mute: drop
rules:
  - name: all
    sinks: [slack, hook, pager]
  - name: night-owl
    sinks: [hook]
    mute_during: Nights
"""
NIGHTS = "During quiet hours (nights)"


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


@pytest.fixture(scope="module")
def config() -> Settings:
    return parse_config(CONFIG, source="c.yaml", env={"POSTHOG_PERSONAL_API_KEY": API_KEY})


def deliverer(store: AnyStore, clock: Clock, config: Settings, *sinks: Recorder) -> Deliverer:
    return Deliverer(
        store, {s.name: s for s in sinks}, SETTINGS, clock=clock, holds=holds_of(config, store)
    )


def ids(store: AnyStore, state: str, sink: str) -> list[str]:
    return [e.event.report.id for e in store.entries(state, sink) if isinstance(e.event, Event)]


def test_nights_hold_across_midnight_and_end_in_one_digest(
    store: AnyStore, config: Settings
) -> None:
    clock, slack, hook = Clock(), Recorder("slack"), Recorder("hook")
    drain = deliverer(store, clock, config, slack, hook)
    clock.now = utc(2026, 12, 3, 20, 59)  # 21:59 in Berlin: not yet
    queue(store, (event("early"), "slack"), now=clock.now)
    drain.drain("slack")
    assert slack.singles == ["early"]
    clock.now = utc(2026, 12, 3, 21, 0)  # 22:00 in Berlin
    queue(store, (event("a"), "slack"), (event("a"), "hook"), now=clock.now)
    drain.drain("slack"), drain.drain("hook")
    assert hook.singles == ["a"]  # the hook has no quiet hours
    clock.now = utc(2026, 12, 3, 23, 30)  # past midnight in Berlin
    queue(store, (event("b"), "slack"), now=clock.now)
    drain.drain("slack")
    clock.now = utc(2026, 12, 4, 5, 59)  # 06:59
    drain.drain("slack")
    assert slack.singles == ["early"]
    assert slack.digests == []
    assert ids(store, "held", "slack") == ["a", "b"]
    assert store.next_due("slack") is None
    clock.now = utc(2026, 12, 4, 6, 0)  # 07:00: the night is over
    drain.drain("slack")
    assert slack.digests == [(NIGHTS, ["a", "b"])]
    assert store.held_entries() == []
    assert [c.kind for c in store.story("b")] == ["found", "held", "released"]


@pytest.mark.parametrize(
    ("night", "still", "over"),
    [
        # spring: 02:00 CET becomes 03:00 CEST; 07:00 is 05:00 UTC (a fixed +1 says 06:00)
        ((2026, 3, 28, 22), (2026, 3, 29, 4, 59), (2026, 3, 29, 5, 0)),
        # autumn: 03:00 CEST becomes 02:00 CET; 07:00 is 06:00 UTC (a fixed +2 says 05:00)
        ((2026, 10, 24, 21), (2026, 10, 25, 5, 59), (2026, 10, 25, 6, 0)),
    ],
    ids=["spring", "autumn"],
)
def test_a_daylight_saving_change_ends_the_night_at_seven_local(
    store: AnyStore,
    config: Settings,
    night: tuple[int, ...],
    still: tuple[int, ...],
    over: tuple[int, ...],
) -> None:
    clock, slack = Clock(), Recorder("slack")
    drain = deliverer(store, clock, config, slack)
    clock.now = utc(*night)
    queue(store, (event("a"), "slack"), now=clock.now)
    drain.drain("slack")
    clock.now = utc(*still)
    drain.drain("slack")
    assert (slack.singles, slack.digests) == ([], [])
    clock.now = utc(*over)
    drain.drain("slack")
    assert slack.digests == [(NIGHTS, ["a"])]


def test_a_restart_in_the_middle_of_the_night_keeps_what_is_held(
    state_settings: StateSettings, config: Settings
) -> None:
    clock, slack = Clock(), Recorder("slack")
    first = open_store(state_settings)
    clock.now = utc(2026, 12, 3, 22, 0)
    queue(first, (event("a"), "slack"), now=clock.now)
    deliverer(first, clock, config, slack).drain("slack")
    first.close()
    clock.now = utc(2026, 12, 4, 2, 0)  # a new process, still night
    second = open_store(state_settings)
    try:
        drain = deliverer(second, clock, config, slack)
        queue(second, (event("b"), "slack"), now=clock.now)
        drain.drain("slack")
        assert (slack.singles, slack.digests) == ([], [])
        clock.now = utc(2026, 12, 4, 6, 30)
        drain.drain("slack")
        assert slack.digests == [(NIGHTS, ["a", "b"])]
        assert second.counts() == {("slack", "delivered"): 2}
    finally:
        second.close()


def test_outside_active_during_with_on_mute_drop_nothing_is_sent(
    store: AnyStore, config: Settings
) -> None:
    clock, pager = Clock(), Recorder("pager")
    drain = deliverer(store, clock, config, pager)
    clock.now = utc(2026, 12, 5, 10, 0)  # a Saturday
    queue(store, (event("a"), "pager"), now=clock.now)
    drain.drain("pager")
    clock.now = utc(2026, 12, 7, 9, 0)  # Monday 10:00 in Berlin: working hours again
    queue(store, (event("b"), "pager"), now=clock.now)
    drain.drain("pager")
    assert pager.singles == ["b"]
    assert pager.digests == []
    assert ids(store, "dropped", "pager") == ["a"]
    (dropped,) = store.entries("dropped", "pager")
    assert dropped.held_by == "quiet:outside workhours"


def test_a_rule_mutes_only_what_every_rule_that_routed_it_mutes(
    store: AnyStore, config: Settings
) -> None:
    clock, hook = Clock(), Recorder("hook")
    drain = deliverer(store, clock, config, hook)
    clock.now = utc(2026, 12, 3, 23, 0)  # night in Berlin
    queue(store, (event("owl"), "hook"), now=clock.now, rules=["night-owl"])
    queue(store, (event("both"), "hook"), now=clock.now, rules=["night-owl", "all"])
    queue(store, (event("day"), "hook"), now=clock.now, rules=["all"])
    drain.drain("hook")
    assert sorted(hook.singles) == ["both", "day"]
    assert ids(store, "held", "hook") == ["owl"]
    clock.now = utc(2026, 12, 4, 6, 0)
    drain.drain("hook")
    assert hook.digests == [(NIGHTS, ["owl"])]


def test_notifier_outbox_shows_what_quiet_hours_hold(
    store: AnyStore, state_settings: StateSettings, config: Settings
) -> None:
    clock, slack = Clock(), Recorder("slack")
    clock.now = utc(2026, 12, 3, 23, 0)
    queue(store, (event("a"), "slack"), (event("b"), "slack"), now=clock.now)
    deliverer(store, clock, config, slack).drain("slack")
    out = io.StringIO()
    assert (
        cmd_outbox(config.model_copy(update={"state": state_settings}), "list", None, out)
        == EXIT_OK
    )
    said = out.getvalue()
    assert "2 held by silences and quiet hours" in said
    assert "2 for slack" in said
    assert "quiet:nights" in said
    assert NIGHTS in said


def test_quiet_hours_taken_out_of_the_config_release_what_they_held(
    store: AnyStore, config: Settings
) -> None:
    """A reload that removes a sink's mute_during: what it held goes out at the next pass, as
    one digest, though the night is not over."""
    clock, slack = Clock(), Recorder("slack")
    clock.now = utc(2026, 12, 3, 23, 0)
    queue(store, (event("a"), "slack"), now=clock.now)
    deliverer(store, clock, config, slack).drain("slack")
    assert ids(store, "held", "slack") == ["a"]
    awake = parse_config(
        CONFIG.replace("    mute_during: [nights]\n", ""),
        source="c.yaml",
        env={"POSTHOG_PERSONAL_API_KEY": API_KEY},
    )
    clock.now += 60
    deliverer(store, clock, awake, slack).drain("slack")
    assert slack.digests == [(NIGHTS, ["a"])]
