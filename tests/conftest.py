"""Shared fixtures: the fake PostHog, fake Slack and webhook receiver on 127.0.0.1, and a
helper that writes a YAML config pointing the real notifier at them.

Every test also runs under ``secrets_sweep`` (autouse): the root logger at DEBUG, and at the end
none of the recognisable secrets below may appear in a log record (message or exception text,
before any redaction), in a notifier exception's text, in captured stdout/stderr, or in any file
the test left under ``tmp_path`` other than YAML config files.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from notifier.config.load import parse_config
from notifier.config.settings import Settings, StateSettings
from notifier.core import errors
from notifier.demo.simulator import FakePostHog
from notifier.runtime.daemon import Notifier
from notifier.sinks.slack import pace
from notifier.state.store import PostgresStore, Store, open_store
from tests import pg
from tests.factories import (
    API_KEY,
    PROJECT,
    SECRETS,
    SLACK_TOKEN,
    SLACK_WEBHOOK_PATH,
    WEBHOOK_SECRET,
    Notifiers,
    World,
    leaked,
)
from tests.fakes import FakeSlack, WebhookReceiver

REPOSITORY = Path(__file__).resolve().parent.parent


def _root_entries() -> set[str]:
    """What stands at the repository's top level, hidden entries (caches) aside."""
    return {p.name for p in REPOSITORY.iterdir() if not p.name.startswith(".")}


@pytest.fixture(scope="session", autouse=True)
def nothing_written_outside_tmp_path() -> Iterator[None]:
    """No test writes into the repository: a relative ``state.path`` or heartbeat would land
    at its top level (where the tests run), so the session fails if anything new appears."""
    before = _root_entries()
    yield
    assert _root_entries() <= before, f"tests wrote {sorted(_root_entries() - before)}"


_CAPTURE_FIXTURES = ("capsys", "capfd", "capsysbinary", "capfdbinary")


def _capture(request: pytest.FixtureRequest, seen: list[str]) -> Any:
    """The test's own capture fixture (or capfd), with ``readouterr`` also feeding ``seen``."""
    name = next((f for f in _CAPTURE_FIXTURES if f in request.fixturenames), "capfd")
    fixture = request.getfixturevalue(name)
    read = fixture.readouterr

    def readouterr() -> Any:
        result = read()
        seen.extend(str(part) for part in result)  # bytes show as b'...': still searchable
        return result

    fixture.readouterr = readouterr
    return fixture


def _input_file(path: Path, data: bytes) -> bool:
    """A file a test wrote on purpose with a secret in it: a hand-written config (make_config's
    config.yaml uses ${VAR}s, so it is not exempt) or a secret file for ``*_file`` keys."""
    own_config = path.suffix in (".yaml", ".yml") and path.name != "config.yaml"
    return own_config or data.strip() in {s.encode() for s in SECRETS.values()}


