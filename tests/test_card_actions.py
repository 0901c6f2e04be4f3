"""The buttons on the card (issue 14): which actions each status offers, that a click on any of
them carries what the handler needs (round trip through ``core.actions.parse_click``), the
pull-request confirm, the lines saying who acted, and Block Kit's limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from notifier.core.actions import (
    DISMISS_REASONS,
    SNOOZE_SIZES,
    Acted,
    Click,
    ReportAction,
    parse_click,
    write_for,
)
from notifier.core.events import Event
from notifier.render import acted_reply, slack_message
from notifier.render.actions import PR_WARNING, acted_line
from tests.factories import INJECTIONS, LINKS, new, removed
from tests.slack_checks import assert_block_kit_limits, assert_no_raw_markup, texts
from tests.test_render_slack import check_golden, message_json

ALL = tuple(ReportAction)
AT = datetime(2026, 1, 15, 14, 2, 31, tzinfo=UTC).timestamp()
OPEN_PR = {
    "implementation_pr_url": "https://github.com/acme/web/pull/1234",
    "implementation_pr_state": "open",
}


def action_elements(event: Event, actions: tuple[ReportAction, ...] = ALL) -> list[Any]:
    """The card's report.* elements, with the block they are in."""
    message = slack_message(event, ["ready"], LINKS, actions=actions)
    assert_block_kit_limits(message)
    return [
        (block, element)
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"].startswith("report.")
    ]


def shown(event: Event, actions: tuple[ReportAction, ...] = ALL) -> list[str]:
    return [e["action_id"].removeprefix("report.") for _, e in action_elements(event, actions)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ready", ["acknowledge", "resolve", "snooze", "dismiss", "mute"]),
        ("pending_input", ["acknowledge", "resolve", "snooze", "dismiss", "mute"]),
        ("in_progress", ["acknowledge", "dismiss", "mute"]),
        ("failed", ["reopen", "dismiss", "mute"]),
        ("suppressed", ["reopen", "mute"]),
        ("resolved", ["reopen", "mute"]),
        ("deleted", []),
        ("some_new_status", []),
    ],
)
def test_each_status_shows_the_actions_that_make_sense(status: str, expected: list[str]) -> None:
    """A ready report offers acknowledge, resolve, snooze and dismiss; a dismissed one restore
    only; mute wherever there are actions; a deleted or unknown status nothing."""
    assert shown(new(status=status)) == expected


def test_a_removed_report_and_a_sink_without_actions_get_no_buttons() -> None:
    """No actions block for a removed report, nor when the sink lists no actions; a sink's
    choice limits what is shown."""
    assert shown(removed()) == []
    assert shown(new(), ()) == []
    assert shown(new(), (ReportAction.DISMISS, ReportAction.REOPEN)) == ["dismiss"]
    plain_card = slack_message(new(), ["ready"], LINKS)
    assert [b for b in plain_card.blocks if b.get("block_id", "").startswith("ra1|")] == []


def test_restore_on_a_dismissed_report_reopen_otherwise() -> None:
    [(_, dismissed)] = action_elements(new(status="suppressed"), (ReportAction.REOPEN,))
    [(_, resolved)] = action_elements(new(status="resolved"), (ReportAction.REOPEN,))
    assert dismissed["text"]["text"] == "Restore"
    assert resolved["text"]["text"] == "Reopen"


def test_the_actions_block_comes_after_the_link_buttons() -> None:
    message = slack_message(new(), ["ready"], LINKS, actions=ALL)
    kinds = [b.get("block_id", b["type"]) for b in message.blocks if b["type"] == "actions"]
    assert len(kinds) == 2
    assert kinds[1].startswith("ra1|1|")
    assert message.blocks[-1]["type"] == "context"  # the footnote stays last


