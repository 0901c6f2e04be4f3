"""Slack messages people act on: the living card, thread replies, digests, batched webhooks.

Golden files pin the default rendering of each kind of message; after an intended change,
regenerate them with ``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_render_slack.py``
and review the diff. Hypothesis properties check Block Kit limits and escaping for any data.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.cli.samples import SAMPLE_NAMES, SAMPLES, Sample
from notifier.core.events import NO_ENRICHMENT, Enrichment, Event, EventType, Recording
from notifier.core.report import TRACKED_FIELDS, Report
from notifier.render import (
    SlackMessage,
    block_kit_builder_url,
    digest_message,
    slack_message,
    thread_reply,
    webhook_batch_body,
    webhook_batch_payload,
    webhook_payload,
)
from notifier.render.webhook import encode_json
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
    texts,
)

GOLDEN = Path(__file__).parent / "golden"
WHEN = datetime(2026, 1, 15, 16, 40, 11, tzinfo=UTC)
REPLAY = "https://us.posthog.com/project/1/replay/"


def resolved() -> Event:
    before = report(status="ready")
    after = report(status="resolved", signal_count=9)
    changes = {"status": ("ready", "resolved"), "signal_count": (7, 9)}
    return Event.create(EventType.STATUS_CHANGED, 1, after, before, changes)


def retitled() -> Event:
    """in_progress → ready, with more weight and signals and a new title."""
    before = report(status="in_progress", title="Safari checkout", total_weight=1.2)
    after = report(total_weight=2.4, signal_count=5)
    changes = {
        "status": ("in_progress", "ready"),
        "title": ("Safari checkout", RAW["title"]),
        "total_weight": (1.2, 2.4),
        "signal_count": (3, 5),
    }
    return Event.create(EventType.STATUS_CHANGED, 1, after, before, changes)


def v5_new() -> Event:
    return new(priority="P1", actionability="immediately_actionable")


ENRICHMENT = Enrichment(
    recordings=(
        Recording("0190a1b2-sess-1", "User taps Pay five times, then leaves", "12.5", "48.0"),
        Recording("0190a1b2-sess-2", None),
        Recording("0190a1b2-sess-3", "Rage click on <!channel> Pay & more"),
    ),
    priority_explanation="Blocks checkout for every Safari 17 user: direct revenue loss.",
    actionability_explanation="Clear reproduction; the click handler is in checkout.tsx.",
)


def message_json(message: SlackMessage) -> dict[str, Any]:
    return {"text": message.text, "blocks": list(message.blocks)}


def check_golden(name: str, data: Any) -> None:
    """Compare with ``tests/golden/<name>.json``; rewrite it instead under ``UPDATE_GOLDEN=1``."""
    path = GOLDEN / f"{name}.json"
    actual = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"{path} is missing: create it with UPDATE_GOLDEN=1", pytrace=False)
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            f"golden/{name}.json",
            "rendered now",
        )
        pytest.fail(
            f"{name}: the rendering differs from the golden file (if intended, regenerate "
            f"with UPDATE_GOLDEN=1 and review):\n{''.join(diff)}",
            pytrace=False,
        )


# --- golden files ---------------------------------------------------------------------------


def sample_event(sample: Sample) -> Event:
    """A built-in sample's event as a Slack sink with artefacts gets it, in a named project."""
    event = replace(sample.event(12345), project_name="Storefront")
    if event.type is EventType.REMOVED:
        return event
    return replace(event, enrichment=sample.enrichment)


@pytest.mark.parametrize("sample", SAMPLES, ids=SAMPLE_NAMES)
def test_golden_card_of_every_status(sample: Sample) -> None:
    """The card of each status a team meets (new, ready, needs input, researching, resolved,
    dismissed, removed, reopened, and ready but not actionable) is pinned, from the built-in
    samples that ``notifier preview`` and docs/messages.md show."""
    event = sample_event(sample)
    message = slack_message(event, ["ready for the team"], LINKS, enrichment=event.enrichment)
    assert_block_kit_limits(message)
    check_golden(f"card_{sample.name.replace('-', '_')}", message_json(message))


@pytest.mark.parametrize(("name", "event"), [("updated", updated()), ("removed", removed())])
def test_golden_card_of_an_event(name: str, event: Event) -> None:
    """The default card of an update, and of a removal without a project name, is pinned."""
    message = slack_message(event, ["ready-reports"], LINKS)
    assert_block_kit_limits(message)
    check_golden(f"card_{name}_event", message_json(message))


