"""The project's name on cards (issue 13): the fake PostHog serves ``GET /api/projects/{id}/`` as
PostHog does; the client asks for it through the same request path as every read, keeps it 6 h
(a failure 1 h, logged once); a cycle with events puts it on its events and outbox entries, a
quiet cycle asks nothing. Real httpx over TCP against the fake, real SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier.config.settings import Settings
from notifier.core.events import Event
from notifier.cycle.pipeline import CyclePlan
from notifier.demo.simulator import FakePostHog
from notifier.posthog import projects
from notifier.posthog.client import PostHogClient
from notifier.render import console_text, slack_message, webhook_payload
from notifier.render.templates import Templates, compile_templates, render
from notifier.runtime.daemon import Notifier
from notifier.runtime.leases import holding
from tests.factories import API_KEY, LINKS, PROJECT, Notifiers, new
from tests.slack_checks import block

NAME_PATH = f"/api/projects/{PROJECT}/"


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(projects, "_now", fake)
    return fake


def name_requests(posthog: FakePostHog) -> int:
    return sum(1 for r in posthog.requests if r.path == NAME_PATH)


def get(posthog: FakePostHog, path: str, key: str = API_KEY) -> httpx.Response:
    return httpx.get(posthog.url + path, headers={"authorization": f"Bearer {key}"})


def name_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "project_name_unavailable"]


# ------------------------------------------------------------------------------ the fake


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
def test_fake_serves_a_project_by_id_and_lists_the_same_name(version: int) -> None:
    with FakePostHog(api_version=version, api_key=API_KEY, projects=(PROJECT, 7)) as posthog:
        posthog.project_names[PROJECT] = "Storefront"
        one = get(posthog, NAME_PATH)
        assert one.status_code == 200
        body = one.json()
        assert body["id"] == PROJECT
        assert body["name"] == "Storefront"
        assert body["timezone"] == "UTC"
        assert len(str(body["organization"])) == 36
        other = get(posthog, "/api/projects/7/").json()
        assert other["name"] == "Project 7"  # a sensible default
        listed = {p["id"]: p["name"] for p in get(posthog, "/api/projects/").json()["results"]}
        assert listed == {7: other["name"], PROJECT: "Storefront"}


def test_fake_refuses_a_project_as_it_refuses_its_other_paths(posthog: FakePostHog) -> None:
    unknown = get(posthog, "/api/projects/999/")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "Not found."
    assert get(posthog, NAME_PATH, key="phx_wrong").status_code == 403
    posthog.allowed_projects = {1}
    refused = get(posthog, NAME_PATH)
    assert refused.status_code == 403
    assert "does not have access to the requested project" in refused.json()["detail"]
    posthog.allowed_projects = None
    posthog.missing_scopes = {"project:read"}
    scope = get(posthog, NAME_PATH)
    assert scope.status_code == 403
    assert scope.json()["detail"] == "API key missing required scope 'project:read'"
    posted = httpx.post(posthog.url + NAME_PATH, headers={"authorization": f"Bearer {API_KEY}"})
    assert posted.status_code == 405


# ------------------------------------------------------------------------------ the client


@pytest.fixture
def client(posthog: FakePostHog, make_config: Callable[..., Path], load: Any) -> Iterator[Any]:
    settings: Settings = load(make_config())
    quick = settings.posthog.model_copy(update={"timeout": 0.3})
    source = PostHogClient(quick, sleep=lambda _s: None, attempts=2)
    yield source
    source.close()


def test_client_keeps_a_name_six_hours(
    posthog: FakePostHog, client: PostHogClient, clock: Clock
) -> None:
    posthog.project_names[PROJECT] = "Storefront"
    cycle = client.start_cycle(PROJECT)
    assert client.project_name(PROJECT, cycle) == "Storefront"
    assert cycle.requests.made == 1
    posthog.project_names[PROJECT] = "Shop"
    clock.now += projects.NAME_TTL - 1
    assert client.project_name(PROJECT, None) == "Storefront"
    assert name_requests(posthog) == 1
    clock.now += 2
    assert client.project_name(PROJECT, None) == "Shop"
    assert name_requests(posthog) == 2


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("scope", "HTTP 403: the key lacks the project:read scope"),
        ("404", "HTTP 404"),
        ("json", "not JSON"),
        ("not_a_string", "no name"),
        ("timeout", "did not answer"),
    ],
)
def test_client_remembers_a_failure_an_hour_and_logs_it_once(
    posthog: FakePostHog,
    client: PostHogClient,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    said: str,
) -> None:
    caplog.set_level(logging.INFO)
    if fault == "scope":
        posthog.missing_scopes = {"project:read"}
    elif fault == "404":
        posthog.fail_next(404, times=2)
    elif fault == "json":
        posthog.fail_next(200, raw=b"<html>proxy</html>", times=2)
    elif fault == "not_a_string":
        posthog.fail_next(200, {"id": PROJECT, "name": 12}, times=2)
    else:
        posthog.stall_next(1.0, times=2)
    assert client.project_name(PROJECT, None) is None
    first = name_requests(posthog)
    assert 1 <= first <= 2  # a timeout is tried again once (attempts=2), no more
    clock.now += projects.FAILURE_TTL - 1
    assert client.project_name(PROJECT, None) is None
    assert name_requests(posthog) == first  # remembered: no request within the hour
    logged = name_logs(caplog)
    assert len(logged) == 1
    assert logged[0].levelno == logging.INFO
    text = logged[0].getMessage()
    assert text.startswith(f"project {PROJECT}: PostHog did not give its name (")
    assert said in text
    assert "cards show the project id" in text
    assert API_KEY not in text
    if fault == "scope":
        assert "Add project:read to the key to see its name" in text
    posthog.clear_faults()
    posthog.missing_scopes = set()
    clock.now += 2
    assert client.project_name(PROJECT, None) == posthog.project_name(PROJECT)
    assert name_requests(posthog) == first + 1  # asked again after the hour
    assert len(name_logs(caplog)) == 1  # logged once per process


# ------------------------------------------------------------------------------ the cycle


class Start:
    """Notifiers on one state, each holding its leases (PostgreSQL shares the work by them)."""

    def __init__(self, settings: Settings, notifiers: Notifiers) -> None:
        self._settings = settings
        self._notifiers = notifiers
        self._held: dict[int, ExitStack] = {}

    def __call__(self) -> Notifier:
        notifier = self._notifiers.build(self._settings, waits=[])
        stack = ExitStack()
        stack.enter_context(holding(notifier.leases))
        self._held[id(notifier)] = stack
        return notifier

    def restart(self, old: Notifier) -> Notifier:
        """``old`` stops (its leases given back); a new one starts on the same state."""
        self._held.pop(id(old)).close()
        self._notifiers.close(old)
        return self()

    def close(self) -> None:
        for stack in self._held.values():
            stack.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def start(
    request: pytest.FixtureRequest,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    tmp_path: Path,
) -> Iterator[Start]:
    """Notifiers on a SQLite file, or on a PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        state = f"path: {tmp_path / 'state.db'}"
    else:
        state = f"url: {request.getfixturevalue('postgres_url')}"
    started = Start(load(make_config(state=state, poll_extra="full_sync_every: 0s")), notifiers)
    yield started
    started.close()


