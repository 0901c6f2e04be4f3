"""Slack Block Kit's pieces and limits: the message (``SlackMessage``), text objects, sections,
headers, contexts, links, and ``fit`` that drops the least important blocks until a message is
within Slack's limits. Texts given here are already escaped unless a function says it escapes.
Shared by the report card (``render.slack``), digests and notices.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from notifier.render.text import (
    escape_mrkdwn,
    escape_text,
    escape_truncate,
    one_line,
    status_colour,
    status_text,
    truncate,
)

# Block Kit limits (docs.slack.dev/reference/block-kit/blocks), with a margin where Slack
# counts differently from Python (it has rejected ~13k characters of blocks in total).
MAX_BLOCKS: Final = 50
MAX_HEADER: Final = 150
MAX_SECTION_TEXT: Final = 3000
MAX_FIELDS: Final = 10
MAX_FIELD_TEXT: Final = 2000
MAX_CONTEXT_ELEMENTS: Final = 10
MAX_BUTTON_TEXT: Final = 75
MAX_URL: Final = 3000
MAX_BLOCKS_JSON: Final = 11_000
BLOCK_KIT_BUILDER: Final = "https://app.slack.com/block-kit-builder#"

_STATUS_CHARS: Final = 30
LINK_URL_CHARS: Final = 1000  # a link inside mrkdwn (Read more, recordings, digest lines)
_URL_SAFE: Final = ":/?#[]@!$&'()*+,;=%-._~"  # `|` and spaces get quoted


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """What ``chat.postMessage`` or an incoming webhook receives: fallback text and blocks."""

    text: str
    blocks: tuple[dict[str, Any], ...]

    def blocks_json(self) -> str:
        """The blocks as Slack will count them (characters, not bytes)."""
        return json.dumps(list(self.blocks), ensure_ascii=False, separators=(",", ":"))


def block_kit_builder_url(message: SlackMessage) -> str:
    """A link that opens the message's blocks in Slack's Block Kit Builder (for previews):
    the builder reads percent-encoded ``{"blocks": [...]}`` JSON from the URL fragment."""
    payload = json.dumps(
        {"blocks": list(message.blocks)}, ensure_ascii=False, separators=(",", ":")
    )
    return BLOCK_KIT_BUILDER + quote(payload, safe=",:")


def fit(
    text: str, ranked: Sequence[tuple[int, dict[str, Any] | None]], *, minimal: list[dict[str, Any]]
) -> SlackMessage:
    """The message from the blocks in order, dropping the highest ranks first (rank 0 never)
    until the blocks' JSON fits ``MAX_BLOCKS_JSON``; ``minimal`` if even that is too big."""
    kept = [(rank, b) for rank, b in ranked if b is not None]
    droppable = sorted({rank for rank, _ in kept if rank > 0}, reverse=True)
    while True:
        message = SlackMessage(text=text, blocks=tuple(b for _, b in kept)[:MAX_BLOCKS])
        if len(message.blocks_json()) <= MAX_BLOCKS_JSON:
            return message
        if not droppable:
            return SlackMessage(text=text, blocks=tuple(minimal))
        rank = droppable.pop(0)
        kept = [(r, b) for r, b in kept if r != rank]


def safe_url(url: str, limit: int = MAX_URL) -> str | None:
    """``url`` percent-encoded where odd characters would break it (``|``, ``>``, spaces …);
    None when longer than ``limit``. Safe inside ``<url|label>``."""
    encoded = quote(url, safe=_URL_SAFE)
    return encoded if len(encoded) <= limit else None


def link(url: str | None, label: str) -> str:
    """``<url|label>`` (``label`` already escaped), or just the label when there is no URL."""
    escaped = escape_mrkdwn(url) if url is not None else ""
    return f"<{escaped}|{label}>" if 0 < len(escaped) <= LINK_URL_CHARS else label


def status_word(status: str) -> str:
    """A status in words as escaped text, one short line (``Ready for review``)."""
    return escape_text(truncate(status_text(status), _STATUS_CHARS))


def coloured(status: str) -> str:
    """``🟡 Researching``: the colour and the escaped status word."""
    return f"{status_colour(status)} {status_word(status)}"


def plain(text: str) -> dict[str, Any]:
    """A ``plain_text`` object (emoji rendered)."""
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    """A ``mrkdwn`` text object."""
    return {"type": "mrkdwn", "text": text}


def section(text: str) -> dict[str, Any]:
    """A section of mrkdwn ``text`` (already escaped), cut to Slack's limit."""
    return {"type": "section", "text": mrkdwn(truncate(text, MAX_SECTION_TEXT))}


def lines_section(lines: Sequence[str]) -> dict[str, Any] | None:
    """A section of whole lines, leaving out those past Slack's limit (never half a link)."""
    kept: list[str] = []
    size = -1
    for line in lines:
        size += 1 + len(line)
        if size > MAX_SECTION_TEXT:
            break
        kept.append(line)
    return section("\n".join(kept)) if kept else None


def header_block(text: str) -> dict[str, Any]:
    """A header of raw text: escaped and cut to 150 characters."""
    return {"type": "header", "text": plain(escape_truncate(one_line(text), MAX_HEADER))}


def context_block(elements: Sequence[str]) -> dict[str, Any] | None:
    """A context of mrkdwn texts (already escaped), or None when there are none."""
    items = [mrkdwn(truncate(e, MAX_FIELD_TEXT)) for e in elements if e][:MAX_CONTEXT_ELEMENTS]
    return {"type": "context", "elements": items} if items else None