def test_golden_enriched_card() -> None:
    """A V5 report with recordings and judgement explanations is pinned."""
    message = slack_message(v5_new(), ["ready-reports"], LINKS, enrichment=ENRICHMENT)
    assert_block_kit_limits(message)
    check_golden("card_enriched", message_json(message))


def test_golden_thread_reply() -> None:
    """The thread reply for a status change with other changes is pinned."""
    message = thread_reply(retitled(), ["ready-reports"], LINKS)
    assert_block_kit_limits(message)
    check_golden("thread_reply", message_json(message))


def test_golden_digest() -> None:
    """A digest of one of each kind of event is pinned."""
    events = [(e, ["ready-reports"]) for e in (new(), retitled(), updated(), removed())]
    events.append((resolved(), ["all"]))
    message = digest_message(events, LINKS)
    assert_block_kit_limits(message)
    check_golden("digest", message_json(message))


def test_golden_digest_of_every_status() -> None:
    """The digest of the built-in samples (one per status) is pinned: most important first."""
    events = [(sample_event(s), ["ready for the team"]) for s in SAMPLES]
    message = digest_message(events, LINKS)
    assert_block_kit_limits(message)
    check_golden("digest_samples", message_json(message))


def test_golden_webhook_batch() -> None:
    """The batched webhook body is pinned."""
    events = [(new(), ["ready-reports"]), (removed(), [])]
    check_golden("webhook_batch", json.loads(webhook_batch_body(events, LINKS, WHEN)))


