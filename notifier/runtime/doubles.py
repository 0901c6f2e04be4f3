"""PostHog's own Slack notifications, told apart from ours: PostHog posts one card per ready,
actionable report to a project's ``default_slack_notification_channel`` when one is set
(``GET /api/projects/{pid}/signals/config/``, today's PostHog). With a Slack sink here as well,
the team reads every such report twice. Once per project and process, after its first good
cycle, the notifier asks (one request, within the budget) and says so in one WARNING; it never
fails a cycle, and servers before V6 (404) are not asked again.
"""

from __future__ import annotations

import logging

from notifier.config.settings import Settings
from notifier.core.errors import SourceError
from notifier.posthog.client import PostHogClient

log = logging.getLogger(__name__)


class DoubleCards:
    """Asks each project's signals config once, and warns when PostHog posts to Slack too."""

    def __init__(self, settings: Settings, source: PostHogClient) -> None:
        self._source = source
        self._slack = sorted(s.name for s in settings.sinks.values() if s.payload == "slack")
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
        channel = (config or {}).get("default_slack_notification_channel")
        if channel:
            log.warning(
                "project %s: PostHog itself posts ready, actionable reports to Slack channel %s "
                "(Signals settings in PostHog), and this notifier's Slack sinks (%s) announce "
                "them too: people read each one twice. Turn PostHog's channel off, or route "
                "ready reports elsewhere here",
                project_id,
                str(channel)[:80],
                ", ".join(self._slack),
                extra={"event": "posthog_notifies_slack", "project_id": project_id},
            )
