"""Suggested reviewers on the card: the real notifier (httpx over TCP, SQLite, slack_sdk to the
fake Slack) against the fake PostHog (V6).

A report's ``suggested_reviewers`` artefact (a list of ``{github_login, github_name, user}``)
comes with the enrichment, from the artefacts page it already reads (one request). On the Slack
cards (bot and incoming webhook) a reviewer is @-mentioned when the config's ``people:`` map
(GitHub login or email → Slack user id) or, for bot sinks, ``users.lookupByEmail`` resolves
them; unresolved ones are shown by name. Webhook payloads carry the reviewers as data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from notifier.config.settings import Settings
from notifier.core.events import Enrichment, Reviewer
from notifier.demo.simulator import FakePostHog
from notifier.posthog.parse import parse_enrichment
from notifier.sinks.slack.people import forget
from tests.factories import PROJECT, Notifiers
from tests.fakes import FakeSlack, WebhookReceiver
from tests.test_enrich import Run, artefact_requests, enriching

OCTOCAT = {"github_login": "octocat", "github_name": "The Octocat", "relevant_commits": []}
ANA = {
    "github_login": "ana-dev",
    "github_name": None,
    "relevant_commits": [],
    "user": {"id": 7, "uuid": "u-7", "email": "ana@example.com", "first_name": "Ana",
             "last_name": "Silva"},
}  # fmt: skip
NOBODY = {"github_login": "ghost-writer", "github_name": "Gus Ghost", "user": None}

RULES = """
- name: everything
  match: {event: [new, status_changed, updated, removed]}
  sinks: [slack, slack-hook, hook]
"""


def add_reviewed(
    posthog: FakePostHog, reviewers: Sequence[dict[str, Any]], *, notes: int = 0
) -> dict[str, Any]:
    """A report with ``notes`` older note artefacts, both judgments and its suggested reviewers
    (newest), as PostHog's research leaves them."""
    report = posthog.add_report(PROJECT, title="Checkout button unresponsive")
    rid = report["id"]
    for n in range(notes):
        posthog.add_artefact(PROJECT, rid, "note", {"note": f"n{n}"})
    posthog.add_artefact(
        PROJECT, rid, "priority_judgment", {"explanation": "3%.", "priority": "P1"}
    )
    posthog.add_artefact(PROJECT, rid, "actionability_judgment", {"explanation": "Reproducible."})
    posthog.add_artefact(PROJECT, rid, "suggested_reviewers", list(reviewers))
    return report


@pytest.fixture
def start(
    make_config: Callable[..., Path], load: Callable[[Path], Settings], notifiers: Notifiers
) -> Callable[..., Run]:
    """A V6 notifier whose three sinks ask for artefacts; ``people`` is the config's map."""

    forget()  # the process's users.lookupByEmail cache

    def make(*, people: str = "") -> Run:
        extra = f"people:\n{people}" if people else ""
        config = make_config(rules=RULES, extra=extra, poll_extra="full_sync_every: 0s")
        settings = enriching(load(config), ("slack", "slack-hook", "hook"))
        return Run(notifiers.build(settings, waits=[]))

    return make


def card_text(message: Any) -> str:
    return json.dumps(message.blocks)


def lookups(slack: FakeSlack) -> list[str]:
    return [c.params.get("email") for c in slack.calls if c.method == "users.lookupByEmail"]


def deliver(posthog: FakePostHog, run: Run, reviewers: Sequence[dict[str, Any]]) -> None:
    posthog.api_version = 6
    run.poll()
    add_reviewed(posthog, reviewers, notes=150)
    plan = run.poll()
    assert plan.enriched == 1
    assert len(artefact_requests(posthog)) == 1  # judgments and reviewers: on the first page
    assert run.notifier.drain_all().delivered == 3


def test_a_mapped_login_is_mentioned_on_both_slack_cards(
    posthog: FakePostHog,
    start: Callable[..., Run],
    slack: FakeSlack,
    receiver: WebhookReceiver,
) -> None:
    """``people: {octocat: U…}``: octocat is @-mentioned on the bot card and the incoming
    webhook's; a reviewer nobody resolves is shown by name, not mentioned; the webhook body
    carries the reviewers as data. Still one artefacts request (150 older artefacts)."""
    run = start(people="  OctoCat: U0OCTO0001\n")
    deliver(posthog, run, [OCTOCAT, NOBODY])
    bot, hook = sorted(slack.messages, key=lambda m: m.via)
    for message in (bot, hook):
        text = card_text(message)
        assert "<@U0OCTO0001>" in text
        assert "Gus Ghost" in text
        assert "<@" not in text.replace("<@U0OCTO0001>", "")
    assert lookups(slack) == []  # no emails to look up
    [body] = receiver.bodies()
    reviewers = body["data"]["enrichment"]["reviewers"]
    assert reviewers == [
        {"login": "octocat", "name": "The Octocat"},
        {"login": "ghost-writer", "name": "Gus Ghost"},
    ]


