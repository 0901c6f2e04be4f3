"""Keeping secrets out of text: the one redaction every part of the notifier uses (log lines,
sink error messages, snippets of a receiver's answer)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

REDACTED: Final = "[redacted]"
#: Shorter values are not redacted: replacing every "ab" in a text would garble it, and no
#: credential is that short.
MIN_SECRET_LENGTH: Final = 4


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``[redacted]``, the longest first (so that no
    part of a longer secret that contains a shorter one is left behind)."""
    for secret in sorted(
        {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
    ):
        text = text.replace(secret, REDACTED)
    return text