@pytest.fixture(autouse=True)
def secrets_sweep(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run the test at DEBUG; afterwards assert no recognisable secret escaped anywhere."""
    texts: list[tuple[str, str]] = []  # only the leaking ones: a soak makes millions
    captured: list[str] = []

    def note(where: str, text: str) -> None:
        if leaked(text):
            texts.append((where, text))

    capture = _capture(request, captured)
    tmp_path: Path | None = (
        request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    )

    # Every record any logger creates, raw (never through the redacting formatter), even if a
    # handler is swapped out by the test (logs.setup replaces the root handlers).
    old_factory = logging.getLogRecordFactory()
    plain = logging.Formatter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception as exc:  # a bad format string is a bug too, but not this check's
            text = f"{record.msg!r} {record.args!r} ({exc!r})"
        if record.exc_info:
            text += "\n" + plain.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        note(f"log record {record.name}:{record.levelname}", text)
        return record

    # Every notifier exception constructed, raised or swallowed.
    old_init = errors.NotifierError.__init__

    def init(self: errors.NotifierError, *args: Any, **kwargs: Any) -> None:
        old_init(self, *args, **kwargs)
        note(f"{type(self).__name__} text", str(self))

    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    logging.setLogRecordFactory(factory)
    errors.NotifierError.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        errors.NotifierError.__init__ = old_init  # type: ignore[method-assign]
        logging.setLogRecordFactory(old_factory)
        root.setLevel(old_level)
    capture.readouterr()
    texts += [("captured stdout/stderr", text) for text in captured]
    found = [
        f"{names} in {where}: {text[:300]!r}" for where, text in texts if (names := leaked(text))
    ]
    for path in sorted(tmp_path.rglob("*")) if tmp_path is not None else ():
        data = path.read_bytes() if path.is_file() else b""
        if _input_file(path, data) or not (names := leaked(data)):
            continue
        found.append(f"{names} in file {path.relative_to(tmp_path)}")
    assert not found, "secrets leaked:\n" + "\n".join(found)


@pytest.fixture(autouse=True)
def unpaced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests count Slack messages, not seconds: the default pace of one post per
    second per channel is lifted, except for tests marked ``paced`` (and tests that build their
    own ``Pacer``). A 429's workspace pause still applies; subprocess tests stay paced."""
    if request.node.get_closest_marker("paced") is None:
        monkeypatch.setattr(pace, "CHANNEL_INTERVAL", 0.0)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server for this test process (tests/pg.py)."""
    with pg.server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The URL of an empty PostgreSQL database of this test's own."""
    return pg.fresh_database(postgres_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_settings(request: pytest.FixtureRequest, tmp_path: Path) -> StateSettings:
    """Where a store under test lives, on each backend: a new SQLite file in tmp_path, or a
    new PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        return StateSettings(path=tmp_path / "state" / "notifier.db")
    return StateSettings(url=request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(state_settings: StateSettings) -> Iterator[Store | PostgresStore]:
    """A store opened (created) on ``state_settings``, closed after the test."""
    opened = open_store(state_settings)
    yield opened
    opened.close()


@pytest.fixture
def posthog() -> Iterator[FakePostHog]:
    with FakePostHog(api_key=API_KEY, projects=(PROJECT,)) as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=SLACK_TOKEN) as fake:
        fake.webhook_path = SLACK_WEBHOOK_PATH  # type: ignore[misc]  # a Final default
        yield fake


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as fake:
        yield fake


DEFAULT_RULES = """
- name: everything
  match: {event: [new, status_changed, updated, removed]}
  sinks: [slack, hook]
"""


@pytest.fixture
def make_config(
    tmp_path: Path, posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver
) -> Callable[..., Path]:
    """Write config.yaml for the fakes; returns its path. Rules and extra YAML are overridable."""

    def make(
        rules: str = DEFAULT_RULES,
        first_run: str = "baseline",
        posthog_extra: str = "",
        extra: str = "",
        project_ids: tuple[int, ...] = (PROJECT,),
        poll_extra: str = "",
        state: str | None = None,
    ) -> Path:
        """``state``: the state section's lines (default: a SQLite file in tmp_path)."""
        state_lines = state if state is not None else f"path: {tmp_path / 'state.db'}"
        poll_lines = textwrap.indent(textwrap.dedent(poll_extra).strip(), "  ")
        poll_lines = f"\n{poll_lines}" if poll_lines else ""
        text = f"""
posthog:
  host: {posthog.url}
  api_key: ${{POSTHOG_PERSONAL_API_KEY}}
  project_ids: [{", ".join(map(str, project_ids))}]
  timeout: 5s
{textwrap.indent(textwrap.dedent(posthog_extra).strip(), "  ")}
poll:
  interval: 1s
  jitter: 0s{poll_lines}
state:
{textwrap.indent(textwrap.dedent(state_lines).strip(), "  ")}
first_run: {first_run}
delivery:
  give_up_after: 1h
  backoff_initial: 0.05s
  backoff_max: 0.2s
http: {{listen: "127.0.0.1:0"}}
sinks:
  slack:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: C0123456789
    api_url: {slack.api_url}
    timeout: 2s
  slack-hook:
    type: slack_webhook
    url: ${{SLACK_WEBHOOK_URL}}
    timeout: 2s
  hook:
    type: webhook
    url: {receiver.url}
    secret: ${{WEBHOOK_SECRET}}
    timeout: 2s
{textwrap.dedent(extra).strip()}
rules:
{textwrap.indent(textwrap.dedent(rules).strip(), "  ")}
"""
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path

    return make


@pytest.fixture
def env(slack: FakeSlack) -> dict[str, str]:
    """The environment the config's ${VAR}s come from."""
    return {
        "POSTHOG_PERSONAL_API_KEY": API_KEY,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_WEBHOOK_URL": slack.webhook_url,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    """The fakes, make_config and env in one (the fixtures of those names): for tests that use
    them all."""
    return World(**{part.name: request.getfixturevalue(part.name) for part in fields(World)})


@pytest.fixture
def load(env: dict[str, str]) -> Callable[[Path], Settings]:
    def load_settings(path: Path) -> Settings:
        return parse_config(path.read_text(), source=str(path), env=env, base_dir=path.parent)

    return load_settings


@pytest.fixture
def notifiers() -> Iterator[Notifiers]:
    """Build notifiers with ``notifiers.build(settings, **parts)``; closed after the test."""
    built = Notifiers()
    yield built
    built.close_all()


@pytest.fixture
def once(
    make_config: Callable[..., Path], load: Callable[[Path], Settings]
) -> Iterator[Callable[..., int]]:
    """Run `notifier once` in-process with a config built by make_config(**kwargs)."""
    opened: list[Notifier] = []

    def run(max_wait: float = 5.0, **config: Any) -> int:
        notifier = Notifier(load(make_config(**config)))
        opened.append(notifier)
        try:
            return notifier.once(max_wait=max_wait)
        finally:
            notifier.close()

    return run
