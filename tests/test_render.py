"""Rendering: Slack Block Kit cards, webhook bodies and signatures, console text."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from notifier.core.events import Enrichment, Event, EventType, Recording
from notifier.core.report import Report
from notifier.render import (
    console_text,
    escape_mrkdwn,
    format_number,
    headline,
    sign,
    slack_message,
    status_colour,
    status_emoji,
    text_only,
    truncate,
    webhook_body,
)
from notifier.render.text import escape_truncate
from tests.factories import (
    INJECTIONS,
    LINKS,
    RAW,
    URL,
    new,
    removed,
    report,
    status_changed,
    updated,
)
from tests.slack_checks import (
    assert_block_kit_limits,
    assert_no_raw_markup,
    block,
    section_texts,
)

# --- text helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "emoji"),
    [
        ("potential", "⚪"),
        ("candidate", "🔵"),
        ("in_progress", "🟡"),
        ("ready", "🟢"),
        ("pending_input", "🟣"),
        ("resolved", "✅"),
        ("failed", "🔴"),
        ("suppressed", "⚫"),
        ("deleted", "🗑️"),
        ("removed", "🗑️"),
        ("brand_new_status", "🔘"),
    ],
)
def test_status_emoji(status: str, emoji: str) -> None:
    """Each known status has its emoji, the same as Slack's colour (one table, every sink);
    an unknown one gets a grey button."""
    assert status_emoji(status) == emoji


@pytest.mark.parametrize(
    ("status", "colour"),
    [
        ("potential", "⚪"),
        ("candidate", "🔵"),
        ("in_progress", "🟡"),
        ("pending_input", "🟣"),
        ("ready", "🟢"),
        ("resolved", "✅"),
        ("failed", "🔴"),
        ("suppressed", "⚫"),
        ("deleted", "🗑️"),
        ("removed", "🗑️"),
        ("brand_new_status", "🔘"),
    ],
)
def test_status_colour(status: str, colour: str) -> None:
    """Slack shows each known status with its colour; an unknown one gets a grey button."""
    assert status_colour(status) == colour


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (new(), "New signal report"),
        (status_changed(), "Researching → Ready for review"),
        (updated(), "Updated: weight 1.2 → 2.4, signals 3 → 5"),
        (removed(), "Removed from PostHog"),
    ],
)
def test_headline_per_event_type(event: Event, expected: str) -> None:
    """The headline says what happened in a few words."""
    assert headline(event) == expected


def test_truncate_and_escape() -> None:
    """Truncation ends in one ellipsis; escaping does & first and never splits an entity."""
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abcdef", 4) == "abc…"
    assert escape_mrkdwn("&lt; <a> & b") == "&amp;lt; &lt;a&gt; &amp; b"
    assert escape_truncate("ab<cd", 4) == "ab…"
    assert len(escape_truncate("<" * 100, 10)) <= 10


@pytest.mark.parametrize(
    ("value", "text"),
    [(7, "7"), (1204, "1,204"), (2.35, "2.35"), (2.0, "2"), (1.2, "1.2"), (None, "—")],
)
def test_format_number(value: Any, text: str) -> None:
    """Numbers read naturally: separators, no trailing zeros, a dash for null."""
    assert format_number(value) == text


# --- Slack --------------------------------------------------------------------------------


def test_new_event_card() -> None:
    """A new report: title header, status line, why it matters (summary's first line and
    the numbers in words), then the button, and a footnote with project, rules and id."""
    message = slack_message(new(), ["ready-reports", "all"], LINKS)
    assert [b["type"] for b in message.blocks] == [
        "header",
        "section",
        "section",
        "actions",
        "context",
    ]
    assert block(message, "header")["text"] == {
        "type": "plain_text",
        "text": "🟢 Checkout button unresponsive on Safari",
        "emoji": True,
    }
    assert block(message, "section")["text"]["type"] == "mrkdwn"
    assert section_texts(message) == [
        "🟢 *Ready for review* · research finished, decide whether to act\nNew signal report",
        "Users on Safari 17 tap the Pay button repeatedly and nothing happens.\n"
        "7 signals, weight 2.35 · 12 users",
    ]
    assert not any("fields" in b for b in message.blocks)
    context = " ".join(e["text"] for e in block(message, "context")["elements"])
    assert "Project 1" in context
    assert "ready-reports, all" in context
    assert RAW["id"] in context
    [button] = block(message, "actions")["elements"]
    assert button["text"]["text"] == "Open report"
    assert button["url"] == URL
    assert message.text == "🟢 New signal report: Checkout button unresponsive on Safari"
    assert_block_kit_limits(message)


def test_status_changed_card() -> None:
    """A status change shows the new status in bold and the one it came from."""
    message = slack_message(status_changed(), ["r"], LINKS)
    assert section_texts(message)[0] == (
        "🟢 *Ready for review* · research finished, decide whether to act\nwas 🟡 Researching"
    )
    assert not any("Status" in t for t in section_texts(message)[1:])
    assert "Researching → Ready for review" in message.text


def test_updated_card() -> None:
    """An update lists what changed in its status line; the numbers read as they are now."""
    message = slack_message(updated(), ["r"], LINKS)
    assert section_texts(message)[0] == (
        "🟢 *Ready for review* · research finished, decide whether to act\n"
        "Updated: weight 1.2 → 2.4, signals 3 → 5"
    )
    assert section_texts(message)[1].endswith("\n5 signals, weight 2.4 · 12 users")


def test_removed_card() -> None:
    """A removed report gets a badge in the header and says it is gone, title struck out."""
    message = slack_message(removed(), ["r"], LINKS)
    header = block(message, "header")["text"]["text"]
    assert header == "🗑️ Removed: Checkout button unresponsive on Safari"
    assert section_texts(message)[0] == (
        "🗑️ *Removed* · PostHog no longer lists it; nothing to open"
        " (last status 🟢 Ready for review)\n~Checkout button unresponsive on Safari~"
    )


def test_untitled_v5_report() -> None:
    """A null title reads "Untitled report"; V5 fields appear, the missing user count does not."""
    raw = {**RAW, "title": None, "summary": None, "priority": "P1"}
    raw["actionability"] = "immediately_actionable"
    del raw["relevant_user_count"]
    message = slack_message(
        Event.create(EventType.NEW, 1, Report.from_api(raw), None, {}), [], LINKS
    )
    assert block(message, "header")["text"]["text"] == "🟢 Untitled report"
    assert section_texts(message)[0] == (
        "🟢 *Ready for review* · research finished, decide whether to act\nNew signal report"
    )
    assert section_texts(message)[1] == "*Priority P1 · high* · Act now\n7 signals, weight 2.35"
    assert_block_kit_limits(message)


def test_untrusted_text_never_pings_or_disguises_links() -> None:
    """Mentions and links in title, summary, ids and rule names arrive escaped everywhere."""
    evil = " ".join(INJECTIONS) + " & more"
    event = Event.create(
        EventType.UPDATED,
        1,
        report(title=evil, summary=evil, priority=evil, status=evil),
        report(),
        {"priority": ("P1", evil), "title": ("a", evil)},
    )
    message = slack_message(event, [evil], LINKS)
    dumped = json.dumps([message.text, list(message.blocks)], ensure_ascii=False)
    for needle in INJECTIONS:
        assert needle not in dumped
    assert "<" not in dumped
    assert "&lt;!channel&gt;" in block(message, "header")["text"]["text"]
    assert "<" not in text_only(event, LINKS)


def test_block_kit_limits_with_huge_data() -> None:
    """A 1 MB summary, a 500-char title and 60 changed fields still fit every limit."""
    changes: dict[str, tuple[Any, Any]] = {
        f"field_{i}": ("y" * 5000, "z" * 5000) for i in range(60)
    }
    changes["n" * 5000] = (1, 2)
    huge = report(
        title="T" * 500,
        summary="&<>" * 350_000,
        priority="P" * 10_000,
        actionability="a" * 10_000,
        status="s" * 10_000,
    )
    event = Event.create(EventType.UPDATED, 1, huge, report(), changes)
    message = slack_message(event, ["rule-" + "r" * 1000] * 50, LINKS)
    assert_block_kit_limits(message)
    assert block(message, "header")["text"]["text"].endswith("…")
    status, why = section_texts(message)
    assert status.endswith("+55 more")
    assert f"… <{URL}|Read more>\n" in why
    assert_no_raw_markup(message)
    assert len(text_only(event, LINKS)) < 40_000


def test_overlong_report_id_drops_the_button() -> None:
    """A link Slack would refuse (> 3000 chars) is left out rather than breaking the card."""
    message = slack_message(new(id="x" * 4000), [], LINKS)
    assert [b["type"] for b in message.blocks][-1] != "actions"
    assert_block_kit_limits(message)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.one_of(st.none(), st.text()),
    summary=st.one_of(st.none(), st.text(max_size=5000)),
    status=st.text(min_size=1),
    rules=st.lists(st.text(), max_size=5),
    event_type=st.sampled_from(list(EventType)),
)
def test_block_kit_limits_hold_for_any_text(
    title: str | None,
    summary: str | None,
    status: str,
    rules: list[str],
    event_type: EventType,
) -> None:
    """Whatever the title, summary, status and rule names, every Block Kit limit holds."""
    current = report(title=title, summary=summary, status=status)
    changes = {"status": ("ready", status), "title": ("old", title)}
    message = slack_message(Event.create(event_type, 1, current, report(), changes), rules, LINKS)
    assert_block_kit_limits(message)
    assert_no_raw_markup(message)


# --- webhook ------------------------------------------------------------------------------

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
WHEN = datetime(2026, 1, 15, 16, 40, 11, 500_000, tzinfo=UTC)


def test_webhook_body_shape() -> None:
    """Compact JSON with type, UTC timestamp and the report exactly as the API sent it."""
    event = status_changed()
    body = webhook_body(event, ["ready-reports"], LINKS, WHEN)
    data = json.loads(body)
    assert body == json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    assert data["type"] == "signal_report.status_changed"
    assert data["timestamp"] == "2026-01-15T16:40:11Z"
    assert data["data"] == {
        "event_id": event.id,
        "project_id": 1,
        "project_name": None,
        "rules": ["ready-reports"],
        "report": RAW,
        "previous": {**RAW, "status": "in_progress"},
        "changes": {"status": ["in_progress", "ready"]},
        "url": URL,
        "text": "🟢 Ready for review (was Researching): Checkout button unresponsive on Safari",
    }


def test_webhook_body_carries_the_enrichment_with_recording_links() -> None:
    """A webhook sink with enrich: [artefacts] receives what was fetched: recordings with their
    replay links, and the judgments' explanations; without enrichment the key is absent."""
    event = replace(
        status_changed(),
        enrichment=Enrichment(
            recordings=(Recording("sess-1", "Taps Pay twice"),),
            priority_explanation="Blocks checkout",
        ),
    )
    data = json.loads(webhook_body(event, [], LINKS, WHEN))["data"]
    assert data["enrichment"] == {
        "recordings": [
            {
                "session_id": "sess-1",
                "text": "Taps Pay twice",
                "url": "https://us.posthog.com/project/1/replay/sess-1",
            }
        ],
        "priority_explanation": "Blocks checkout",
    }
    assert "enrichment" not in json.loads(webhook_body(status_changed(), [], LINKS, WHEN))["data"]


