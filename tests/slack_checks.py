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
            assert len(b.get("block_id", "")) <= 255
            for element in b["elements"]:
                _assert_element_limits(element)
        else:
            pytest.fail(f"unexpected block type {b['type']}")


def _assert_element_limits(element: dict[str, Any]) -> None:
    """A link button, an action button or a static_select (with its confirm dialog)."""
    assert 0 < len(element["action_id"]) <= 255
    if element["type"] == "button":
        assert 0 < len(element["text"]["text"]) <= 75
        assert "url" in element or "value" in element
        assert 0 < len(element.get("url", "x")) <= 3000
        assert len(element.get("value", "")) <= 2000
    elif element["type"] == "static_select":
        assert 0 < len(element["placeholder"]["text"]) <= 150
        assert 0 < len(element["options"]) <= 100
        for option in element["options"]:
            assert 0 < len(option["text"]["text"]) <= 75
            assert 0 < len(option["value"]) <= 150
    else:
        pytest.fail(f"unexpected element type {element['type']}")
    if "confirm" in element:
        confirm = element["confirm"]
        assert 0 < len(confirm["title"]["text"]) <= 100
        assert 0 < len(confirm["text"]["text"]) <= 300
        assert 0 < len(confirm["confirm"]["text"]) <= 30
        assert 0 < len(confirm["deny"]["text"]) <= 30
