"""Issue 16, item 1: no secret in any error text.

Upstream peers echo credentials back in their error answers: PostHog's ``detail`` quoting the
``Authorization`` header, Slack's ``error`` quoting the token, a webhook receiver quoting
``Authorization: Basic …`` (from a ``user:pass@`` URL) or the bare base64 key of the ``whsec_``
secret. Every error is redacted when it is constructed, against every configured secret and
its derived forms, so none of them reaches the state database, ``notifier outbox list``,
``/readyz``, the notices sent to Slack and webhooks, or the logs; a message cut short leaves no
prefix of a secret behind.

End to end through the real daemon against the fakes; the unit tests at the top use their own
``Registry`` (the process-wide one only ever grows).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from notifier.config.settings import Settings
from notifier.core import secrets
from notifier.core.errors import SinkError, SourceError, SourceErrorKind
from notifier.core.secrets import REDACTED, Registry
from notifier.runtime import logs
from notifier.runtime.daemon import Notifier
from notifier.runtime.metrics import Metrics
from notifier.runtime.service import reloaded
from tests.factories import (
    API_KEY,
    PROJECT,
    SLACK_TOKEN,
    SLACK_WEBHOOK_PATH,
    WEBHOOK_SECRET,
    Notifiers,
    World,
)
from tests.helpers import cli, inject, running, wait_for

USER, PASSWORD = "hookuser", "pa55:w0rd/Zq9"  # a password that needs percent-encoding
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BARE_KEY = WEBHOOK_SECRET.removeprefix("whsec_")
#: Shorter pieces of a secret are fine (``phx_`` alone says nothing); this many are not.
PREFIX = 10


def secret_forms() -> dict[str, str]:
    """Every value (and derived form) the tests below provoke an echo of."""
    return {
        "API_KEY": API_KEY,
        "SLACK_TOKEN": SLACK_TOKEN,
        "SLACK_WEBHOOK_PATH": SLACK_WEBHOOK_PATH,
        "SLACK_WEBHOOK_KEY": SLACK_WEBHOOK_PATH.rsplit("/", 1)[1],
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "BARE_KEY": BARE_KEY,
        "PASSWORD": PASSWORD,
        "PASSWORD (percent-encoded)": quote(PASSWORD, safe=""),
        "BASIC": BASIC,
    }


def exposed(text: str | bytes) -> list[str]:
    """The secrets of which ``text`` holds the first ``PREFIX`` characters (so a whole secret
    and one cut short both count)."""
    data = text if isinstance(text, bytes) else text.encode()
    return [name for name, s in secret_forms().items() if s[:PREFIX].encode() in data]


# --- the derived forms and cut-short messages (units) ----------------------------------------


def test_every_derived_form_of_a_secret_is_scrubbed() -> None:
    """A URL's userinfo, password (raw and percent-encoded), HTTP Basic credentials, query
    values; a whsec_'s bare key; a Slack webhook's path and last segment; a header value and the
    token of ``Bearer X``/``Basic X`` — each is replaced wherever it appears."""
    registry = Registry()
    quoted = quote(PASSWORD, safe="")
    hook = f"https://{USER}:{quoted}@hooks.example.com/in?token=Q7x9Vw2Lk3&team=growth-eu"
    slack_url = "https://hooks.slack.com" + SLACK_WEBHOOK_PATH
    registry.remember(
        [hook, WEBHOOK_SECRET, slack_url, API_KEY, "Bearer tok_8Hq2LmZ0pX", f"Basic {BASIC}"]
    )
    lowered_quote = re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted)
    echoes = {
        "url": hook,
        "userinfo": f"{USER}:{PASSWORD}",
        "encoded userinfo": f"{USER}:{quoted}",
        "password": PASSWORD,
        "percent-encoded password": quoted,
        "percent-encoded, lower hex": lowered_quote,
        "basic": f"Authorization: Basic {BASIC}",
        "basic, unpadded": BASIC.rstrip("="),
        "query value": "token=Q7x9Vw2Lk3",
        "whsec": WEBHOOK_SECRET,
        "bare key": f"key {BARE_KEY} did not verify",
        "slack path": f"no_service {SLACK_WEBHOOK_PATH}",
        "slack path, JSON-escaped": SLACK_WEBHOOK_PATH.replace("/", "\\/"),
        "slack key": f"unknown webhook {SLACK_WEBHOOK_PATH.rsplit('/', 1)[1]}",
        "api key": f"Authorization: Bearer {API_KEY}",
        "percent-encoded api key": quote(f"Bearer {API_KEY}", safe=""),
        "bearer token": "tok_8Hq2LmZ0pX",
    }
    for what, echo in echoes.items():
        scrubbed = registry.scrub(f"HTTP 401 ({echo}); check the sink")
        assert REDACTED in scrubbed, what
        for name, value in {
            "password": PASSWORD,
            "quoted": quoted,
            "quoted, lower hex": lowered_quote,
            "basic": BASIC[:PREFIX],
            "query": "Q7x9Vw2Lk3",
            "bare": BARE_KEY[:PREFIX],
            "slack": "SECRETwebhook",
            "api": API_KEY[:PREFIX],
            "bearer": "tok_8Hq2LmZ0pX",
        }.items():
            assert value not in scrubbed, (what, name, scrubbed)
    # what is not secret stays readable
    plain = "webhook sink hook (https://hooks.example.com): HTTP 401; check the sink's headers"
    assert registry.scrub(plain) == plain


def test_a_message_cut_short_leaves_no_prefix_of_a_secret() -> None:
    """Scrubbed before cutting; after cutting, a trailing fragment that begins a secret (≥ 4
    characters) is dropped; and a fragment cut inside a message (a snippet in parentheses)
    is dropped too."""
    registry = Registry()
    registry.remember([API_KEY, SLACK_TOKEN])
    for keep in range(4, 8):  # a fragment too short to be recognised before the cut
        text = f"detail: {API_KEY[:7]}, then more"
        clipped = registry.clip(text, len("detail: ") + keep + 1)
        assert clipped == "detail: …", clipped
    whole = registry.clip("x" * 20 + " Bearer " + API_KEY + " and more text after it", 40)
    assert API_KEY[:4] not in whole
    assert len(whole) <= 40
    # cut by someone else, then wrapped in more text
    cut = f"HTTP 401 (invalid token {SLACK_TOKEN[:13]}); check the token"
    assert SLACK_TOKEN[:8] not in registry.scrub(cut)
    assert registry.scrub(cut).endswith("); check the token")
    # a cut inside the marker leaves no half marker
    assert registry.clip(f"bad {API_KEY}", 9) == "bad …"


def test_errors_are_scrubbed_when_constructed() -> None:
    """Every NotifierError, whoever builds it, carries no secret the process knows."""
    secrets.remember([API_KEY])
    detail = "x" * 290 + " Bearer " + API_KEY
    error = SourceError(
        f"project 1: PostHog refused the API key (HTTP 401: {detail[:300]}); fix it",
        kind=SourceErrorKind.AUTH,
    )
    assert API_KEY[:8] not in str(error)
    assert "; fix it" in str(error)
    assert API_KEY[:4] not in str(SinkError(f"token {API_KEY}", permanent=True))


# --- end to end ------------------------------------------------------------------------------


def _slack_seen(world: World) -> str:
    return json.dumps([asdict(m) for m in world.slack.messages])


def _received(world: World) -> bytes:
    return b"\n".join(r.body for r in world.receiver.received)


def _state_files(settings: Settings) -> bytes:
    """The state database's bytes, with its WAL and journal if any."""
    path = Path(settings.state.path)
    files = [path, *path.parent.glob(path.name + "-*")]
    return b"".join(f.read_bytes() for f in files if f.is_file())


