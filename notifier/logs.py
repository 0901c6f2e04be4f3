"""Logging set-up: readable lines on stderr, with every known secret redacted.

Adapters never put secrets in messages on purpose; the redacting formatter is the second line of
defence for what a third-party library or an exception might echo (a URL, a header).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

REDACTED = "[redacted]"


class RedactingFormatter(logging.Formatter):
    """Formats a record as usual, then replaces every secret value it knows."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%S")
        self.secrets: tuple[str, ...] = ()
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the set of values to hide (longest first, so no partial leaks), with the
        parts that leak on their own: a URL's path, query and password, a whsec_'s key."""
        found = {part for secret in secrets if secret for part in _parts(secret)}
        self.secrets = tuple(sorted(found, key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        """The usual text, secrets replaced."""
        return redact(super().format(record), self.secrets)


def _parts(secret: str) -> Iterator[str]:
    yield secret
    if secret.startswith("whsec_") and len(secret) > 12:
        yield secret.removeprefix("whsec_")
    if "://" not in secret:
        return
    try:
        parts = urlsplit(secret)
        password = parts.password
    except ValueError:
        return
    for part in (parts.path, parts.path.lstrip("/"), parts.query, password):
        if part and len(part) >= 8 and part.strip("/"):
            yield part


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``[redacted]``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def setup(level: str = "INFO", secrets: Iterable[str] = ()) -> RedactingFormatter:
    """Configure the root logger once; returns the formatter so secrets can be added later."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", secrets)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "httpx", "httpcore", "urllib3", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return formatter
