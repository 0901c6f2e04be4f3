"""Logging set-up: one line per event on stderr, text or JSON, every known secret redacted.

``--log-format json`` (the default when stderr is not a terminal, e.g. in a container) writes one
JSON object per line with stable keys: ``ts``, ``level``, ``logger``, ``event``, ``message`` and,
when the event has them, ``project_id``, ``report_id``, ``sink``, ``rule``, ``duration_ms``,
``error`` (and a few more counters). Text is for people at a terminal.

Adapters never put secrets in messages on purpose; the redacting formatter is the second line of
defence for what a third-party library or an exception might echo (a URL, a header).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, Literal

from notifier.core.secrets import redact, remember, scrub
from notifier.render.text import escape_controls

LogFormat = Literal["json", "text"]

#: Everything a LogRecord carries by itself; any other attribute came from ``extra=``.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


#: This process' replica id when replicas share a PostgreSQL state (``set_replica``): every
#: line carries it (JSON: a key; text: a prefix), so that the lines of several replicas can be
#: told apart once collected.
_REPLICA: list[str] = []


def set_replica(replica: str | None) -> None:
    """Name this process' replica in every JSON log line from now on (None: no replicas)."""
    _REPLICA[:] = [replica] if replica else []


class RedactingFormatter(logging.Formatter):
    """Formats a record as usual, then replaces every secret value it knows."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%S")
        self.secrets: tuple[str, ...] = ()
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the set of values to hide (longest first, so no partial leaks); their
        derived forms (a URL's path, query and password, a whsec_'s key, Basic credentials,
        percent-encoded…) are remembered by ``core.secrets`` and scrubbed from every line."""
        found = {secret for secret in secrets if secret}
        self.secrets = tuple(sorted(found, key=len, reverse=True))
        remember(found)

    def format(self, record: logging.LogRecord) -> str:
        """The usual text, secrets replaced."""
        return scrub(redact(super().format(record), self.secrets))

    def formatMessage(self, record: logging.LogRecord) -> str:  # logging's name
        """The text line: a newline, CR, ANSI escape or bidi override in the message (a report
        id, upstream text) is written escaped (``\\n``, ``\\x1b``), so it cannot forge a line."""
        message = record.message
        replica = f"[{_REPLICA[0]}] " if _REPLICA else ""
        record.message = replica + escape_controls(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message

    def formatException(self, ei: Any) -> str:  # logging's name
        """A traceback keeps its lines; other control characters in it are escaped."""
        lines = super().formatException(ei).split("\n")
        return "\n".join(escape_controls(line) for line in lines)


class JsonFormatter(RedactingFormatter):
    """One JSON object per line: stable keys first, then whatever ``extra=`` added."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(message)s", secrets)

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line, secrets replaced."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        if _REPLICA:
            line["replica"] = _REPLICA[0]
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line:
                line[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return scrub(redact(json.dumps(line, ensure_ascii=False), self.secrets))


def setup(
    level: str = "INFO", secrets: Iterable[str] = (), fmt: LogFormat | None = None
) -> RedactingFormatter:
    """Configure the root logger once; returns the formatter so secrets can be added later.

    ``fmt`` None picks text on a terminal and JSON otherwise.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt is None:
        fmt = "text" if sys.stderr.isatty() else "json"
    formatter = (
        JsonFormatter(secrets)
        if fmt == "json"
        else RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", secrets)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "httpx", "httpcore", "urllib3", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return formatter