def click_payload(block: dict[str, Any], element: dict[str, Any], chosen: int = 0) -> Any:
    """Slack's block_actions payload for a click on ``element`` (choosing option ``chosen``)."""
    clicked: dict[str, Any] = {
        "type": element["type"],
        "action_id": element["action_id"],
        "block_id": block["block_id"],
        "action_ts": "1768485751.000100",
    }
    if element["type"] == "static_select":
        clicked["selected_option"] = element["options"][chosen]
    else:
        clicked["value"] = element["value"]
    return {
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "alice", "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "container": {"type": "message", "message_ts": "1768485700.000200", "channel_id": "C1"},
        "channel": {"id": "C1"},
        "message": {"ts": "1768485700.000200"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "actions": [clicked],
    }


@pytest.mark.parametrize("status", ["ready", "in_progress", "failed", "suppressed"])
def test_every_element_round_trips_through_parse_click(status: str) -> None:
    """A click on each element parses into the action, the project, the report and the status
    the card showed, with the chosen reason or size: the card carries all a click needs."""
    event = new(status=status)
    found = action_elements(event)
    assert found
    for block, element in found:
        options = len(element.get("options", [None]))
        for chosen in range(options):
            click = parse_click(click_payload(block, element, chosen))
            assert click.action.action_id == element["action_id"]
            assert (click.project_id, click.report_id) == (1, event.report.id)
            assert click.shown_status == status
            assert (click.user_id, click.channel_id) == ("U0ALICE", "C1")
            if click.action is ReportAction.DISMISS:
                assert click.reason == list(DISMISS_REASONS)[chosen]
            if click.action is ReportAction.SNOOZE:
                assert click.snooze_for == SNOOZE_SIZES[chosen]


def test_dismiss_and_snooze_offer_reasons_and_sizes_in_words() -> None:
    elements = {e["action_id"]: e for _, e in action_elements(new())}
    dismiss, snooze = elements["report.dismiss"], elements["report.snooze"]
    assert dismiss["placeholder"]["text"] == "Dismiss…"
    assert [o["text"]["text"] for o in dismiss["options"]][:2] == ["Not relevant", "Already fixed"]
    assert [o["value"] for o in dismiss["options"]] == list(DISMISS_REASONS)
    assert snooze["placeholder"]["text"] == "Snooze…"
    assert [o["text"]["text"] for o in snooze["options"]] == [
        "until 10 more signals",
        "until 50 more signals",
        "until 200 more signals",
    ]
    assert elements["report.acknowledge"]["text"]["text"] == "👀 I'm on it"


@pytest.mark.parametrize(
    "pr",
    [
        OPEN_PR,
        {"implementation_pr_url": "https://github.com/acme/web/pull/7"},
        {"pull_requests": [{"url": "https://github.com/acme/web/pull/8", "state": "open"}]},
    ],
)
def test_actions_that_close_an_open_pull_request_ask_first(pr: dict[str, Any]) -> None:
    """Dismiss, resolve and snooze get a confirm dialog saying the PR is closed too;
    acknowledge does not."""
    elements = {e["action_id"]: e for _, e in action_elements(new(**pr))}
    for action in ("report.dismiss", "report.resolve", "report.snooze"):
        assert elements[action]["confirm"]["text"]["text"] == PR_WARNING
    assert "confirm" not in elements["report.acknowledge"]


@pytest.mark.parametrize(
    "pr",
    [
        {},
        {"implementation_pr_url": None, "pull_requests": []},
        {**OPEN_PR, "implementation_pr_state": "merged"},
        {"implementation_pr_url": "https://x/pull/1", "implementation_pr_merged": True},
        {"pull_requests": [{"url": "https://x/pull/2", "state": "closed"}]},
    ],
)
def test_no_confirm_without_an_open_pull_request(pr: dict[str, Any]) -> None:
    assert all("confirm" not in e for _, e in action_elements(new(**pr)))


def test_a_report_id_that_a_block_id_cannot_carry_gets_no_buttons() -> None:
    """A ``|`` in the id would make the click name another report; 300 characters would break
    Block Kit's 255: no buttons rather than a wrong or refused card."""
    assert shown(new(id="a|b")) == []
    assert shown(new(id="x" * 300)) == []


# -- who acted -------------------------------------------------------------------------------


def acted(action: ReportAction, **fields: Any) -> Acted:
    return Acted(
        **{"action": action, "user_id": "U0ALICE", "user_name": "alice", "at": AT, **fields}
    )


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        (acted(ReportAction.ACKNOWLEDGE), "👀 <@U0ALICE> is on it · 14:02 UTC"),
        (
            acted(ReportAction.DISMISS, reason="wontfix_irrelevant"),
            "⚫ Dismissed by <@U0ALICE> — Not relevant · 14:02 UTC",
        ),
        (acted(ReportAction.RESOLVE), "✅ Resolved by <@U0ALICE> · 14:02 UTC"),
        (
            acted(ReportAction.SNOOZE, snooze_for=50),
            "💤 Snoozed by <@U0ALICE> until 50 more signals · 14:02 UTC",
        ),
        (acted(ReportAction.REOPEN), "↩️ Reopened by <@U0ALICE> · 14:02 UTC"),
        (acted(ReportAction.MUTE), "🔇 Muted for 4 h by <@U0ALICE> · 14:02 UTC"),
        (acted(ReportAction.RESOLVE, user_id="W0GRID"), "✅ Resolved by <@W0GRID> · 14:02 UTC"),
    ],
)
def test_acted_lines_on_the_card_and_in_the_thread(made: Acted, expected: str) -> None:
    """The card shows who acted under the status; the thread reply says the same."""
    message = slack_message(new(), ["ready"], LINKS, actions=ALL, acted=[made])
    assert_block_kit_limits(message)
    assert message.blocks[2] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": expected}],
    }
    reply = acted_reply(made, "Checkout <b>broken</b>")
    assert_block_kit_limits(reply)
    assert reply.blocks[0]["text"]["text"] == expected
    assert reply.text == f"{expected} — Checkout &lt;b&gt;broken&lt;/b&gt;"


@pytest.mark.parametrize("name", [*INJECTIONS, "*bold* `code`\n<!everyone>"])
def test_a_user_without_a_slack_id_is_shown_by_escaped_name(name: str) -> None:
    """Only a Slack member id is mentioned; anything else is a name that cannot ping, link or
    draw (a hostile display name, a non-Slack id)."""
    for user_id in ("alice-at-example", "<@U1>", "u0lower"):
        made = acted(ReportAction.DISMISS, user_id=user_id, user_name=name, reason="other")
        message = slack_message(new(), ["ready"], LINKS, acted=[made])
        assert_no_raw_markup(message)
        assert_no_raw_markup(acted_reply(made, name))
        assert "\n" not in acted_line(made)