def test_an_email_is_resolved_by_users_lookup_by_email_once_per_process(
    posthog: FakePostHog, start: Callable[..., Run], slack: FakeSlack
) -> None:
    """A reviewer with a PostHog user's email, not in ``people:``: the bot sink asks
    ``users.lookupByEmail`` and mentions them; the answer is cached (a later card asks no
    more); the incoming webhook (no Web API) shows the name."""
    slack.users["ana@example.com"] = "U0ANA00001"
    run = start()
    deliver(posthog, run, [ANA])
    bot = next(m for m in slack.messages if m.via == "api")
    hook = next(m for m in slack.messages if m.via != "api")
    assert "<@U0ANA00001>" in card_text(bot)
    assert "<@" not in card_text(hook)
    assert "Ana Silva" in card_text(hook)
    assert lookups(slack) == ["ana@example.com"]
    add_reviewed(posthog, [ANA])
    run.poll()
    run.notifier.drain_all()
    assert lookups(slack) == ["ana@example.com"]
    assert sum("<@U0ANA00001>" in card_text(m) for m in slack.messages if m.via == "api") == 2


def test_an_unresolved_reviewer_is_named_and_a_failed_lookup_fails_nothing(
    posthog: FakePostHog,
    start: Callable[..., Run],
    slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the ``users:read.email`` scope the lookup fails: a DEBUG line, the card goes
    out with the reviewer's name, and the scope is not asked again by this process."""
    slack.lookup_error = "missing_scope"
    run = start()
    with caplog.at_level(logging.DEBUG, logger="notifier"):
        deliver(posthog, run, [ANA])
    bot = next(m for m in slack.messages if m.via == "api")
    assert "Ana Silva" in card_text(bot)
    assert "<@" not in card_text(bot)
    failed = [r for r in caplog.records if "users.lookupByEmail" in r.getMessage()]
    assert failed
    assert all(r.levelno == logging.DEBUG for r in failed)
    assert "missing_scope" in failed[0].getMessage()
    add_reviewed(posthog, [ANA])
    run.poll()
    run.notifier.drain_all()
    assert lookups(slack) == ["ana@example.com"]


def test_reviewers_parse_from_the_latest_artefact_whatever_its_shape() -> None:
    """The latest ``suggested_reviewers`` wins; odd entries are skipped, never raised on."""
    older = {"type": "suggested_reviewers", "content": [OCTOCAT], "created_at": "2026-01-01T00:00Z"}
    newer = {
        "type": "suggested_reviewers",
        "content": [ANA, {"github_login": 5}, "x", {"github_login": "", "user": None}, None],
        "created_at": "2026-01-02T00:00Z",
    }
    found = parse_enrichment([older, newer])
    assert found.reviewers == (
        Reviewer(login="ana-dev", name="Ana Silva", email="ana@example.com"),
    )
    assert parse_enrichment([{"type": "suggested_reviewers", "content": {}}]).reviewers == ()
    assert Enrichment.from_json(found.to_json()) == found


def test_reviewers_older_than_the_judgments_page_are_not_sought(
    posthog: FakePostHog, start: Callable[..., Run], slack: FakeSlack
) -> None:
    """Judgments on the first page but the reviewers older: reading stops at the judgments (one
    request for a busy report, issue 12), so the card goes out without reviewers."""
    posthog.api_version = 6
    run = start(people="  octocat: U0OCTO0001\n")
    run.poll()
    report = posthog.add_report(PROJECT, title="Busy report")
    rid = report["id"]
    posthog.add_artefact(PROJECT, rid, "suggested_reviewers", [OCTOCAT])
    for n in range(120):
        posthog.add_artefact(PROJECT, rid, "note", {"note": f"n{n}"})
    posthog.add_artefact(PROJECT, rid, "priority_judgment", {"explanation": "3%."})
    posthog.add_artefact(PROJECT, rid, "actionability_judgment", {"explanation": "Yes."})
    run.poll()
    assert artefact_requests(posthog) == [rid]
    run.notifier.drain_all()
    bot = next(m for m in slack.messages if m.via == "api")
    assert "<@U0OCTO0001>" not in card_text(bot)