def _logged(caplog: pytest.LogCaptureFixture, settings: Settings) -> str:
    """The notifier's records as they were made, and every record as the JSON formatter (the
    production one) writes it."""
    formatter = logs.JsonFormatter(settings.secrets())
    raw = [r.getMessage() for r in caplog.records if r.name.startswith("notifier")]
    return "\n".join([*raw, *(formatter.format(r) for r in caplog.records)])


def _outbox_list(config: Path, world: World) -> str:
    result = cli("outbox", "list", "-c", str(config), env=world.env)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def _nothing_exposed(**places: str | bytes) -> None:
    found = {where: names for where, text in places.items() if (names := exposed(text))}
    assert not found, f"secrets exposed: {found}"


def _posthog_detail(cut: bool) -> str:
    """PostHog's 401 ``detail`` echoing the header; with ``cut``, the key straddles the 300
    characters the notifier keeps of a detail."""
    echo = f"Authorization: Bearer {API_KEY}"
    if cut:
        return "Invalid personal API key. " + "." * (300 - 26 - len(echo) + 12) + echo
    return f"Invalid personal API key; received {echo}"


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut-at-300"])
def test_posthog_401_echoing_the_api_key(
    world: World, load: Callable[[Path], Settings], caplog: pytest.LogCaptureFixture, cut: bool
) -> None:
    """PostHog's 401 quotes ``Authorization: Bearer phx_…``: /readyz, the outages table, the
    source_failing notices (Slack, incoming webhook, signed webhook) and the logs hold none of
    it, nor does `notifier outbox list`."""
    detail = _posthog_detail(cut)
    body = {"type": "authentication_error", "code": "authentication_failed", "detail": detail}
    world.posthog.fail_next(401, body, times=10_000)
    config = world.make_config(extra="self_alerts: {after: 0s, sinks: [slack, slack-hook, hook]}")
    settings = load(config)
    with running(settings) as notifier:
        wait_for(lambda: _received(world), what="the source_failing webhook notice")
        wait_for(lambda: len(world.slack.messages) >= 2, what="both Slack notices")

        def readyz() -> httpx.Response:
            assert notifier.http is not None
            return httpx.get(notifier.http.url + "/readyz", timeout=5)

        wait_for(lambda: "refused the API key" in readyz().text, what="/readyz naming the 401")
        ready = readyz().text
        outages = notifier.store.outages()
    assert [json.loads(r.body)["type"] for r in world.receiver.received] == [
        "notifier.source_failing"
    ]
    assert outages
    assert "HTTP 401" in outages[0].error
    _nothing_exposed(
        readyz=ready,
        outages=repr(outages),
        slack=_slack_seen(world),
        webhook=_received(world),
        state=_state_files(settings),
        outbox=_outbox_list(config, world),
        logs=_logged(caplog, settings),
    )


