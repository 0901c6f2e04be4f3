"""A Slack message drawn as text, the way a person sees it in the channel: for
``notifier preview --sketch`` and ``docs/messages.md``.

Links show their label followed by ``↗``, bold markers go, entities are decoded, buttons are
drawn as ``[ Open report ]`` and the context line as a footnote. It is a sketch: it keeps what
a reader reads, in order, not Slack's exact typography.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from notifier.render.blocks import SlackMessage

_LINK: Final = re.compile(r"<([^<>|]*)\|([^<>]*)>")
_MENTION: Final = re.compile(r"<@([A-Z0-9]+)>")
_BOLD: Final = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_BAR: Final = "│ "


def sketch(message: SlackMessage) -> str:
    """The message as lines of text in a left bar, blocks separated by an empty bar line."""
    drawn = [lines for block in message.blocks if (lines := _block(block))]
    out: list[str] = []
    for number, lines in enumerate(drawn):
        if number:
            out.append(_BAR.rstrip())
        out.extend(_BAR + line for line in lines)
    return "\n".join(out)


def _block(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        return [_text(block.get("text"))]
    if kind == "section":
        lines = _text(block.get("text")).split("\n") if block.get("text") else []
        fields = [_text(f).replace("\n", ": ", 1) for f in block.get("fields") or ()]
        return lines + [" · ".join(fields[i : i + 2]) for i in range(0, len(fields), 2)]
    if kind == "context":
        return [" · ".join(_texts(block.get("elements") or ()))]
    if kind == "actions":
        return ["  ".join(_element(e) for e in block.get("elements") or ())]
    if kind == "divider":
        return ["─" * 20]
    return []


def _element(element: dict[str, Any]) -> str:
    """A button as ``[ Resolve ]``, a menu as ``[ Dismiss… ▾ ]``."""
    if element.get("type") == "static_select":
        return f"[ {_text(element.get('placeholder'))} ▾ ]"
    return f"[ {_text(element.get('text'))} ]"


def _texts(elements: Iterable[dict[str, Any]]) -> list[str]:
    return [_text(e) for e in elements if isinstance(e, dict) and e.get("text")]


def _text(obj: Any) -> str:
    """A text object's text as read: links as ``label ↗``, mentions as ``@U…``, no bold."""
    if not isinstance(obj, dict):
        return ""
    text = str(obj.get("text", ""))
    if obj.get("type") == "mrkdwn":
        text = _LINK.sub(lambda m: f"{m.group(2)} ↗", text)
        text = _MENTION.sub(lambda m: f"@{m.group(1)}", text)
        text = _BOLD.sub(lambda m: m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