def test_golden_mismatch_fails_with_a_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed rendering fails and shows a unified diff (the check can fail)."""
    monkeypatch.delenv("UPDATE_GOLDEN", raising=False)
    monkeypatch.setattr(f"{__name__}.GOLDEN", tmp_path)
    (tmp_path / "x.json").write_text('{\n  "text": "old"\n}\n', encoding="utf-8")
    with pytest.raises(pytest.fail.Exception) as failed:
        check_golden("x", {"text": "new"})
    assert '-  "text": "old"' in str(failed.value)
    assert '+  "text": "new"' in str(failed.value)


# --- the card -------------------------------------------------------------------------------


def test_resolved_card_has_a_badge() -> None:
    """A resolved report says so in the header and the status line."""
    message = slack_message(resolved(), [], LINKS)
    assert block(message, "header")["text"]["text"] == (
        "✅ Resolved: Checkout button unresponsive on Safari"
    )
    assert section_texts(message)[0] == (
        "✅ *Resolved* · fixed or closed; nothing left to do\nwas 🟢 Ready for review"
    )
    assert section_texts(message)[1].endswith("\n9 signals (was 7), weight 2.35 · 12 users")


def test_enrichment_adds_recordings_explanations_and_a_button() -> None:
    """Three recordings as escaped links, the explanations, and "Watch recording"."""
    message = slack_message(v5_new(), [], LINKS, enrichment=ENRICHMENT)
    sections = section_texts(message)
    assert (
        "*Why this priority* · Blocks checkout for every Safari 17 user: direct revenue loss.\n"
        "*Why “Act now”* · Clear reproduction; the click handler is in checkout.tsx."
    ) in sections
    assert (
        "*Session recordings*\n"
        f"• <{REPLAY}0190a1b2-sess-1|User taps Pay five times, then leaves>\n"
        f"• <{REPLAY}0190a1b2-sess-2|Recording 2>\n"
        f"• <{REPLAY}0190a1b2-sess-3|Rage click on &lt;!channel&gt; Pay &amp; more>"
    ) in sections
    buttons = block(message, "actions")["elements"]
    assert [(b["text"]["text"], b["url"]) for b in buttons] == [
        ("Open report", URL),
        ("Watch recording", REPLAY + "0190a1b2-sess-1"),
    ]
    assert_no_raw_markup(message)


def test_no_enrichment_means_no_recording_button() -> None:
    """Without recordings there is only "Open report"; explanations alone still show."""
    only_why = Enrichment(priority_explanation="Big")
    message = slack_message(new(), [], LINKS, enrichment=only_why)
    assert [b["text"]["text"] for b in block(message, "actions")["elements"]] == ["Open report"]
    assert "*Why this priority* · Big" in section_texts(message)
    assert slack_message(new(), [], LINKS, enrichment=NO_ENRICHMENT) == slack_message(
        new(), [], LINKS
    )


def test_more_than_three_recordings_and_odd_session_ids() -> None:
    """At most three recordings; a session id cannot break out of its link."""
    recordings = tuple(Recording(f"s{i}|x> <!here>", f"r{i}") for i in range(5))
    message = slack_message(new(), [], LINKS, enrichment=Enrichment(recordings=recordings))
    [lines] = [t for t in section_texts(message) if t.startswith("*Session recordings*")]
    assert lines.count("• ") == 3
    assert f"<{REPLAY}s0%7Cx%3E%20%3C!here%3E|r0>" in lines
    assert_no_raw_markup(message)


def test_summary_read_more_only_when_cut() -> None:
    """The summary's first paragraph, at most 600 characters, then a "Read more" link only
    when something was left out (cut, or a second paragraph)."""
    short = section_texts(slack_message(new(summary="s" * 600), [], LINKS))[1]
    assert short.split("\n")[0] == "s" * 600
    long = section_texts(slack_message(new(summary="s" * 601), [], LINKS))[1]
    assert long.split("\n")[0] == "s" * 599 + f"… <{URL}|Read more>"
    more = section_texts(slack_message(new(summary="First.\n\nSecond."), [], LINKS))[1]
    assert more.split("\n")[0] == f"First. <{URL}|Read more>"
    assert "Second" not in more


def test_fields_only_when_posthog_sent_them() -> None:
    """V1 fields without V5 ones; a null weight is left out; a change shows what it was."""
    raw = {k: v for k, v in RAW.items() if k not in ("relevant_user_count", "artefact_count")}
    raw["total_weight"] = None
    raw["summary"] = None
    bare = Event.create(EventType.NEW, 1, Report.from_api(raw), None, {})
    assert section_texts(slack_message(bare, [], LINKS))[1] == "7 signals"
    one = Event.create(EventType.NEW, 1, report(signal_count=1, relevant_user_count=1), None, {})
    assert section_texts(slack_message(one, [], LINKS))[1].endswith(
        "1 signal, weight 2.35 · 1 user"
    )
    gone = Event.create(
        EventType.STATUS_CHANGED,
        1,
        report(priority=None),
        report(priority="P1", status="in_progress"),
        {"status": ("in_progress", "ready"), "priority": ("P1", None)},
    )
    assert section_texts(slack_message(gone, [], LINKS))[1].startswith(
        "*Priority none* (was P1 · high)\n"
    )


def test_huge_enrichment_drops_extras_before_the_button() -> None:
    """When everything is at its longest, extras go first and the card keeps its button."""
    recordings = tuple(Recording("s" * 900 + str(i), "&" * 5000) for i in range(3))
    enrichment = Enrichment(recordings, "<" * 10_000, '"' * 10_000)
    event = Event.create(
        EventType.UPDATED,
        1,
        report(title='"' * 500, summary='"\\' * 5000, priority='"' * 500, actionability="\\" * 500),
        report(),
        {f"f{i}": ('"' * 100, "\\" * 100) for i in range(20)},
    )
    message = slack_message(event, ['"' * 400] * 20, LINKS, enrichment=enrichment)
    assert_block_kit_limits(message)
    assert_no_raw_markup(message)
    assert block(message, "actions")["elements"][0]["text"]["text"] == "Open report"


# --- thread replies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (status_changed(), "🟡 Researching → 🟢 *Ready for review*"),
        (resolved(), "*Resolved* ✅ (was 🟢 Ready for review)\nsignals 7 → 9"),
        (updated(), "weight 1.2 → 2.4, signals 3 → 5"),
        (removed(), "🗑️ *Removed from PostHog* (last status 🟢 Ready for review)"),
        (new(), "*New signal report* · 🟢 *Ready for review*"),
        (
            retitled(),
            "🟡 Researching → 🟢 *Ready for review*\n"
            "title changed, weight 1.2 → 2.4, signals 3 → 5",
        ),
    ],
)
def test_thread_reply_says_what_changed(event: Event, line: str) -> None:
    """A section saying what changed, and a context with the report link (none once the
    report is removed: its page is gone) and the rules."""
    message = thread_reply(event, ["ready-reports"], LINKS)
    assert [b["type"] for b in message.blocks] == ["section", "context"]
    assert section_texts(message) == [line]
    context = [e["text"] for e in block(message, "context")["elements"]]
    if event.type is EventType.REMOVED:
        assert context == ["Rule: ready-reports"]
    else:
        assert context == [f"<{URL}|Open report>", "Rule: ready-reports"]
    assert message.text.startswith("Checkout button unresponsive on Safari: ")
    assert "*" not in message.text
    assert_block_kit_limits(message)


# --- digests --------------------------------------------------------------------------------


def many(n: int) -> list[tuple[Event, list[str]]]:
    return [(new(id=f"r{i}", title=f"Report {i}"), ["r"]) for i in range(n)]


def test_digest_shows_twenty_lines_and_counts_the_rest() -> None:
    """25 events: header, counts, 20 linked lines, "and 5 more"."""
    message = digest_message([*many(24), (removed(), [])], LINKS)
    assert block(message, "header")["text"]["text"] == "25 signal report changes"
    counts, *lines = section_texts(message)
    assert counts == "24 new · 1 removed"
    shown = "\n".join(lines).splitlines()
    assert len(shown) == 20
    assert shown[0] == (
        "🟢 <https://us.posthog.com/project/1/inbox/reports/r0|Report 0> · new, *Ready for review*"
    )
    assert block(message, "context")["elements"][0]["text"] == "and 5 more"
    assert message.text == "25 signal report changes: 24 new · 1 removed"


def test_digest_small_and_max_lines() -> None:
    """One event: singular, no "more"; max_lines=2 shows two lines."""
    one = digest_message(many(1), LINKS)
    assert block(one, "header")["text"]["text"] == "1 signal report change"
    assert not [b for b in one.blocks if b["type"] == "context"]
    two = digest_message(many(5), LINKS, max_lines=2)
    assert len("\n".join(section_texts(two)[1:]).splitlines()) == 2
    assert block(two, "context")["elements"][0]["text"] == "and 3 more"


def test_digest_of_huge_reports_stops_early_and_counts_the_rest() -> None:
    """Long titles and ids: lines stop before the size limit, the rest go in "and N more"."""
    events = [(new(id=f"{i}" + "x" * 900, title='"<!here>' * 100), ["r"]) for i in range(50)]
    message = digest_message(events, LINKS, max_lines=50)
    assert_block_kit_limits(message)
    assert_no_raw_markup(message)
    shown = len("\n".join(section_texts(message)[1:]).splitlines())
    assert 0 < shown < 50
    assert block(message, "context")["elements"][0]["text"] == f"and {50 - shown} more"


def test_webhook_batch_payload() -> None:
    """Type, timestamp, count, and each event's single-webhook data with its type."""
    events = [(new(), ["a"]), (status_changed(), ["b", "c"])]
    payload = webhook_batch_payload(events, LINKS, WHEN)
    assert payload["type"] == "signal_report.batch"
    assert payload["timestamp"] == "2026-01-15T16:40:11Z"
    assert payload["data"]["count"] == 2
    for item, (event, rules) in zip(payload["data"]["events"], events, strict=True):
        single = webhook_payload(event, rules, LINKS, WHEN)
        assert item == {"type": single["type"], **single["data"]}
    assert webhook_batch_body(events, LINKS, WHEN) == encode_json(payload)