ROUTE = """
- name: everything
  match: {{event: [new, status_changed, updated, removed]}}
  sinks: [{sink}]
"""


def _deliver_one(
    world: World,
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    *,
    sink: str,
    sinks: str = "",
) -> tuple[Notifier, Settings, Path]:
    """A first run that notifies one new report to ``sink`` (``sinks`` is YAML for more
    sinks); drained until the entry is dead and the sink_failing notices are sent through the
    other sinks."""
    config = world.make_config(rules=ROUTE.format(sink=sink), first_run="notify")
    if sinks:
        inject(config, "sinks:\n", sinks)
    every = ", ".join(load(config).sinks)  # self-alerts to every sink, as these were written
    with config.open("a") as file:
        file.write(f"\nself_alerts: {{sinks: [{every}]}}\n")
    settings = load(config)
    notifier = notifiers.build(settings, waits=[])
    world.posthog.add_report(PROJECT, title="one")
    assert notifier.poll(PROJECT) is not None
    notifier.drain_all()
    notifier.drain_all()
    dead = notifier.store.entries("dead", sink)
    assert len(dead) == 1, notifier.store.entries("pending", sink)
    return notifier, settings, config


def _failing_notices(world: World) -> list[str]:
    return [
        b["data"]["error"] for b in world.receiver.bodies() if b["type"] == "notifier.sink_failing"
    ]


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut-at-120"])
def test_slack_error_echoing_the_token(
    world: World,
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    caplog: pytest.LogCaptureFixture,
    cut: bool,
) -> None:
    """Slack's ``error`` quotes the bot token: outbox.last_error, `notifier outbox list`, the
    sink_failing notices and the logs hold none of it (whole, or cut at the 120 characters
    kept of an error code)."""
    code = f"invalid_auth token={SLACK_TOKEN}"
    if cut:
        code = "invalid_auth " + "." * (120 - 13 - 6 - 14) + f"token={SLACK_TOKEN}"
    world.slack.fail_next(code)
    notifier, settings, config = _deliver_one(world, load, notifiers, sink="slack")
    [dead] = notifier.store.entries("dead", "slack")
    assert dead.last_error
    assert dead.last_error.startswith("invalid_auth")
    assert _failing_notices(world), "no sink_failing notice"
    _nothing_exposed(
        last_error=dead.last_error,
        slack=_slack_seen(world),
        webhook=_received(world),
        state=_state_files(settings),
        outbox=_outbox_list(config, world),
        logs=_logged(caplog, settings),
    )


BASIC_SINK = """sinks:
  basic:
    type: webhook
    url: {url}
    timeout: 2s
"""


