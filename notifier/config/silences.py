"""``silences:``: standing silences written in the config (issue 15), e.g. a project under
construction. Each is matchers (``core.silences.parse_matcher``: an error names its key path and
the fix) and a comment; it holds until removed from the config, and what it holds is dropped
(it never ends by itself, so there is no digest to send). Silences with an end are added with
`notifier silence add` and kept in the state.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from notifier.config.types import Model, Text, listify
from notifier.core.silences import Silence, parse_matcher


def _matcher(text: str) -> str:
    return str(parse_matcher(text))


Matchers = Annotated[
    tuple[Annotated[str, AfterValidator(_matcher)], ...],
    BeforeValidator(listify),
    Field(
        min_length=1,
        description="all must hold: field=value, field!=value, field=~regex, field!~regex over "
        "report_id, project_id, event, rule, sink, status, title, priority…",
    ),
]


class SilenceSettings(Model):
    """One standing silence."""

    matchers: Matchers
    comment: Text

    def silence(self, index: int) -> Silence:
        """The silence, as the delivery and `notifier silence list` see it: ``config:N`` (N
        from 1, in config order), no end, always dropping what it holds."""
        return Silence(
            id=f"config:{index + 1}",
            matchers=tuple(parse_matcher(text) for text in self.matchers),
            starts_at=0.0,
            ends_at=None,
            author="config",
            comment=self.comment,
            drop=True,
            origin="config",
        )