def test_block_kit_builder_url() -> None:
    """The builder's address with the percent-encoded {"blocks": [...]} as its fragment."""
    message = slack_message(new(title="A & B #1 ✅"), [], LINKS)
    url = block_kit_builder_url(message)
    prefix = "https://app.slack.com/block-kit-builder#"
    assert url.startswith(prefix + "%7B%22blocks%22:%5B")
    fragment = url.removeprefix(prefix)
    assert not set(fragment) & set(' "#&{}')
    assert json.loads(unquote(fragment)) == {"blocks": list(message.blocks)}


# --- properties -----------------------------------------------------------------------------

hostile = st.lists(
    st.one_of(st.text(max_size=30), st.sampled_from([*INJECTIONS, "&", '"', "\\", "*~_`"])),
    max_size=12,
).map("".join)
long_hostile = st.one_of(hostile, st.builds(lambda s, n: s * n, hostile, st.integers(1, 400)))
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    long_hostile,
    st.lists(hostile, max_size=3),
)
reports = st.builds(
    lambda fields: Report.from_api({**RAW, **fields}),
    st.fixed_dictionaries(
        {"id": hostile.filter(str.strip), "status": hostile.filter(bool)},
        optional=dict.fromkeys(TRACKED_FIELDS, values),
    ),
)
events = st.builds(
    lambda kind, current, previous, changes: Event.create(kind, 7, current, previous, changes),
    st.sampled_from(list(EventType)),
    reports,
    st.one_of(st.none(), reports),
    st.dictionaries(
        st.one_of(st.sampled_from(["status", *TRACKED_FIELDS]), hostile),
        st.tuples(values, values),
        max_size=12,
    ),
)
enrichments = st.builds(
    Enrichment,
    st.lists(st.builds(Recording, hostile, st.one_of(st.none(), long_hostile)), max_size=5).map(
        tuple
    ),
    st.one_of(st.none(), long_hostile),
    st.one_of(st.none(), long_hostile),
)
rule_lists = st.lists(hostile, max_size=5)
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_sound(message: SlackMessage) -> None:
    assert_block_kit_limits(message)
    assert_no_raw_markup(message)
    assert all("<!" not in t and "<@" not in t and "<#" not in t for t in texts(message))