def test_the_card_keeps_the_latest_actions_only() -> None:
    many = [acted(ReportAction.ACKNOWLEDGE, user_id=f"U{n:07d}") for n in range(20)]
    message = slack_message(new(), ["ready"], LINKS, actions=ALL, acted=many)
    assert_block_kit_limits(message)
    lines = message.blocks[2]["elements"][0]["text"].split("\n")
    assert lines[-1].startswith("👀 <@U0000019>")
    assert len(lines) == 5


def test_a_huge_card_drops_the_buttons_with_the_link_buttons_last() -> None:
    """Every limit holds with the actions block and the acted lines on a card too big for
    Slack: they rank with the buttons (kept over the footnote and recordings)."""
    event = new(title="T" * 5000, summary="S " * 20_000, status="ready", **OPEN_PR)
    message = slack_message(
        event, ["r"] * 50, LINKS, actions=ALL, acted=[acted(ReportAction.ACKNOWLEDGE)]
    )
    assert_block_kit_limits(message)
    assert any(b.get("block_id", "").startswith("ra1|") for b in message.blocks)


def test_golden_ready_card_with_actions() -> None:
    """A ready card with every action, an open pull request and someone on it, is pinned."""
    event = replace(new(**OPEN_PR), project_name="Storefront")
    message = slack_message(
        event, ["ready for the team"], LINKS, actions=ALL, acted=[acted(ReportAction.ACKNOWLEDGE)]
    )
    assert_block_kit_limits(message)
    assert any("I'm on it" in t for t in texts(message))
    check_golden("card_ready_actions", message_json(message))


# -- mute ------------------------------------------------------------------------------------


def test_mute_is_a_plain_button_that_never_asks_and_round_trips() -> None:
    """ "Mute 4 h" is a button even with an open pull request (a mute closes nothing)."""
    event = new(**OPEN_PR)
    [(block, element)] = action_elements(event, (ReportAction.MUTE,))
    assert element["type"] == "button"
    assert element["text"]["text"] == "🔇 Mute 4 h"
    assert "confirm" not in element
    click = parse_click(click_payload(block, element))
    assert (click.action, click.report_id, click.moves_to) == (
        ReportAction.MUTE,
        event.report.id,
        None,
    )


def test_the_thread_reply_of_a_mute_names_its_silence_and_the_undo() -> None:
    """The card's line says who muted and when; the thread reply also how to undo it. An id
    that is not a silence's is not shown (it would go unescaped in backticks)."""
    made = acted(ReportAction.MUTE, silence_id="sil_0123456789ab")
    message = slack_message(new(), ["ready"], LINKS, actions=ALL, acted=[made])
    assert message.blocks[2]["elements"][0]["text"] == "🔇 Muted for 4 h by <@U0ALICE> · 14:02 UTC"
    reply = acted_reply(made, "Checkout")
    assert reply.blocks[0]["text"]["text"] == (
        "🔇 Muted for 4 h by <@U0ALICE> (silence sil_0123456789ab); "
        "`notifier silence expire sil_0123456789ab` to undo · 14:02 UTC"
    )
    odd = acted_reply(replace(made, silence_id="sil_x` <!here>"), "Checkout")
    assert odd.blocks[0]["text"]["text"] == "🔇 Muted for 4 h by <@U0ALICE> · 14:02 UTC"
    assert Acted.from_json(made.to_json()) == made


def mute_click(action_ts: str | None, **fields: Any) -> Click:
    base: dict[str, Any] = {
        "action": ReportAction.MUTE,
        "project_id": 1,
        "report_id": "r1",
        "shown_status": "ready",
        "user_id": "U0ALICE",
        "user_name": "alice",
        "action_ts": action_ts,
    }
    return Click(**{**base, **fields})


def test_a_mute_key_is_one_per_card_and_four_hour_window() -> None:
    """The same click, redelivered or double-clicked by anyone, in the same 4 h window is one
    key (one silence); a click after the window is a new mute. Other actions ignore the time."""
    start = 1_700_006_400.0  # a window's start (a multiple of 4 h)
    first = mute_click(f"{start + 10:.6f}")
    assert first.key == mute_click(f"{start + 11:.6f}", user_id="U0BOB", user_name="bob").key
    assert first.key == mute_click(f"{start + 4 * 3600 - 1:.6f}").key
    assert first.key != mute_click(f"{start + 4 * 3600:.6f}").key
    assert first.key != mute_click(f"{start + 10:.6f}", shown_status="resolved").key
    assert mute_click(None).key == mute_click("nan").key == mute_click("inf").key
    resolve = replace(first, action=ReportAction.RESOLVE)
    assert resolve.key == replace(resolve, action_ts="1").key


def test_a_mute_writes_nothing_to_posthog() -> None:
    with pytest.raises(ValueError, match="PostHog is not written to"):
        write_for(mute_click(None))