@pytest.mark.parametrize(
    "echo",
    [
        f"bad credentials: Authorization: Basic {BASIC}",
        f"bad user {USER}:{quote(PASSWORD, safe='')}",
        "x" * 178 + f" Basic {BASIC}",  # cut at the 200 characters kept of a snippet
    ],
    ids=["basic", "userinfo", "cut"],
)
def test_webhook_echoing_basic_credentials(
    world: World,
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    caplog: pytest.LogCaptureFixture,
    echo: str,
) -> None:
    """A ``https://user:pass@host/`` webhook URL is sent as ``Authorization: Basic …``; a
    receiver that echoes it (or the userinfo) on a 401 has it dead-lettered and reported to
    Slack without the credentials anywhere."""
    port = world.receiver.url.split(":")[2].split("/")[0]
    url = f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/basic"
    world.receiver.respond_next(401, body=echo.encode())
    notifier, settings, config = _deliver_one(
        world, load, notifiers, sink="basic", sinks=BASIC_SINK.format(url=url)
    )
    sent = world.receiver.received[0]
    assert sent.headers["authorization"] == f"Basic {BASIC}"  # what a receiver can echo
    [dead] = notifier.store.entries("dead", "basic")
    assert dead.last_error
    assert "HTTP 401" in dead.last_error
    assert _failing_notices(world), "no sink_failing notice"
    assert len(world.slack.messages) >= 2, "no sink_failing notice in Slack"
    _nothing_exposed(
        last_error=dead.last_error,
        slack=_slack_seen(world),
        webhook=b"\n".join(r.body for r in world.receiver.received[1:]),
        state=_state_files(settings),
        outbox=_outbox_list(config, world),
        logs=_logged(caplog, settings),
    )


def test_webhook_echoing_the_bare_signing_key(
    world: World,
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A receiver that quotes the ``whsec_`` secret's bare base64 key on a 400: dead-lettered,
    reported to Slack, the key nowhere."""
    world.receiver.respond_next(400, body=f"signature mismatch with key {BARE_KEY}".encode())
    notifier, settings, config = _deliver_one(world, load, notifiers, sink="hook")
    [dead] = notifier.store.entries("dead", "hook")
    assert dead.last_error
    assert "HTTP 400" in dead.last_error
    assert len(world.slack.messages) >= 2, "no sink_failing notice in Slack"
    _nothing_exposed(
        last_error=dead.last_error,
        slack=_slack_seen(world),
        state=_state_files(settings),
        outbox=_outbox_list(config, world),
        logs=_logged(caplog, settings),
    )


def test_errors_written_by_an_older_version_are_scrubbed_when_read(
    world: World,
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A state file from before this fix may hold an echoed credential: `notifier outbox list`
    does not print it, and the outage restored at start does not forward it in the recovery
    notice."""
    port = world.receiver.url.split(":")[2].split("/")[0]
    url = f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/basic"
    world.receiver.respond_next(401)
    notifier, settings, config = _deliver_one(
        world, load, notifiers, sink="basic", sinks=BASIC_SINK.format(url=url)
    )
    notifiers.close(notifier)
    old = f"webhook sink basic: HTTP 401 (bad credentials: Authorization: Basic {BASIC})"
    with sqlite3.connect(settings.state.path) as conn:
        conn.execute("UPDATE outbox SET last_error = ?", (old,))
        conn.execute("UPDATE outages SET error = ?, alerted = 1", (old,))
    conn.close()
    listed = _outbox_list(config, world)
    assert "HTTP 401" in listed

    before = len(world.receiver.received)
    again = notifiers.build(settings, waits=[])
    world.posthog.add_report(PROJECT, title="two")
    assert again.poll(PROJECT) is not None
    again.drain_all()
    again.drain_all()
    recovered = [
        r.json()["data"]["error"]
        for r in world.receiver.received[before:]
        if r.path == "/hook" and r.json()["type"] == "notifier.sink_recovered"
    ]
    assert recovered
    assert "HTTP 401" in recovered[0]
    _nothing_exposed(
        outbox=listed,
        slack=_slack_seen(world),
        webhook=b"\n".join(r.body for r in world.receiver.received[before:]),
        logs=_logged(caplog, settings),
    )


def test_log_lines_are_scrubbed_of_derived_forms() -> None:
    """The log formatter hides what the registry knows, Basic credentials included (a library's
    exception text, a traceback)."""
    url = f"https://{USER}:{quote(PASSWORD, safe='')}@hooks.example.com/in"
    formatter = logs.JsonFormatter([url])
    record = logging.makeLogRecord(
        {"msg": "request failed: %s", "args": (f"Authorization: Basic {BASIC}",)}
    )
    assert BASIC[:PREFIX] not in formatter.format(record)


def test_a_reload_registers_the_new_secrets(
    world: World, load: Callable[[Path], Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key put in the config and reloaded is scrubbed from errors at once (before any
    notifier is built with it)."""
    config = world.make_config()
    current = load(config)
    new_key = "phx_rotated_Kq8Lm2Vn7Xw4Zp0"
    inject(config, "${POSTHOG_PERSONAL_API_KEY}", new_key)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    assert reloaded(config, current, Metrics()) is not None
    error = SourceError(f"HTTP 401 (Authorization: Bearer {new_key})", kind=SourceErrorKind.AUTH)
    assert new_key[:PREFIX] not in str(error)