def polled(notifier: Notifier) -> CyclePlan:
    plan = notifier.poll(PROJECT)
    assert plan is not None, "the cycle failed"
    return plan


def queued(notifier: Notifier, state: str = "pending") -> list[Event]:
    found = [e.event for e in notifier.store.entries(state)]
    return [e for e in found if isinstance(e, Event)]


def test_a_cycle_with_events_names_its_project_in_the_outbox(
    posthog: FakePostHog, start: Start, clock: Clock
) -> None:
    posthog.project_names[PROJECT] = "Storefront"
    posthog.add_report(PROJECT, title="old")
    notifier = start()
    polled(notifier)  # the baseline: no events, no name asked
    polled(notifier)  # a quiet cycle
    assert name_requests(posthog) == 0
    posthog.add_report(PROJECT, title="Checkout button unresponsive")
    plan = polled(notifier)
    assert [e.project_name for e in plan.events] == ["Storefront"]
    pending = queued(notifier)
    assert len(pending) == 2  # slack and hook
    assert {e.project_name for e in pending} == {"Storefront"}
    assert name_requests(posthog) == 1
    clock.now += 3600
    posthog.add_report(PROJECT, title="Pricing page toggle confuses annual vs monthly")
    assert [e.project_name for e in polled(notifier).events] == ["Storefront"]
    assert name_requests(posthog) == 1  # kept: no second request within 6 h
    # a restart reads the name back from the outbox's JSON
    restarted = start.restart(notifier)
    assert {e.project_name for e in queued(restarted)} == {"Storefront"}
    assert restarted.drain_all().delivered == 4
    assert {e.project_name for e in queued(restarted, "delivered")} == {"Storefront"}


def test_a_refused_name_leaves_it_out_logs_once_and_delivers(
    posthog: FakePostHog,
    start: Start,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    posthog.missing_scopes = {"project:read"}
    notifier = start()
    polled(notifier)
    for title in ("one", "two"):
        posthog.add_report(PROJECT, title=title)
        plan = polled(notifier)
        assert [e.project_name for e in plan.events] == [None]
        assert notifier.health[PROJECT].failures == 0
        clock.now += 60
    assert name_requests(posthog) == 1
    assert len(name_logs(caplog)) == 1
    assert notifier.drain_all().delivered == 4
    assert {e.project_name for e in queued(notifier, "delivered")} == {None}


def test_the_name_is_kept_in_the_events_json_not_its_identity() -> None:
    event = new(title="x")
    named = Event.from_json({**event.to_json(), "project_name": "Storefront"})
    assert named.project_name == "Storefront"
    assert Event.from_json(named.to_json()).project_name == "Storefront"
    assert named == event
    assert "project_name" not in event.to_json()


def test_every_sink_shows_the_name_when_known() -> None:
    """Card footnote (escaped), console, webhook data and templates carry the project's
    name; without one the card says "Project <id>" and the webhook ``project_name`` is null."""
    named = replace(new(), project_name="Store <!here> & co")
    footnote = block(slack_message(named, ["r"], LINKS), "context")["elements"][0]["text"]
    assert footnote == "Store &lt;!here&gt; &amp; co"
    bare = block(slack_message(new(), ["r"], LINKS), "context")["elements"][0]["text"]
    assert bare == "Project 1"
    when = datetime(2026, 1, 15, tzinfo=UTC)
    assert webhook_payload(named, [], LINKS, when)["data"]["project_name"] == "Store <!here> & co"
    assert webhook_payload(new(), [], LINKS, when)["data"]["project_name"] is None
    assert "project: Store <!here> & co" in console_text(named, [], LINKS, color=False)
    templates = compile_templates(Templates(text="{{ project.name }} / {{ project.id }}"), "t")
    assert render(templates, named, [], LINKS).text == "Store &lt;!here&gt; &amp; co / 1"
