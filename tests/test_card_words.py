"""The card speaks words, not enums; it has no dead ends; its escaping is proven (issue 13).

A product manager reads "Ready for review: research finished, decide whether to act", not
``in_progress → ready``; "P1 · high" and "Act now", not ``P1`` and ``immediately_actionable``.
Those words come from one table (``notifier.core.words``) and read the same in every sink; the
webhook's JSON data keeps PostHog's raw values for machines.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest

from notifier.core.events import Event, EventType
from notifier.core.words import STATUSES, importance
from notifier.render import (
    console_text,
    digest_message,
    slack_message,
    thread_reply,
    webhook_payload,
)
from notifier.render.blocks import SlackMessage
from notifier.render.templates import Templates, compile_templates, render
from tests.factories import LINKS, URL, new, removed, report
from tests.slack_checks import block, section_texts, texts

WHEN = datetime(2026, 1, 15, 16, 40, 11, tzinfo=UTC)
RAW_ENUMS = re.compile(r"\b(in_progress|pending_input|immediately_actionable|candidate)\b")


def judged() -> Event:
    """in_progress → ready, P1, immediately actionable."""
    before = report(status="in_progress", priority="P1", actionability="immediately_actionable")
    after = report(priority="P1", actionability="immediately_actionable")
    return Event.create(
        EventType.STATUS_CHANGED, 1, after, before, {"status": ("in_progress", "ready")}
    )


def changed(before: str, after: str, **fields: object) -> Event:
    return Event.create(
        EventType.STATUS_CHANGED,
        1,
        report(status=after, **fields),
        report(status=before, **fields),
        {"status": (before, after)},
    )


# -- words, not enums ------------------------------------------------------------------------


def test_card_says_what_the_status_means_and_what_to_do() -> None:
    """The status line names the status in words and says what it means for the reader;
    priority and actionability read as words; no raw API value is left for people."""
    message = slack_message(judged(), ["ready-reports"], LINKS)
    status = section_texts(message)[0]
    assert status.startswith("🟢 *Ready for review* · research finished, decide whether to act")
    assert "was 🟡 Researching" in status
    assert section_texts(message)[1].startswith("*Priority P1 · high* · Act now\n")
    for text in texts(message):
        assert not RAW_ENUMS.search(text), text


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("pending_input", "🟣 *Needs your input* · PostHog is waiting for an answer"),
        ("candidate", "🔵 *Researching*"),
        ("suppressed", "⚫ *Dismissed*"),
        ("resolved", "✅ *Resolved*"),
        ("failed", "🔴 *Failed*"),
    ],
)
def test_each_status_has_a_human_name(status: str, words: str) -> None:
    """Every status PostHog has reads as a name a product manager knows."""
    message = slack_message(new(status=status), [], LINKS)
    assert section_texts(message)[0].startswith(words)


def test_thread_reply_digest_console_and_webhook_text_use_the_same_words() -> None:
    """The thread reply, the digest, the console and the webhook's ``text`` say the same
    words; the webhook's data keeps PostHog's raw values."""
    event = judged()
    reply = thread_reply(event, ["ready-reports"], LINKS)
    assert section_texts(reply)[0] == "🟡 Researching → 🟢 *Ready for review*"
    digest = digest_message([(event, [])], LINKS)
    assert "🟡 Researching → *Ready for review*" in section_texts(digest)[-1]
    assert "P1 · high" in section_texts(digest)[-1]
    console = console_text(event, [], LINKS, color=False).splitlines()
    assert console[0] == "🟢 Ready for review  Checkout button unresponsive on Safari"
    assert console[1] == "   Researching → Ready for review"
    assert "P1 · high · Act now" in console[-2]
    payload = webhook_payload(event, [], LINKS, WHEN)
    assert payload["data"]["text"] == (
        "🟢 Ready for review (was Researching): Checkout button unresponsive on Safari"
        " · P1 · high · Act now"
    )
    assert payload["data"]["report"]["status"] == "ready"
    assert payload["data"]["report"]["actionability"] == "immediately_actionable"
    for text in [*texts(reply), *texts(digest), "\n".join(console), payload["data"]["text"]]:
        assert not RAW_ENUMS.search(text), text


def test_same_status_emoji_in_every_sink() -> None:
    """One table: the console's emoji is the Slack card's for every status."""
    for status, words in STATUSES.items():
        if status == "removed":
            continue
        event = new(status=status)
        card = slack_message(event, [], LINKS)
        console = console_text(event, [], LINKS, color=False)
        assert card.blocks[0]["text"]["text"].startswith(words.emoji), status
        assert console.startswith(words.emoji + " "), status
        assert webhook_payload(event, [], LINKS, WHEN)["data"]["text"].startswith(words.emoji)


# -- no dead ends ----------------------------------------------------------------------------


def test_removed_report_card_has_no_link_to_it() -> None:
    """PostHog no longer lists the report: its page is gone, so the card, its thread reply
    and its digest line offer no "Open report" button or link to it."""
    event = removed()
    for message in (
        slack_message(event, ["r"], LINKS),
        thread_reply(event, ["r"], LINKS),
        digest_message([(event, [])], LINKS),
    ):
        assert not [b for b in message.blocks if b["type"] == "actions"]
        for text in texts(message):
            assert URL not in text, text
            assert "Open report" not in text, text
    assert "Removed" in section_texts(slack_message(event, [], LINKS))[0]


def test_digest_lists_the_most_important_first() -> None:
    """Priority first (P0 before P2, none last), then status: needs input and ready before
    research, done last — not the order PostHog listed them in."""
    listed = [
        changed("potential", "candidate", title="research P0", priority="P0"),
        changed("in_progress", "resolved", title="resolved none"),
        changed("in_progress", "ready", title="ready P2", priority="P2"),
        changed("in_progress", "pending_input", title="input P0", priority="P0"),
        changed("candidate", "ready", title="ready P0", priority="P0"),
    ]
    message = digest_message([(e, []) for e in listed], LINKS)
    body = "\n".join(section_texts(message)[1:])
    order = re.findall(r"\|([^>]+)>", body)
    assert order == ["input P0", "ready P0", "research P0", "ready P2", "resolved none"]
    assert importance("P0", "pending_input") < importance("P0", "ready") < importance(None, "ready")


# -- escaping proven -------------------------------------------------------------------------


def slack_decodes(text: str) -> str:
    """What Slack shows for a text object's ``text``: it decodes exactly ``&amp;``, ``&lt;``
    and ``&gt;`` (and nothing else)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_plain_text_header_shows_q_and_a_once_escaped() -> None:
    """Slack's "Formatting text for app surfaces" (api.slack.com/reference/surfaces/formatting,
    "Escaping text"):

        "Slack uses &, <, and > as control characters for special parsing in text objects, so
        they must be converted to HTML entities if they're not used for their parsing purpose
        [...] You shouldn't HTML entity-encode the entire text, as only the specific
        characters shown above will be decoded for display in Slack."

    The rule is about *text objects*, and a header's ``text`` is a text object of type
    ``plain_text`` (docs.slack.dev/reference/block-kit/composition-objects/text-object: "Can
    be one of plain_text or mrkdwn"); the older "Basic message formatting" page says "All text
    in Slack uses the same system of escaping". Slack itself keeps plain_text that way: a
    button's plain_text "Answer & 1" comes back in interaction payloads as "Answer &amp; 1"
    (slackapi/bolt-python#513). So a header is escaped exactly once — as in mrkdwn — and
    Slack shows "Q&A page"; escaped twice it would show "Q&amp;A page"."""
    title = "Q&A page <beta> & more"
    templated = compile_templates(Templates(title="{{ event.title }}"), "test")
    event = new(title=title)
    messages: list[SlackMessage] = [
        slack_message(event, [], LINKS),
        slack_message(event, [], LINKS, title=render(templated, event, [], LINKS).title),
        slack_message(Event.create(EventType.REMOVED, 1, event.report, None, {}), [], LINKS),
    ]
    for message in messages:
        header = block(message, "header")["text"]
        assert header["type"] == "plain_text"
        assert header["text"].endswith("Q&amp;A page &lt;beta&gt; &amp; more"), header
        assert slack_decodes(header["text"]).endswith(title)
        assert "&amp;amp;" not in header["text"]
        assert html.unescape(header["text"]) == slack_decodes(header["text"])
