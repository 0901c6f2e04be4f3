"""``reminders:`` (issue 15): announce a report again when it stays where nobody picks it up.

Each entry names a ``match`` of field conditions (as a rule's, without ``event``, ``previous``
or ``not``: it describes where the report IS), ``after`` how long the first reminder comes,
``every`` how long between the next ones (default: ``after``), ``max`` how many at most
(default 3) and the ``sinks`` that receive them. ``check_reminders`` compiles the match blocks
and checks the names on the raw document, so every problem is reported at once, like rules'.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, InstanceOf
from pydantic.json_schema import WithJsonSchema

from notifier.config.match import compile_match, unknown_sinks
from notifier.config.types import Duration, Model, SinkNames, Text
from notifier.config.yamlload import Problem
from notifier.core.reminders import Watch
from notifier.core.rules import Match

#: A reminder's ``match``: compiled by ``check_reminders`` (field conditions only).
ReminderMatch = Annotated[InstanceOf[Match], WithJsonSchema({})]


class ReminderSettings(Model):
    """One reminder: a report that stays matching ``after`` the event that put it there is
    announced again to ``sinks``, then every ``every``, at most ``max`` times."""

    name: Text
    match: ReminderMatch
    after: Duration
    every: Duration | None = Field(
        default=None, description="time between reminders after the first (default: after)"
    )
    max: int = Field(default=3, ge=1, le=100, description="how many reminders at most")
    sinks: SinkNames

    def watch(self) -> Watch:
        """The core view of this entry."""
        every = self.after if self.every is None else self.every
        return Watch(self.name, self.match, self.after, every, self.max, self.sinks)


def check_reminders(raw: dict[Any, Any]) -> tuple[dict[int, Match], list[Problem]]:
    """Names unique, sinks defined, ``match`` blocks compiled (field conditions only)."""
    problems: list[Problem] = []
    section = raw.get("reminders")
    items = section if isinstance(section, list) else []
    sinks_block = raw.get("sinks", {})
    check_sinks = isinstance(sinks_block, dict)  # else the type error says it all
    defined = [str(name) for name in sinks_block] if check_sinks else []
    matches: dict[int, Match] = {}
    names: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        loc = ("reminders", index)
        raw_name = item.get("name")
        name = raw_name.strip() if isinstance(raw_name, str) else None
        if name and name in names:
            why = f"duplicate reminder name {name!r} (also reminders[{names[name]}]); rename one"
            problems.append(((*loc, "name"), why))
        elif name:
            names[name] = index
        if check_sinks:
            problems += unknown_sinks((*loc, "sinks"), item.get("sinks"), defined)
        if "match" not in item or item["match"] is None:
            why = "required: the field conditions of the reports to remind of, like "
            problems.append(((*loc, "match"), why + "{status: pending_input}"))
            continue
        match = compile_match(item["match"], (*loc, "match"), problems, fields_only=True)
        if match is not None:
            matches[index] = match
    return matches, problems
