"""End to end: the real httpx and slack_sdk clients against fake PostHog, Slack and a webhook
receiver over TCP, with the state in a real SQLite file and — for the promises that depend on
the state (``BOTH``) — again in a real PostgreSQL database. Each test is one promise."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from standardwebhooks.webhooks import Webhook

from notifier.config.settings import StateSettings
from notifier.demo.simulator import FakePostHog
from notifier.state.store import open_store
from tests.factories import PROJECT, WEBHOOK_SECRET
from tests.fakes import FakeSlack, WebhookReceiver

Once = Callable[..., int]


@pytest.fixture
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The config's state section: a SQLite file, or (``BOTH``) a PostgreSQL database of the
    test's own as well."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"path: {tmp_path / 'state.db'}"
    return f"url: {request.getfixturevalue('postgres_url')}"


#: The promises that depend on the state backend (what a cycle saves, what is queued, what a
#: failure leaves), kept on PostgreSQL too; the others concern PostHog and the sinks.
BOTH = pytest.mark.parametrize("state", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def once(once: Once, state: str) -> Once:
    """conftest's ``once``, with the state on the backend of this run."""
    return functools.partial(once, state=state)


def payloads(receiver: WebhookReceiver) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in receiver.received]


@BOTH
def test_baseline_then_silence(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """First run records existing reports silently; an unchanged second run sends nothing."""
    for i in range(3):
        posthog.add_report(PROJECT, title=f"report {i}")
    assert once() == 0
    assert once() == 0
    assert slack.messages == []
    assert receiver.received == []


@BOTH
def test_new_report_gives_one_message_and_one_signed_webhook(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """A new report → exactly one Slack message and one webhook whose signature verifies."""
    posthog.add_report(PROJECT, title="old")
    assert once() == 0
    new = posthog.add_report(PROJECT, title="Checkout button unresponsive", status="ready")
    assert once() == 0
    assert len(slack.messages) == 1
    assert "Checkout button unresponsive" in json.dumps(slack.messages[0].blocks)
    assert slack.messages[0].channel == "C0123456789"
    assert len(receiver.received) == 1
    hook = receiver.received[0]
    Webhook(WEBHOOK_SECRET).verify(hook.body, hook.headers)  # raises if the signature is wrong
    body = payloads(receiver)[0]
    assert body["type"] == "signal_report.new"
    data = body["data"]
    assert isinstance(data, dict)
    assert data["report"]["id"] == new["id"]
    assert data["project_id"] == PROJECT
    assert data["url"].endswith(f"/project/{PROJECT}/inbox/reports/{new['id']}")
    assert once() == 0
    assert len(slack.messages) == 1  # nothing new: nothing sent


def test_status_change_routed_by_previous(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """A rule on `previous.status` fires for in_progress → ready but not candidate → ready."""
    condition = "{status: ready, previous: {status: in_progress}}"
    rules = f"- {{name: research finished, match: {condition}, sinks: [slack]}}"
    a = posthog.add_report(PROJECT, title="A", status="in_progress")
    b = posthog.add_report(PROJECT, title="B", status="candidate")
    assert once(rules=rules) == 0
    posthog.update_report(PROJECT, a["id"], status="ready")
    posthog.update_report(PROJECT, b["id"], status="ready")
    assert once(rules=rules) == 0
    assert len(slack.messages) == 1
    text = json.dumps(slack.messages[0].blocks)
    assert slack.messages[0].blocks[0]["text"]["text"].endswith(" A")  # the header: A's title
    assert "was \\ud83d\\udfe1 Researching" in text  # was 🟡 in_progress, in words
    assert receiver.received == []


def test_thresholds_regex_not_and_stop(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """Weight threshold, title regex, `not` and `stop` route each new report as written."""
    rules = """
    - name: heavy checkout
      match:
        total_weight: {gte: 2.0}
        title: {regex: "(?i)checkout"}
      sinks: [slack]
      stop: true
    - name: everything but tests
      match:
        not: {title: {contains: "[test]"}}
      sinks: [hook]
    """
    assert once(rules=rules) == 0
    heavy = posthog.add_report(PROJECT, title="CHECKOUT fails", total_weight=3.0)
    light = posthog.add_report(PROJECT, title="Checkout slow", total_weight=0.5)
    test = posthog.add_report(PROJECT, title="[test] ignore me", total_weight=9.0)
    assert once(rules=rules) == 0
    slack_ids = [json.dumps(m.blocks) for m in slack.messages]
    assert len(slack_ids) == 1
    assert "CHECKOUT fails" in slack_ids[0]
    hooked = {p["data"]["report"]["id"] for p in payloads(receiver)}  # type: ignore[index]
    assert hooked == {light["id"]}  # heavy stopped at rule 1, test excluded by `not`
    assert heavy["id"] not in hooked
    assert test["id"] not in hooked


@BOTH
def test_two_rules_one_sink_one_delivery(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once
) -> None:
    """Two rules routing the same event to one sink deliver it once, naming both rules."""
    rules = """
    - name: first
      match: {status: ready}
      sinks: [hook]
    - name: second
      match: {total_weight: {gt: 0}}
      sinks: [hook]
    """
    assert once(rules=rules) == 0
    posthog.add_report(PROJECT, title="x", total_weight=1.0)
    assert once(rules=rules) == 0
    assert len(receiver.received) == 1
    assert payloads(receiver)[0]["data"]["rules"] == ["first", "second"]  # type: ignore[index]


def test_1050_reports_over_11_pages(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once
) -> None:
    """All 11 pages are read: a change on the last page and a new report are both found."""
    ids = [posthog.add_report(PROJECT, title=f"r{i}")["id"] for i in range(1050)]
    rules = "- {name: all, match: {event: [new, status_changed, updated]}, sinks: [hook]}"
    assert once(rules=rules, posthog_extra="page_size: 100") == 0
    lists = [r for r in posthog.requests if r.path.endswith("/reports/") and r.method == "GET"]
    assert len(lists) == 11
    assert all(r.query.get("ordering") == "created_at,id" for r in lists)
    posthog.update_report(PROJECT, ids[-1], title="renamed on the last page")
    posthog.add_report(PROJECT, title="brand new")
    assert once(rules=rules, posthog_extra="page_size: 100") == 0
    kinds = sorted(p["type"] for p in payloads(receiver))  # type: ignore[misc]
    assert kinds == ["signal_report.new", "signal_report.updated"]


@BOTH
def test_removed_only_after_a_404(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once
) -> None:
    """A deleted report is `removed`; a suppressed one (hidden, still retrievable) is a status
    change, never a removal."""
    gone = posthog.add_report(PROJECT, title="to delete")
    hidden = posthog.add_report(PROJECT, title="to suppress")
    rules = "- {name: all, match: {event: [new, status_changed, updated, removed]}, sinks: [hook]}"
    assert once(rules=rules) == 0
    posthog.delete_report(PROJECT, gone["id"])
    posthog.update_report(PROJECT, hidden["id"], status="suppressed")
    assert once(rules=rules) == 0
    by_id = {p["data"]["report"]["id"]: p["type"] for p in payloads(receiver)}  # type: ignore[index]
    assert by_id == {
        gone["id"]: "signal_report.removed",
        hidden["id"]: "signal_report.status_changed",
    }
    retrieves = [r.path for r in posthog.requests if gone["id"] in r.path]
    assert retrieves, "removal must be confirmed by retrieving the report"
    assert once(rules=rules) == 0
    assert len(receiver.received) == 2  # the suppressed one is not fetched into a new event


def test_report_skipped_by_shifting_pages_is_not_removed(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once
) -> None:
    """A deletion between two page fetches shifts a report past the page boundary: it is
    missed by the listing but found by retrieve, so it is never `removed`; the deleted one is,
    once a complete listing no longer has it. (Full listings every run: paging by creation.)"""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(6)]
    rules = "- {name: all, match: {event: [new, status_changed, updated, removed]}, sinks: [hook]}"
    once = functools.partial(once, poll_extra="full_sync_every: 0s")
    assert once(rules=rules, posthog_extra="page_size: 3") == 0

    def delete_first(project_id: int, offset: int) -> None:
        if offset == 0:  # page 1 already holds r0; r3 slides back onto it, unseen
            posthog.on_list_page = None
            posthog.delete_report(project_id, reports[0]["id"])

    posthog.on_list_page = delete_first
    assert once(rules=rules, posthog_extra="page_size: 3") == 0
    assert receiver.received == []
    assert any(reports[3]["id"] in r.path for r in posthog.requests)  # checked by retrieve
    assert once(rules=rules, posthog_extra="page_size: 3") == 0
    events = [(p["type"], p["data"]["report"]["id"]) for p in payloads(receiver)]  # type: ignore[index]
    assert events == [("signal_report.removed", reports[0]["id"])]


@BOTH
def test_failed_page_changes_nothing_and_next_cycle_delivers(
    posthog: FakePostHog,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    once: Once,
    state: str,
) -> None:
    """A 500 on page 2 fails the cycle with no event and no state change; the next good cycle
    delivers exactly the events that happened."""
    for i in range(5):
        posthog.add_report(PROJECT, title=f"r{i}")
    assert once(posthog_extra="page_size: 2") == 0
    new = posthog.add_report(PROJECT, title="arrived during the outage")
    posthog.fail_next(500, times=3, path_contains="offset=2")  # every attempt of the cycle
    assert once(posthog_extra="page_size: 2", max_wait=0) == 1
    assert slack.messages == []
    assert receiver.received == []
    store = open_store(StateSettings.model_validate(yaml.safe_load(state)))
    assert new["id"] not in store.snapshot(PROJECT)
    store.close()
    assert once(posthog_extra="page_size: 2") == 0
    assert [p["data"]["report"]["id"] for p in payloads(receiver)] == [new["id"]]  # type: ignore[index]
    assert len(slack.messages) == 1


def test_channel_mention_in_title_is_escaped(
    posthog: FakePostHog, slack: FakeSlack, once: Once
) -> None:
    """A title `<!channel>` reaches Slack escaped (or as plain_text): it pings nobody."""
    assert once() == 0
    posthog.add_report(
        PROJECT, title="<!channel> <https://evil.example|click me>", summary="<@U123> & co"
    )
    assert once() == 0
    message = slack.messages[0]
    raw = json.dumps(message.blocks) + message.text
    assert "<!channel>" not in raw
    assert "<https://evil.example|" not in raw
    assert "<@U123>" not in raw


def test_next_links_to_another_origin_are_ignored(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once
) -> None:
    """With next links naming another origin, paging stays on the configured host and that
    origin receives no request and no key."""
    with FakePostHog(api_key="phx_other", projects=(PROJECT,)) as elsewhere:
        posthog.link_base = elsewhere.url
        for i in range(5):
            posthog.add_report(PROJECT, title=f"r{i}")
        assert (
            once(
                posthog_extra="page_size: 2",
                first_run="notify",
                rules="- {name: all, match: {}, sinks: [hook]}",
            )
            == 0
        )
        assert elsewhere.requests == []
    assert len(receiver.received) == 5


def test_old_posthog_paths_are_found(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once
) -> None:
    """api_path auto finds signal_reports/ on an old (V1) PostHog, which lists only ready."""
    posthog.api_version = 1
    posthog.add_report(PROJECT, title="ready one", status="ready")
    posthog.add_report(PROJECT, title="not listed in V1", status="candidate")
    assert once(first_run="notify", rules="- {name: all, match: {}, sinks: [hook]}") == 0
    titles = [p["data"]["report"]["title"] for p in payloads(receiver)]  # type: ignore[index]
    assert titles == ["ready one"]
    assert any("/signal_reports/" in r.path for r in posthog.requests)


@BOTH
def test_project_added_later_gets_its_own_baseline(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once
) -> None:
    """A project added to the config after the first run is baselined silently on its own first
    cycle, while the existing project keeps notifying."""
    posthog.add_project(7)
    posthog.add_report(7, title="already there in project 7")
    assert once() == 0
    posthog.add_report(PROJECT, title="new in the first project")
    two_projects = (PROJECT, 7)
    assert once(project_ids=two_projects) == 0
    titles = [p["data"]["report"]["title"] for p in payloads(receiver)]  # type: ignore[index]
    assert titles == ["new in the first project"]
    posthog.add_report(7, title="new in project 7")
    assert once(project_ids=two_projects) == 0
    titles = [p["data"]["report"]["title"] for p in payloads(receiver)]  # type: ignore[index]
    assert titles[-1] == "new in project 7"
    assert len(titles) == 2


@BOTH
def test_failed_retrieve_defers_the_removal(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once
) -> None:
    """A missing report whose retrieve fails is left for the next cycle: no event, no loss."""
    gone = posthog.add_report(PROJECT, title="soon deleted")
    rules = "- {name: all, match: {event: [removed]}, sinks: [hook]}"
    assert once(rules=rules) == 0
    posthog.delete_report(PROJECT, gone["id"])
    posthog.fail_next(502, times=3, path_contains=gone["id"])
    assert once(rules=rules) == 0
    assert receiver.received == []
    assert once(rules=rules) == 0
    assert [p["type"] for p in payloads(receiver)] == ["signal_report.removed"]