def test_webhook_body_types_and_timezones() -> None:
    """Each event type names itself; any offset is normalised to Z; null previous stays null."""
    other_zone = WHEN.astimezone(timezone(timedelta(hours=2)))
    data = json.loads(webhook_body(new(), [], LINKS, other_zone))
    assert data["type"] == "signal_report.new"
    assert data["timestamp"] == "2026-01-15T16:40:11Z"
    assert data["data"]["previous"] is None
    assert json.loads(webhook_body(updated(), [], LINKS, WHEN))["data"]["changes"] == {
        "total_weight": [1.2, 2.4],
        "signal_count": [3, 5],
    }
    assert json.loads(webhook_body(removed(), [], LINKS, WHEN))["type"] == "signal_report.removed"


def test_signature_verifies_with_standardwebhooks() -> None:
    """The hand-made signature is what the reference implementation expects."""
    body = webhook_body(new(title="Ünïcode ✅"), ["r"], LINKS, WHEN)
    now = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": "evt_1.hook",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET, "evt_1.hook", now, body),
    }
    assert Webhook(SECRET).verify(body, headers)["data"]["report"]["title"] == "Ünïcode ✅"
    reference = Webhook(SECRET).sign("evt_1.hook", WHEN, body.decode())
    assert sign(SECRET, "evt_1.hook", int(WHEN.timestamp()), body) == reference