@PROPERTY
@given(event=events, rules=rule_lists, enrichment=enrichments)
def test_any_card_fits_and_is_escaped(
    event: Event, rules: list[str], enrichment: Enrichment
) -> None:
    """Whatever the report, changes, rules and artefacts, the card fits and pings nobody."""
    assert_sound(slack_message(event, rules, LINKS, enrichment=enrichment))


@PROPERTY
@given(event=events, rules=rule_lists)
def test_any_thread_reply_fits_and_is_escaped(event: Event, rules: list[str]) -> None:
    """Whatever changed, the thread reply fits and pings nobody."""
    assert_sound(thread_reply(event, rules, LINKS))


@PROPERTY
@given(
    batch=st.lists(st.tuples(events, rule_lists), max_size=30),
    max_lines=st.integers(-1, 40),
)
def test_any_digest_fits_and_is_escaped(
    batch: list[tuple[Event, list[str]]], max_lines: int
) -> None:
    """Whatever the events, the digest fits, pings nobody and accounts for every event."""
    message = digest_message(batch, LINKS, max_lines=max_lines)
    assert_sound(message)
    shown = sum(t.count("\n") + 1 for t in section_texts(message)[1:]) if batch else 0
    more = [b for b in message.blocks if b["type"] == "context"]
    hidden = int(more[0]["elements"][0]["text"].split()[1]) if more else 0
    assert shown + hidden == len(batch)


# -- rendered templates over the card -----------------------------------------------------------


def test_templates_replace_title_summary_and_text_but_keep_the_state() -> None:
    """Rendered template parts (already escaped) replace the header's title after the colour
    and badge, the summary section and the fallback text; what is not templated stays."""
    event = Event.create(
        EventType.STATUS_CHANGED,
        1,
        report(status="resolved"),
        report(),
        {"status": ("ready", "resolved")},
    )
    default = slack_message(event, ["r"], LINKS)
    message = slack_message(event, ["r"], LINKS, title="A &amp; B", body="*custom*", text="hi")
    header = message.blocks[0]["text"]["text"]
    assert header.startswith(default.blocks[0]["text"]["text"].split(":")[0] + ": ")
    assert header.endswith("Resolved: A &amp; B")
    assert message.text == "hi"
    assert "*custom*" in section_texts(message)
    assert not any(RAW["summary"][:30] in t for t in section_texts(message))
    assert message.blocks[1] == default.blocks[1]  # the status line
    assert slack_message(event, ["r"], LINKS, title=None, body=None, text=None) == default


def test_a_long_rendered_title_is_cut_without_breaking_an_entity() -> None:
    """The header stays within 150 characters and never ends in half an ``&amp;``."""
    message = slack_message(new(), ["r"], LINKS, title="&amp;" * 100)
    header = message.blocks[0]["text"]["text"]
    assert len(header) <= 150
    assert header.endswith("&amp;…")
    assert_block_kit_limits(message)
