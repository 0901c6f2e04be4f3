"""Decisions taken from the Slack card, end to end (issue 14): the real notifier running (its
Socket Mode receiver with slack-sdk, its HTTP listener), the V6 fake PostHog's write endpoints,
the fake Slack's Socket Mode, real SQLite.

For each action: click → exactly one PostHog write with the right body and note → the card
updated with who acted, a thread reply → the poll that follows sends nothing more for that
move. Then the ways it goes wrong: a double click, a refused user, PostHog's 409/403/503, and a
click after a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from notifier.config.interactivity import InteractivitySettings
from notifier.config.settings import Settings, SlackSinkSettings
from notifier.core.actions import ReportAction
from notifier.demo.simulator import FakePostHog
from notifier.runtime.daemon import Notifier
from tests.factories import PROJECT, block_actions_payload
from tests.fakes import FakeSlack, SlackMessage
from tests.helpers import running, wait_for

ALL_ACTIONS = tuple(ReportAction)
SIGNING_SECRET = "8f742231b10e8888abcd99aaabbb85a5"  # 32 characters, as Slack's


def settings_for(
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    slack: FakeSlack,
    *,
    mode: str = "socket",
    allowed: tuple[str, ...] = (),
    rules: str = "- {name: ready, match: {status: ready}, sinks: [slack]}",
) -> Settings:
    settings = load(
        make_config(
            rules=rules,
            first_run="notify",
            extra="self_alerts: {sinks: []}",
        )
    )
    sink = settings.sinks["slack"]
    assert isinstance(sink, SlackSinkSettings)
    interactivity = InteractivitySettings(
        mode=mode,  # type: ignore[arg-type]
        app_token=SecretStr(slack.app_token) if mode == "socket" else None,
        signing_secret=SecretStr(SIGNING_SECRET) if mode == "http" else None,
        allowed_users=allowed,
    )
    return settings.model_copy(
        update={
            "sinks": {"slack": sink.model_copy(update={"actions": ALL_ACTIONS})},
            "interactivity": interactivity,
        }
    )


@pytest.fixture
def daemon(
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    slack: FakeSlack,
) -> Callable[..., Any]:
    @contextmanager
    def start(**options: Any) -> Iterator[Notifier]:
        with running(settings_for(make_config, load, slack, **options)) as notifier:
            yield notifier

    return start


def top_cards(slack: FakeSlack) -> list[SlackMessage]:
    return [
        m
        for m in slack.messages
        if m.via == "api" and m.method == "chat.postMessage" and m.thread_ts is None
    ]


def card_of(slack: FakeSlack) -> SlackMessage:
    """The one living card, as it looks now (its latest post or update)."""
    [card] = top_cards(slack)
    latest = [m for m in slack.messages if m.ts == card.ts and m.thread_ts is None]
    return latest[-1]


def actions_block(message: SlackMessage) -> dict[str, Any]:
    assert message.blocks is not None
    found = [b for b in message.blocks if str(b.get("block_id", "")).startswith("ra1|")]
    assert found, message.blocks
    return found[0]


def click(
    slack: FakeSlack,
    action: ReportAction,
    *,
    selected: str | None = None,
    user: str = "U0ALICE",
    name: str = "alice",
    answer: str = "alice",
) -> dict[str, Any]:
    card = card_of(slack)
    payload = block_actions_payload(
        action.action_id,
        actions_block(card)["block_id"],
        user_id=user,
        user_name=name,
        selected=selected,
        channel=str(card.channel_id),
        message_ts=str(card.ts),
        response_url=slack.response_url(answer),
    )
    slack.click(payload)
    return payload


def thread(slack: FakeSlack) -> list[SlackMessage]:
    return [m for m in slack.messages if m.thread_ts is not None]


def text_of(message: SlackMessage) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) + (message.text or "")


def status_of(posthog: FakePostHog, report_id: str) -> str:
    [found] = [r for r in posthog.reports(PROJECT) if r["id"] == report_id]
    return str(found["status"])


def writes(posthog: FakePostHog) -> list[tuple[str, dict[str, Any]]]:
    return [(w.action, w.body) for w in posthog.writes]


def one_more_cycle(notifier: Notifier) -> None:
    """Wait until a whole poll cycle has run after now."""
    before = notifier.health[PROJECT].cycles
    wait_for(lambda: notifier.health[PROJECT].cycles >= before + 2, 10, "two more cycles")


@pytest.fixture
def ready(posthog: FakePostHog) -> dict[str, Any]:
    return posthog.add_report(PROJECT, title="Pricing toggle confuses", status="ready")


@pytest.mark.parametrize(
    ("action", "selected", "body", "status", "line"),
    [
        (
            ReportAction.DISMISS,
            "wontfix_irrelevant",
            {
                "state": "suppressed",
                "dismissal_reason": "wontfix_irrelevant",
                "dismissal_note": "Dismissed in Slack by alice",
            },
            "suppressed",
            "Dismissed by <@U0ALICE>",
        ),
        (
            ReportAction.RESOLVE,
            None,
            {
                "state": "resolved",
                "dismissal_reason": "fixed_outside_posthog",
                "dismissal_note": "Resolved in Slack by alice",
            },
            "resolved",
            "Resolved by <@U0ALICE>",
        ),
        (
            ReportAction.SNOOZE,
            "50",
            {"state": "potential", "snooze_for": 50},
            "potential",
            "Snoozed by <@U0ALICE>",
        ),
    ],
)
def test_a_click_is_one_write_one_card_update_and_no_echo(
    daemon: Callable[..., Any],
    posthog: FakePostHog,
    slack: FakeSlack,
    ready: dict[str, Any],
    action: ReportAction,
    selected: str | None,
    body: dict[str, Any],
    status: str,
    line: str,
) -> None:
    with daemon() as notifier:
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
        replies_before = len(thread(slack))
        click(slack, action, selected=selected)
        wait_for(lambda: posthog.writes, 10, "the PostHog write")
        wait_for(lambda: line in text_of(card_of(slack)), 10, "the card to show who acted")
        wait_for(lambda: len(thread(slack)) == replies_before + 1, 10, "the thread reply")
        assert line in text_of(thread(slack)[-1])
        one_more_cycle(notifier)  # PostHog lists the move now: its echo is absorbed
        messages = len(slack.messages)
        one_more_cycle(notifier)
        assert len(slack.messages) == messages
    state_writes = [w for w in writes(posthog) if w[0] == "state"]
    assert state_writes == [("state", body)]
    assert status_of(posthog, ready["id"]) == status
    assert len(top_cards(slack)) == 1
    assert len(thread(slack)) == replies_before + 1
    if action is ReportAction.SNOOZE:  # the real actor, where the state body cannot say it
        notes = [w[1] for w in writes(posthog) if w[0] == "note"]
        assert notes
        assert "alice" in json.dumps(notes)


def test_acknowledge_is_a_note_and_the_card_says_who_is_on_it(
    daemon: Callable[..., Any], posthog: FakePostHog, slack: FakeSlack, ready: dict[str, Any]
) -> None:
    with daemon():
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
        click(slack, ReportAction.ACKNOWLEDGE)
        wait_for(lambda: "<@U0ALICE> is on it" in text_of(card_of(slack)), 10, "the card")
    [(kind, body)] = writes(posthog)
    assert kind == "note"
    assert body["content"]["note"] == "Acknowledged in Slack by alice"
    assert status_of(posthog, ready["id"]) == "ready"


def test_the_card_keeps_saying_who_is_on_it_when_the_report_changes_later(
    daemon: Callable[..., Any], posthog: FakePostHog, slack: FakeSlack, ready: dict[str, Any]
) -> None:
    """A later change re-renders the living card from the poll's event: the decisions taken
    on it are read back from the state, so "is on it" stays."""
    everything = "- {name: all, match: {event: [new, status_changed, updated]}, sinks: [slack]}"
    with daemon(rules=everything):
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
        click(slack, ReportAction.ACKNOWLEDGE)
        wait_for(lambda: "<@U0ALICE> is on it" in text_of(card_of(slack)), 10, "the card")
        posthog.update_report(PROJECT, ready["id"], total_weight=9.5, signal_count=40)
        wait_for(lambda: "40 signals" in text_of(card_of(slack)), 10, "the update")
        assert "<@U0ALICE> is on it" in text_of(card_of(slack))


def test_a_double_click_and_a_second_person_make_one_write(
    daemon: Callable[..., Any], posthog: FakePostHog, slack: FakeSlack, ready: dict[str, Any]
) -> None:
    with daemon():
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
        first = click(slack, ReportAction.RESOLVE)
        slack.click(first)  # Slack's redelivery of the very same payload
        click(slack, ReportAction.RESOLVE, user="U0BOB", name="bob", answer="bob")
        # the three are handled at once: whichever claims the click first writes, once
        wait_for(lambda: "Resolved by <@U0" in text_of(card_of(slack)), 10, "the card")
        wait_for(lambda: len(slack.responses) == 2, 10, "the other two told")
    [(_, body)] = [w for w in writes(posthog) if w[0] == "state"]
    winner = "bob" if body["dismissal_note"].endswith("bob") else "alice"
    assert body == {
        "state": "resolved",
        "dismissal_reason": "fixed_outside_posthog",
        "dismissal_note": f"Resolved in Slack by {winner}",
    }
    told = [body["text"] for _, body in slack.responses]
    assert all(winner in text for text in told), told


def test_a_user_not_allowed_is_told_and_nothing_is_written(
    daemon: Callable[..., Any], posthog: FakePostHog, slack: FakeSlack, ready: dict[str, Any]
) -> None:
    with daemon(allowed=("U0BOB",)):
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
        click(slack, ReportAction.DISMISS, selected="other")
        wait_for(lambda: slack.responses, 10, "the answer to the clicker")
    assert posthog.writes == []
    [(name, body)] = slack.responses
    assert name == "alice"
    assert body["response_type"] == "ephemeral"
    assert "not allowed" in body["text"]


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("scope", "task:write"),
        ("409", "does not allow"),
        ("503", "unreachable"),
    ],
)
def test_posthog_refusing_is_told_to_the_clicker_only(
    daemon: Callable[..., Any],
    posthog: FakePostHog,
    slack: FakeSlack,
    ready: dict[str, Any],
    fault: str,
    words: str,
) -> None:
    with daemon():
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
        updates = len(slack.messages)
        if fault == "scope":
            posthog.write_scope_ok = False
        elif fault == "409":
            posthog.update_report(PROJECT, ready["id"], status="resolved")  # moved meanwhile
        else:
            for _ in range(5):
                posthog.fail_next(503, {"detail": "down"})
        click(slack, ReportAction.DISMISS, selected="already_fixed")
        wait_for(lambda: slack.responses, 15, "the answer to the clicker")
        card = card_of(slack)
    [(_, body)] = slack.responses
    assert words in body["text"], body
    assert "Dismissed by" not in text_of(card)
    later = slack.messages[updates:]
    assert not [m for m in later if m.thread_ts is not None]  # nothing said in the channel


def test_a_click_after_a_restart_still_works(
    daemon: Callable[..., Any], posthog: FakePostHog, slack: FakeSlack, ready: dict[str, Any]
) -> None:
    """The card carries what a click needs: nothing in memory."""
    with daemon():
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
    with daemon():
        click(slack, ReportAction.DISMISS, selected="report_unclear")
        wait_for(lambda: "Dismissed by <@U0ALICE>" in text_of(card_of(slack)), 10, "the card")
    assert status_of(posthog, ready["id"]) == "suppressed"


def signed(body: bytes, secret: str = SIGNING_SECRET, at: int | None = None) -> dict[str, str]:
    stamp = str(at if at is not None else int(time.time()))
    base = b"v0:" + stamp.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def test_the_http_route_verifies_then_acts(
    daemon: Callable[..., Any], posthog: FakePostHog, slack: FakeSlack, ready: dict[str, Any]
) -> None:
    with daemon(mode="http") as notifier:
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
        card = card_of(slack)
        payload = block_actions_payload(
            ReportAction.RESOLVE.action_id,
            actions_block(card)["block_id"],
            channel=str(card.channel_id),
            message_ts=str(card.ts),
            response_url=slack.response_url("alice"),
        )
        body = urlencode({"payload": json.dumps(payload)}).encode()
        url = f"{notifier.http.url}/slack/actions" if notifier.http else ""
        forged = httpx.post(url, content=body, headers=signed(body, secret="x" * 32))
        stale = httpx.post(url, content=body, headers=signed(body, at=int(time.time()) - 360))
        assert (forged.status_code, stale.status_code) == (401, 401)
        assert posthog.writes == []
        assert httpx.post(url, content=body, headers=signed(body)).status_code == 200
        wait_for(lambda: "Resolved by <@U0ALICE>" in text_of(card_of(slack)), 10, "the card")
    assert [w.action for w in posthog.writes] == ["state"]


def test_a_click_the_state_cannot_record_changes_nothing_and_says_so(
    daemon: Callable[..., Any], posthog: FakePostHog, slack: FakeSlack, ready: dict[str, Any]
) -> None:
    """The state refusing the click's record (a full disk): no PostHog write, and the clicker
    is told to try again; the next click, once the state takes writes again, works."""
    with daemon() as notifier:
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
        db = notifier.settings.state.path
        assert db is not None
        with sqlite3.connect(db) as conn:
            conn.execute(
                "CREATE TRIGGER full_disk BEFORE INSERT ON actions "
                "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
            )
        click(slack, ReportAction.RESOLVE)
        wait_for(lambda: slack.responses, 10, "the answer to the clicker")
        assert posthog.writes == []
        [(_, body)] = slack.responses
        assert "Try again in a minute" in body["text"]
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER full_disk")
        click(slack, ReportAction.RESOLVE)
        wait_for(lambda: "Resolved by <@U0ALICE>" in text_of(card_of(slack)), 10, "the card")
    assert [w.action for w in posthog.writes] == ["state"]
