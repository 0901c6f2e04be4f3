"""Silences (issue 15, item 1: the model, the state and the CLI): matchers over the fields the
rules see (``=``, ``!=``, ``=~``, ``!~``, anchored like Alertmanager), parsed with errors that say
what to write; silences kept in the state (schema 9) on both backends — a real SQLite file and a
real PostgreSQL database (tests/pg.py) — listed while active and for a while after, expired by
time or by hand, with the events each held; `notifier silence add|list|expire` end to end on a
real state file; standing silences in the config (`silences:`) and `notifier check` listing them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from notifier.config.load import parse_config
from notifier.config.settings import StateSettings
from notifier.core.errors import ConfigError
from notifier.core.events import Event, EventType
from notifier.core.silences import FIELDS, Silence, new_silence_id, parse_matcher
from notifier.state.migrate import copy_state
from notifier.state.schema import SCHEMA_VERSION
from notifier.state.store import PostgresStore, Store, open_store
from tests.factories import API_KEY, new, report
from tests.helpers import cli

AnyStore = Store | PostgresStore
HOUR = 3600.0
ENV = {"POSTHOG_PERSONAL_API_KEY": API_KEY}


def silence(
    *matchers: str, start: float = 1000.0, hours: float | None = 4, **kw: object
) -> Silence:
    fields: dict[str, object] = {
        "id": new_silence_id(),
        "matchers": tuple(parse_matcher(m) for m in matchers),
        "starts_at": start,
        "ends_at": None if hours is None else start + hours * HOUR,
        "author": "alice",
        "comment": "deploy",
    }
    return Silence(**{**fields, **kw})  # type: ignore[arg-type]


# -- matchers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "op", "value"),
    [
        ("status=ready", "status", "=", "ready"),
        ("status != ready", "status", "!=", "ready"),
        ("title=~Checkout.*", "title", "=~", "Checkout.*"),
        ("title!~.*Safari", "title", "!~", ".*Safari"),
        ('title="a b, c"', "title", "=", "a b, c"),
        ("project_id=12345", "project_id", "=", "12345"),
    ],
)
def test_each_operator_parses(text: str, field: str, op: str, value: str) -> None:
    matcher = parse_matcher(text)
    assert (matcher.field, matcher.op, matcher.value) == (field, op, value)
    assert parse_matcher(str(matcher)) == matcher  # what is stored reads back the same


def test_an_unknown_field_names_the_closest_and_every_field() -> None:
    with pytest.raises(ValueError, match="unknown field") as caught:
        parse_matcher("statu=ready")
    said = str(caught.value)
    assert said.startswith("`statu=ready`: unknown field statu (did you mean status?); fields: ")
    for name in ("report_id", "project_id", "status", "event", "rule", "sink", "title"):
        assert name in said
    assert set(FIELDS) >= {"priority", "actionability", "signal_count", "summary"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("title=~(unclosed", "`title=~(unclosed`: invalid regex"),
        ("status", "`status`: not a matcher; write field=value"),
        ("=ready", "not a matcher"),
        ("status==ready", "did you mean status=ready?"),
        ("status=redy", "unknown status 'redy' (did you mean ready?); statuses: potential"),
        ("event=created", "unknown event 'created'"),
    ],
)
def test_a_bad_matcher_says_what_is_wrong_and_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_matcher(text)
    assert says in str(caught.value)


def test_matching_by_each_operator_over_report_fields() -> None:
    event = new(status="ready", title="Checkout button unresponsive", priority="P1")
    routes: tuple[str, ...] = ("ready-reports",)

    def holds(*matchers: str) -> bool:
        return silence(*matchers).matches(event, routes, "slack")

    assert holds("status=ready")
    assert not holds("status=resolved")
    assert holds("status!=resolved")
    assert not holds("status!=ready")
    assert holds("title=~Checkout.*")
    assert not holds("title=~Checkout")  # anchored: the whole value must match
    assert holds("title!~Safari.*")
    assert not holds("title!~.*button.*")
    assert holds("priority=P1", "project_id=1", f"report_id={event.report.id}")
    assert not holds("priority=P1", "project_id=2")  # every matcher must hold
    assert holds("signal_count=7")
    assert holds("total_weight=~2\\..*")
    assert holds("event=new")
    assert not holds("event=status_changed")
    assert holds("actionability=")  # a field the report lacks reads as empty, as in Alertmanager
    assert not holds("actionability!=")


def test_rule_and_sink_matchers() -> None:
    event = new()
    routes = ("ready-reports", "everything")
    assert silence("rule=everything").matches(event, routes, "slack")
    assert silence("rule=~ready-.*").matches(event, routes, "slack")
    assert not silence("rule=other").matches(event, routes, "slack")
    assert not silence("rule!=everything").matches(event, routes, "slack")
    assert silence("rule!=other").matches(event, routes, "slack")
    assert silence("sink=slack").matches(event, routes, "slack")
    assert not silence("sink=slack").matches(event, routes, "webhook")
    assert silence("sink!~slack.*").matches(event, routes, "webhook")


def test_active_and_described() -> None:
    s = silence("status=ready", "title=~Checkout.*")
    assert not s.active(999.0)
    assert s.active(1000.0)
    assert s.active(1000.0 + 4 * HOUR - 1)
    assert not s.active(1000.0 + 4 * HOUR)
    assert s.describe() == "status=ready, title=~Checkout.* · 4 h by alice: 'deploy'"
    standing = silence("project_id=1", hours=None, origin="config", author="config")
    assert standing.active(10**10)
    assert standing.describe().endswith("· standing (config): 'deploy'")
    by_hand = silence("status=ready", expired_at=2000.0)
    assert not by_hand.active(2000.0)
    assert by_hand.active(1999.0)


def test_a_removed_event_matches_on_the_last_known_copy() -> None:
    gone = Event.create(EventType.REMOVED, 7, report(status="ready"), None, {})
    assert silence("event=removed", "project_id=7", "status=ready").matches(gone, (), "slack")


# -- the state, on both backends ------------------------------------------------------------------


def test_store_adds_lists_expires_and_counts(store: AnyStore) -> None:
    """Added silences read back whole; the list holds the active ones and those that ended
    within ``recent``; expiring by hand works once; held counts add up."""
    a = silence("status=ready", "title=~Checkout.*", start=1000.0, hours=4, drop=True)
    b = silence("project_id=12345", start=1001.0, hours=1)
    assert store.add_silence(a) == a.id
    assert a.id.startswith("sil_")
    assert len(a.id) == 16
    store.add_silence(b)
    assert [s.id for s in store.silences(1500.0)] == [a.id, b.id]
    read = store.silence(a.id)
    assert read == a  # every field, matchers included

    # b ends by time at 1000 + 1 h: still listed for `recent`, no longer active
    later = 1000.0 + 2 * HOUR
    listed = {s.id: s for s in store.silences(later)}
    assert set(listed) == {a.id, b.id}
    assert listed[a.id].active(later)
    assert not listed[b.id].active(later)
    assert [s.id for s in store.silences(later, recent=60)] == [a.id]

    assert store.expire_silence(a.id, later)
    assert not store.expire_silence(a.id, later + 1)  # already over
    assert not store.expire_silence(b.id, later)  # ended by itself
    assert not store.expire_silence("sil_000000000000", later)  # unknown
    gone = store.silence(a.id)
    assert gone is not None
    assert gone.expired_at == later
    assert not gone.active(later)

    store.count_held(b.id, 3)
    store.count_held(b.id, 2)
    assert store.silence(b.id).held == 5  # type: ignore[union-attr]
    assert [s.id for s in store.silences(later + 2 * 86400)] == []


def test_a_schema_8_database_gains_the_silences_table(state_settings: StateSettings) -> None:
    """Schema 9 adds the silences to a database written before it, keeping what it held."""
    store = open_store(state_settings)
    store.close()
    if state_settings.url is None:
        with sqlite3.connect(state_settings.path) as conn:
            conn.execute("DROP TABLE silences")
            conn.execute("PRAGMA user_version = 8")
    else:
        with psycopg.connect(state_settings.url) as conn:
            conn.execute("DROP TABLE silences")
            conn.execute("UPDATE schema_version SET version = 8")
    again = open_store(state_settings)
    try:
        assert again.schema_version() == SCHEMA_VERSION == 10
        s = silence("status=ready")
        again.add_silence(s)
        assert again.silences(1001.0) == [s]
    finally:
        again.close()


def test_state_migrate_carries_the_silences_into_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    source = Store(tmp_path / "s.db")
    kept = silence("status=ready", start=1000.0)
    source.add_silence(kept)
    source.count_held(kept.id, 4)
    source.add_silence(silence("project_id=1", start=1000.0, expired_at=1200.0))
    target = PostgresStore(postgres_url)
    try:
        copied = {c.table: c for c in copy_state(source, target).tables}
        assert (copied["silences"].rows, copied["silences"].written) == (2, 2)
        assert target.silences(1500.0) == source.silences(1500.0)
        assert target.silence(kept.id).held == 4  # type: ignore[union-attr]
        assert {c.table: c for c in copy_state(source, target).tables}["silences"].written == 0
    finally:
        source.close()
        target.close()


# -- the CLI, on a real state file -------------------------------------------------------------


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "posthog:\n  host: https://us.posthog.com\n  api_key: ${POSTHOG_PERSONAL_API_KEY}\n"
        f"  project_ids: [1]\nstate:\n  path: {tmp_path / 'state.db'}\n{extra}"
    )
    return config


def test_cli_add_list_expire_list(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    added = cli(
        "silence", "add", "-c", config, "status=ready", "title=~Checkout.*",
        "--for", "4h", "--comment", "deploy", "--author", "alice",
        env=ENV,
    )  # fmt: skip
    assert added.returncode == EXIT_OK, added.stderr
    sid = added.stdout.split()[1]
    assert sid.startswith("sil_"), added.stdout
    assert "status=ready, title=~Checkout.* · 4 h by alice: 'deploy'" in added.stdout
    assert "ends " in added.stdout
    assert "(in 4 h)" in added.stdout

    listed = cli("silence", "list", "-c", config, env=ENV)
    assert listed.returncode == EXIT_OK, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split() == ["ID", "MATCHERS", "ENDS", "BY", "COMMENT", "HELD", "STATE"]
    assert row.startswith(sid)
    assert "in 3h 59m" in row
    assert "alice" in row
    assert row.split()[-2:] == ["0", "active"]

    expired = cli("silence", "expire", "-c", config, sid, env=ENV)
    assert expired.returncode == EXIT_OK, expired.stderr
    assert f"silence {sid} expired" in expired.stdout
    again = cli("silence", "list", "-c", config, env=ENV)
    row = next(line for line in again.stdout.splitlines() if line.startswith(sid))
    assert "ended 0m ago" in row
    assert row.rstrip().endswith("expired by hand")

    unknown = cli("silence", "expire", "-c", config, "sil_ffffffffffff", env=ENV)
    assert unknown.returncode == EXIT_FAILURE
    assert "no active silence sil_ffffffffffff" in unknown.stderr
    assert "`notifier silence list`" in unknown.stderr


def test_cli_add_refuses_a_bad_matcher_or_duration(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    bad = cli("silence", "add", "-c", config, "statu=ready", "--for", "1h", "-m", "x", env=ENV)
    assert bad.returncode == EXIT_USAGE
    assert "`statu=ready`: unknown field statu (did you mean status?)" in bad.stderr
    worse = cli("silence", "add", "-c", config, "status=ready", "--for", "soon", "-m", "x", env=ENV)
    assert worse.returncode == EXIT_USAGE
    assert "--for 'soon': invalid duration" in worse.stderr
    assert not (tmp_path / "state.db").exists()  # nothing stored, nothing created


def test_cli_list_without_a_state_creates_nothing(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    listed = cli("silence", "list", "-c", config, env=ENV)
    assert listed.returncode == EXIT_FAILURE
    assert "no state at" in listed.stdout
    gone = cli("silence", "expire", "-c", config, "sil_ffffffffffff", env=ENV)
    assert gone.returncode == EXIT_FAILURE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


# -- the config's standing silences, and check ----------------------------------------------------

STANDING = """silences:
  - matchers: ["project_id=12345"]
    comment: project under construction