def test_signature_accepts_unprefixed_and_unpadded_secrets() -> None:
    """Like the reference library, the whsec_ prefix and base64 padding are optional."""
    key = base64.b64encode(b"k" * 25).decode()
    assert key.endswith("=")
    expected = sign("whsec_" + key, "m", 1, b"{}")
    assert sign(key, "m", 1, b"{}") == expected
    assert sign("whsec_" + key.rstrip("="), "m", 1, b"{}") == expected


# --- console ------------------------------------------------------------------------------


def test_console_text() -> None:
    """Status and title, headline, summary, numbers, link and rules, one per line."""
    text = console_text(new(), ["ready-reports"], LINKS, color=False)
    assert text.splitlines() == [
        "🟢 Ready for review  Checkout button unresponsive on Safari",
        "   New signal report",
        "   Users on Safari 17 tap the Pay button repeatedly and nothing happens.",
        "   7 signals, weight 2.35 · 12 users",
        "   " + URL,
        "   rules: ready-reports",
    ]
    assert "\x1b" not in text


def test_console_text_colour_and_hostile_text() -> None:
    """Colour only on request; ANSI escapes from PostHog are dropped; long summaries trimmed."""
    event = new(title="\x1b[2JWiped\x07", summary="word " * 500)
    coloured = console_text(event, [], LINKS, color=True)
    assert "\x1b[1;32mReady for review\x1b[0m" in coloured
    plain = console_text(event, [], LINKS, color=False)
    assert "\x1b" not in plain
    assert "\x07" not in plain
    assert plain.splitlines()[0] == "🟢 Ready for review  [2JWiped"
    lines = plain.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert sum(line.startswith("   word") for line in lines) == 4
    assert lines[5].endswith(" …")


def test_console_text_for_status_change_and_removal() -> None:
    """The second line is the headline; a removed report says so in its status word."""
    assert console_text(status_changed(), [], LINKS, color=False).splitlines()[1] == (
        "   Researching → Ready for review"
    )
    first = console_text(removed(), [], LINKS, color=False).splitlines()[0]
    assert first == "🗑️ Removed  Checkout button unresponsive on Safari"
