"""Looking into a Slack message the way a reviewer would: its texts and blocks, and the
Block Kit limits and escaping every message must hold."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from notifier.render.blocks import SlackMessage


def texts(message: SlackMessage) -> list[str]:
    """Every text string of the card, in order."""
    found: list[str] = [message.text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk(list(message.blocks))
    return found


def block(message: SlackMessage, kind: str, index: int = 0) -> dict[str, Any]:
    return [b for b in message.blocks if b["type"] == kind][index]


def field_texts(message: SlackMessage) -> list[str]:
    [fields] = [b["fields"] for b in message.blocks if "fields" in b]
    return [f["text"] for f in fields]


def section_texts(message: SlackMessage) -> list[str]:
    return [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]


#: The only ``<…>`` a message may hold: a link this notifier built to the PostHog host.
OWN_LINK = re.compile(r"<https://us\.posthog\.com/[^<>|\s]*\|[^<>]+>")


def assert_no_raw_markup(message: SlackMessage) -> None:
    """No mention, channel link or disguised link survives: every ``<`` opens one of our links."""
    for text in texts(message):
        rest = OWN_LINK.sub("", text)
        assert "<" not in rest, text
        assert ">" not in rest, text


def assert_block_kit_limits(message: SlackMessage) -> None:
    """Every documented Block Kit limit, with Slack's ~13k total size as 12k."""
    blocks = json.loads(json.dumps(list(message.blocks)))
    assert 0 < len(message.text) <= 40_000
    assert 0 < len(blocks) <= 50
    assert len(json.dumps(blocks, ensure_ascii=False)) <= 12_000
    for b in blocks:
        if b["type"] == "header":
            assert b["text"]["type"] == "plain_text"
            assert 0 < len(b["text"]["text"]) <= 150
        elif b["type"] == "section":
            assert "text" in b or "fields" in b
            if "text" in b:
                assert 0 < len(b["text"]["text"]) <= 3000
            if "fields" in b:
                assert 0 < len(b["fields"]) <= 10
                assert all(0 < len(f["text"]) <= 2000 for f in b["fields"])
        elif b["type"] == "context":
            assert 0 < len(b["elements"]) <= 10
            assert all(0 < len(e["text"]) <= 2000 for e in b["elements"])
        elif b["type"] == "actions":
            assert 0 < len(b["elements"]) <= 25
            for button in b["elements"]:
                assert 0 < len(button["text"]["text"]) <= 75
                assert 0 < len(button["url"]) <= 3000
        else:
            pytest.fail(f"unexpected block type {b['type']}")
