"""Readable text on a terminal (or any text stream): what ``notifier demo`` prints."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from notifier.config.settings import ConsoleSinkSettings
from notifier.core.errors import SinkError
from notifier.core.outbox import Delivery, Notice, digest_events, held_note
from notifier.core.report import Links
from notifier.render import console_text, notice_console_text
from notifier.render.held import held_text


def wants_color(stream: TextIO) -> bool:
    """Colour for an interactive terminal, unless ``NO_COLOR`` is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):
        return False


class ConsoleSink:
    """Prints each delivery as a block of text followed by a blank line."""

    def __init__(
        self,
        settings: ConsoleSinkSettings,
        links: Links,
        stream: TextIO | None = None,
        color: bool | None = None,
    ) -> None:
        self.name = settings.name
        self._links = links
        self._stream = stream if stream is not None else sys.stdout
        self._color = wants_color(self._stream) if color is None else color

    @property
    def digest_after(self) -> int:
        """Never a digest of many events; only what a silence or quiet hours held comes
        together, under the words that say so."""
        return 0

    def send(self, delivery: Delivery) -> None:
        """Write and flush; a closed or broken stream is a transient failure."""
        event = delivery.event
        if isinstance(event, Notice):  # the notifier's own notice (self_alerts)
            self._write(notice_console_text(event, color=self._color))
        else:
            self._write(console_text(event, delivery.rules, self._links, color=self._color))

    def send_digest(self, deliveries: Sequence[Delivery]) -> None:
        """What a silence or quiet hours held: their words and summary, then each event."""
        events, held = digest_events(deliveries), held_note(deliveries)
        texts = [held_text(held, events)] if held is not None else []
        texts += [console_text(e, rules, self._links, color=self._color) for e, rules in events]
        self._write("\n\n".join(texts))

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text + "\n\n")
            self._stream.flush()
        except (OSError, ValueError) as exc:
            raise SinkError(
                f"console sink {self.name}: cannot write: {type(exc).__name__}", permanent=False
            ) from exc

    def close(self) -> None:
        """The stream belongs to the caller: only flush it."""
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()