"""


def test_config_silences_are_validated_with_their_key_path(tmp_path: Path) -> None:
    config = write_config(tmp_path, STANDING)
    settings = parse_config(config.read_text(), source=str(config), env=ENV)
    (standing,) = settings.silences
    s = standing.silence(0)
    assert (s.id, s.origin, s.ends_at, s.author) == ("config:1", "config", None, "config")
    assert s.matches(new(), (), "slack") is False
    bad = STANDING.replace("project_id=12345", "projekt=1") + "  - comment: none\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(write_config(tmp_path, bad).read_text(), source="c.yaml", env=ENV)
    said = str(caught.value)
    assert "silences[0].matchers[0]" in said
    assert "unknown field projekt" in said
    assert "silences[1].matchers" in said


def test_check_lists_active_silences_from_config_and_state(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, STANDING))
    checked = cli("check", "-c", config, env=ENV)
    assert checked.returncode == EXIT_OK, checked.stderr
    assert "Silences 1 active" in checked.stdout
    assert "config:1" in checked.stdout
    assert "project under construction" in checked.stdout
    assert not (tmp_path / "state.db").exists()  # check creates no state
    added = cli(
        "silence", "add", "-c", config, "status=ready", "--for", "2h", "-m", "deploy", env=ENV
    )
    assert added.returncode == EXIT_OK, added.stderr
    checked = cli("check", "-c", config, env=ENV)
    assert "Silences 2 active" in checked.stdout
    assert "status=ready · 2 h by" in checked.stdout


def test_the_example_config_documents_silences() -> None:
    text = (Path(__file__).parent.parent / "config.example.yaml").read_text()
    for key in ("silences", "matchers", "comment"):
        assert f"# {key}:" in text or f"#   - {key}:" in text or f"#     {key}:" in text, key
    block = text.split("# silences:\n", 2)[-1].split("\n\n")[0]
    raw = "\n".join(line.removeprefix("#").removeprefix(" ") for line in block.splitlines())
    settings = parse_config(
        "posthog:\n  host: https://us.posthog.com\n  api_key: ${POSTHOG_PERSONAL_API_KEY}\n"
        f"  project_ids: [1]\nsilences:\n{raw}\n",
        source="example",
        env=ENV,
    )
    assert [s.comment for s in settings.silences] == [
        "project under construction",
        "only P0 and P1 page",
    ]
