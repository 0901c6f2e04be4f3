"""docs/messages.md shows what people read: for each built-in sample, the output of
``notifier preview -c docs/messages.yaml --sample NAME --sink product-channel --sketch`` (the
sketch part), and a digest of all of them. This test keeps the page true to the code; under
``UPDATE_GOLDEN=1`` it rewrites the drawings in place instead (review the diff).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.cli.preview import run_preview
from notifier.cli.samples import SAMPLES
from notifier.config.load import load_config
from notifier.core.events import EventType
from notifier.core.report import Links
from notifier.render import digest_message
from notifier.render.sketch import sketch

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = DOCS / "messages.md"
CONFIG = DOCS / "messages.yaml"
SINK = "product-channel"
WHEN = datetime(2026, 1, 15, 16, 40, 11, tzinfo=UTC)

#: A marker, then (once generated) its fenced drawing.
_BLOCK = re.compile(r"<!-- (sample: (?P<name>[\w-]+)|digest) -->\n(?:\n```text\n.*?\n```\n)?", re.S)


def preview_sketch(name: str) -> str:
    """The drawing `notifier preview --sample NAME --sink product-channel --sketch` prints."""
    out = io.StringIO()
    settings = load_config(CONFIG)
    run_preview(settings, out, sample_name=name, sink_name=SINK, now=WHEN, sketch=True)
    drawing = [line for line in out.getvalue().splitlines() if line.startswith("│")]
    assert drawing, out.getvalue()
    return "\n".join(drawing)


def digest_sketch() -> str:
    settings = load_config(CONFIG)
    project = settings.posthog.project_ids[0]
    events = []
    for sample in SAMPLES:
        event = sample.event(project)
        if event.type is not EventType.REMOVED:
            event = replace(event, enrichment=sample.enrichment)
        events.append((event, ("ready for the team",)))
    return sketch(digest_message(events, Links(settings.posthog.host)))


def command(name: str) -> str:
    return f"$ notifier preview -c docs/messages.yaml --sample {name} --sketch"


def rendered(page: str) -> str:
    """The page with every drawing as the code draws it today."""

    def block(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            body = "# a digest of the nine samples (most important first)\n" + digest_sketch()
            return f"<!-- digest -->\n\n```text\n{body}\n```\n"
        body = f"{command(name)}\n{preview_sketch(name)}"
        return f"<!-- sample: {name} -->\n\n```text\n{body}\n```\n"

    return _BLOCK.sub(block, page)


def test_every_sample_has_its_section() -> None:
    """Each built-in sample (one per status a team meets) is on the page, and the digest."""
    page = PAGE.read_text(encoding="utf-8")
    for sample in SAMPLES:
        assert f"<!-- sample: {sample.name} -->" in page, sample.name
    assert "<!-- digest -->" in page


def test_the_page_shows_what_preview_draws() -> None:
    """The drawings on docs/messages.md are today's `notifier preview --sketch` output."""
    page = PAGE.read_text(encoding="utf-8")
    expected = rendered(page)
    if os.environ.get("UPDATE_GOLDEN"):
        PAGE.write_text(expected, encoding="utf-8")
        return
    if page != expected:
        pytest.fail(
            "docs/messages.md differs from what `notifier preview --sketch` draws; regenerate "
            "with UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_messages_doc.py and review",
            pytrace=False,
        )


def test_a_drawing_shows_what_a_reader_needs() -> None:
    """The ready card, drawn: title, status in words, priority and what to do, evidence in
    words, the reasons, the recording, the buttons, and the footnote last."""
    lines = preview_sketch("ready").splitlines()
    text = "\n".join(lines)
    assert lines[0] == "│ 🟢 Pricing page toggle confuses annual vs monthly"
    assert "│ 🟢 Ready for review · research finished, decide whether to act" in lines
    assert "│ Priority P2 · medium · Act now" in lines
    assert "│ 3 signals, weight 0.8 · 12 users" in lines
    assert "│ [ Open report ]  [ Watch recording ]" in lines
    assert lines[-1].startswith("│ Project 12345 · Rule: ready for the team · Report ")
    assert "<" not in text
    assert "*" not in text
    assert "in_progress" not in text
