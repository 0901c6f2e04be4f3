"""PostHog's own Slack notifications, told apart from ours: PostHog posts one card per ready,
actionable report to a project's ``default_slack_notification_channel`` when one is set
(``GET /api/projects/{pid}/signals/config/``, today's PostHog). With a Slack sink here as well,
the team reads every such report twice. Once per project and process, after its first good
cycle, the daemon asks (one request, within the budget) and says so in one WARNING; it never
fails a cycle, and servers before V6 (404) are not asked again. ``notifier check --online``
asks the same question (``posthog_posts_to_slack``).
"""

from __future__ import annotations

import logging
from typing import Any

from notifier.config.settings import Settings
from notifier.core.errors import SourceError
from notifier.posthog.client import PostHogClient

log = logging.getLogger(__name__)


def slack_sinks(settings: Settings) -> list[str]:
    """The sinks that post to Slack."""
    return sorted(s.name for s in settings.sinks.values() if s.payload == "slack")


def posthog_posts_to_slack(
    project_id: int, config: dict[str, Any] | None, slack: list[str]
) -> str | None:
    """The warning for a project whose signals ``config`` has PostHog post to Slack while
    ``slack`` sinks announce reports here too; None when there is nothing to say."""
    channel = (config or {}).get("default_slack_notification_channel")
    if not channel or not slack:
        return None
    return (
        f"project {project_id}: PostHog itself posts ready, actionable reports to Slack channel "
        f"{str(channel)[:80]} (Signals settings in PostHog), and this notifier's Slack sinks "
        f"({', '.join(slack)}) announce them too: people read each one twice. Turn PostHog's "
        "channel off, or route ready reports elsewhere here"
    )


class DoubleCards:
    """Asks each project's signals config once, and warns when PostHog posts to Slack too."""

    def __init__(self, settings: Settings, source: PostHogClient) -> None:
        self._source = source
        self._slack = slack_sinks(settings)
        self._asked: set[int] = set()

    def check(self, project_id: int) -> None:
        """After the project's first good cycle of this process: one request, one WARNING when
        PostHog announces its reports in Slack as well."""
        if project_id in self._asked or not self._slack:
            return
        self._asked.add(project_id)
        try:
            config = self._source.signals_config(project_id)
        except SourceError as exc:
            log.debug("project %s: signals config not read: %s", project_id, exc)
            return
        warning = posthog_posts_to_slack(project_id, config, self._slack)
        if warning:
            log.warning(
                "%s", warning, extra={"event": "posthog_notifies_slack", "project_id": project_id}
            )
