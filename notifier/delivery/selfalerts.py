"""The notifier watches itself: notices about projects it cannot poll and sinks it cannot use.

Silence about reports must never hide a broken notifier. ``SelfAlerts`` keeps, per project and
per sink, whether an outage is under way and queues a ``Notice`` through the outbox when one
begins or ends:

- a project whose polls have been failing (or are skipped while it is paused after errors) for
  ``self_alerts.after`` → ``source_failing``, once per outage; its next successful cycle →
  ``source_recovered``;
- a sink that dead-letters an entry → ``sink_failing`` at once (a dead letter is a lost
  notification already), through the OTHER self-alert sinks, once per outage; its next
  successful delivery → ``sink_recovered``.

Where notices go: the log (WARNING when failing, INFO when recovered; with ``/metrics`` and
``/readyz`` showing the same outages) always, and the sinks ``self_alerts.sinks`` names — by
default none, so an operator notice never lands in a product channel. A sink's notice names
the sink, the status and what to do, never its URL, host or port (``notice_error``).

Notices that are themselves dead-lettered do not count as sink failures, so a notice can never
cause another one. Outages are kept in the state database too: a restart (or the next
`notifier once` from cron) neither restarts the ``after`` clock nor repeats an alert, and still
reports the recovery; notice ids are deterministic, so a notice queued twice after a crash is
queued once. The daemon calls the ``poll_*`` methods and hands ``delivery_settled`` to the
``Deliverer``; nothing here raises.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from notifier.config.settings import SelfAlertSettings
from notifier.core.errors import SourceError, SourceErrorKind, StateError
from notifier.core.outbox import Notice, NoticeKind
from notifier.core.outcomes import DeliveryOutcome
from notifier.core.secrets import scrub
from notifier.render.notice import notice_timing
from notifier.state.base import StateStore
from notifier.state.store import OutageRow, OutboxEntry

log = logging.getLogger(__name__)

_SOURCE_HINTS = {
    SourceErrorKind.AUTH: "Check posthog.api_key: it must be a valid personal API key with the "
    "task:read scope and access to project {pid} (PostHog: Settings → Personal API keys).",
    SourceErrorKind.NOT_FOUND: "Check posthog.project_ids (the number in the project's URL) "
    "and posthog.host (the app's origin, not *.i.posthog.com).",
    SourceErrorKind.BAD_REQUEST: "PostHog rejected the request: check posthog.statuses and "
    "posthog.api_path.",
    SourceErrorKind.THROTTLED: "PostHog is rate limiting this key: raise poll.interval or "
    "split the projects across keys.",
    SourceErrorKind.TRANSIENT: "PostHog, or the way to it, is failing: check "
    "https://status.posthog.com and that this host reaches posthog.host. Nothing is lost: the "
    "first good cycle reports what changed in between.",
    SourceErrorKind.INVALID_RESPONSE: "Something other than PostHog's API answers (a proxy or "
    "a login page?): check posthog.host.",
}


def source_hint(exc: BaseException, project_id: int) -> str:
    """What to do about a failed cycle, by the kind of error."""
    if isinstance(exc, SourceError):
        return _SOURCE_HINTS[exc.kind].format(pid=project_id)
    if isinstance(exc, StateError):
        return (
            "The state database cannot be used: check that state.path is on a writable volume "
            "with free space."
        )
    return (
        "An internal error: the notifier's log has an ERROR with the traceback; please report "
        "it. Restarting the notifier may help meanwhile."
    )


def _sink_hint(kind: NoticeKind, sink: str) -> str:
    if kind is NoticeKind.SINK_FAILING:
        return (
            f"Fix the sink (see the error; the notifier's log names each lost notification), "
            f"then run `notifier outbox retry --sink {sink}` to send what was dead-lettered."
        )
    return (
        f"Deliveries dead-lettered during the outage are not re-sent by themselves: "
        f"`notifier outbox` lists them, `notifier outbox retry --sink {sink}` sends them."
    )


#: The address in a sink error ("webhook sink NAME (https://host:port): …"), and any URL, IP
#: address or host:port left in the text (a receiver's body may quote its own)
_SINK_ORIGIN = re.compile(r"^[\w ]*?sink \S+ \([^)]*\): ")
_ADDRESS = re.compile(
    r"(?i)\b[a-z][a-z0-9+.-]*://[^\s)>\"']+"
    r"|\[[0-9a-f:]+\](?::\d+)?"
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"
    r"|\b(?:[a-z0-9-]+\.)+[a-z0-9-]+:\d{1,5}\b"
    r"|\blocalhost:\d{1,5}\b"
)

#: Logged once when the daemon starts (not by ``once``, not on a reload) while
#: ``self_alerts.sinks`` is not set (the default changed).
UNSET_WARNING = (
    "self_alerts.sinks is not set: notices about the notifier itself (a project it cannot "
    "poll, a sink dead-lettering) go to the log, /metrics and /readyz only, no longer to every "
    "sink as before; to be told in Slack too, name an operators' sink (not a product channel) "
    "in self_alerts.sinks, or set `sinks: []` to keep them in the log and silence this warning"
)


def notice_error(error: str) -> str:
    """A sink's error as its notice shows it (to people in other channels): the sink's own
    address and any URL, IP address or host:port in the text replaced by ``<address>``. The
    log keeps the whole error."""
    return _ADDRESS.sub("<address>", _SINK_ORIGIN.sub("", error, count=1))


_RECOVERED_SOURCE_HINT = "Nothing to do: this cycle reported what changed during the outage."


@dataclass
class _Outage:
    since: float  # the first failure
    error: str  # the latest
    hint: str
    alerted: bool = False  # the failing notice was queued

    def row(self, subject: str) -> OutageRow:
        return OutageRow(subject, self.since, self.error, self.hint, self.alerted)


def _project(project_id: int) -> str:
    return f"project:{project_id}"


def _sink(name: str) -> str:
    return f"sink:{name}"


class SelfAlerts:
    """Decides when the notifier reports on itself, and queues those notices. Thread-safe."""

    def __init__(
        self,
        settings: SelfAlertSettings,
        sinks: Sequence[str],
        store: StateStore,
        *,
        wake: Callable[[Sequence[str]], None] = lambda _sinks: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.after = settings.after
        self.targets = settings.targets(sinks)
        self._store = store
        self._wake = wake
        self.clock = clock
        self._lock = threading.Lock()
        self._outages: dict[str, _Outage] = {}
        try:
            rows = store.outages()
        except StateError as exc:
            log.warning("self-alert: outages under way not read: %s", exc)
            rows = []
        for row in rows:  # kept by an older version: the error may quote a secret, an address
            error = scrub(row.error)
            error = notice_error(error) if row.subject.startswith("sink:") else error
            self._outages[row.subject] = _Outage(row.since, error, row.hint, row.alerted)

    # -- projects -------------------------------------------------------------------------

    def poll_failed(self, project_id: int, error: str, hint: str) -> None:
        """A cycle failed: start or continue the project's outage; alert once it is long."""
        # the notice names the project; the text may not come from a NotifierError: scrubbed
        error = scrub(error.removeprefix(f"project {project_id}: "))
        with self._lock:
            now, subject = self.clock(), _project(project_id)
            outage = self._outages.get(subject)
            if outage is None:
                outage = self._outages[subject] = _Outage(now, error, hint)
                self._save(subject, outage)
            else:
                outage.error, outage.hint = error, hint
            self._check_project(project_id, outage, now)

    def poll_paused(self, project_id: int) -> None:
        """A cycle was skipped while the project pauses after errors: the outage goes on."""
        with self._lock:
            outage = self._outages.get(_project(project_id))
            if outage is not None:
                self._check_project(project_id, outage, self.clock())

    def poll_succeeded(self, project_id: int) -> None:
        """A cycle succeeded: the outage, if any, is over; say so if it was reported."""
        with self._lock:
            self._recover(
                _project(project_id),
                NoticeKind.SOURCE_RECOVERED,
                self.targets,
                _RECOVERED_SOURCE_HINT,
                project_id=project_id,
            )

    def _check_project(self, project_id: int, outage: _Outage, now: float) -> None:
        if outage.alerted or now - outage.since < self.after:
            return
        self._alert(
            _project(project_id),
            outage,
            NoticeKind.SOURCE_FAILING,
            self.targets,
            now,
            project_id=project_id,
        )

    def _alert(
        self,
        subject: str,
        outage: _Outage,
        kind: NoticeKind,
        targets: Sequence[str],
        now: float,
        **who: Any,
    ) -> None:
        """Queue the failing notice of an outage; remember it was sent (else the next failure
        tries again)."""
        notice = Notice.create(
            kind, error=outage.error, since=outage.since, at=now, hint=outage.hint, **who
        )
        if self._send(notice, targets):
            outage.alerted = True
            self._save(subject, outage)

    def _recover(
        self, subject: str, kind: NoticeKind, targets: Sequence[str], hint: str, **who: Any
    ) -> None:
        """End an outage; if it was reported, queue the recovery notice first. When that cannot
        be queued (the state database failing) the outage is kept, so the next success tries
        again instead of losing the recovery."""
        outage = self._outages.get(subject)
        if outage is None:
            return
        if outage.alerted:
            notice = Notice.create(
                kind, error=outage.error, since=outage.since, at=self.clock(), hint=hint, **who
            )
            if not self._send(notice, targets):
                return
        del self._outages[subject]
        self._forget(subject)

    def _others(self, sink: str) -> tuple[str, ...]:
        """The self-alert sinks that can report about ``sink`` (not itself)."""
        return tuple(name for name in self.targets if name != sink)

    # -- sinks ----------------------------------------------------------------------------

    def delivery_settled(
        self, entry: OutboxEntry, outcome: DeliveryOutcome, error: str | None
    ) -> None:
        """The ``Deliverer`` delivered or dead-lettered an entry."""
        with self._lock:
            if outcome is DeliveryOutcome.DELIVERED:
                self._sink_delivered(entry.sink)
            elif outcome is DeliveryOutcome.DEAD and not isinstance(entry.event, Notice):
                self._sink_dead(entry.sink, notice_error(scrub(error or "dead-lettered")))

    def _sink_dead(self, sink: str, error: str) -> None:
        now, subject = self.clock(), _sink(sink)
        outage = self._outages.get(subject)
        if outage is None:
            hint = _sink_hint(NoticeKind.SINK_FAILING, sink)
            outage = self._outages[subject] = _Outage(now, error, hint)
            self._save(subject, outage)
        else:
            outage.error = error
        if not outage.alerted:
            self._alert(
                subject, outage, NoticeKind.SINK_FAILING, self._others(sink), now, sink=sink
            )

    def _sink_delivered(self, sink: str) -> None:
        self._recover(
            _sink(sink),
            NoticeKind.SINK_RECOVERED,
            self._others(sink),
            _sink_hint(NoticeKind.SINK_RECOVERED, sink),
            sink=sink,
        )

    # -- state ----------------------------------------------------------------------------

    def _save(self, subject: str, outage: _Outage) -> None:
        try:
            self._store.save_outage(outage.row(subject))
        except StateError as exc:  # kept in memory all the same
            log.warning("self-alert: outage of %s not recorded: %s", subject, exc)

    def _forget(self, subject: str) -> None:
        try:
            self._store.end_outage(subject)
        except StateError as exc:
            log.warning("self-alert: end of the outage of %s not recorded: %s", subject, exc)

    # -- sending --------------------------------------------------------------------------

    def _send(self, notice: Notice, targets: Sequence[str]) -> bool:
        """Queue the notice for ``targets`` (none: the log only), wake them and log it; False
        if it could not be queued (the state database failing: the next failure tries
        again)."""
        extra: dict[str, object] = {"event": "self_alert", "notice": notice.kind.value}
        if notice.project_id is not None:
            extra["project_id"] = notice.project_id
        if notice.sink is not None:
            extra["sink"] = notice.sink
        if notice.kind.failing:
            extra["error"] = notice.error
        try:
            # queued on the outbox's clock (the Deliverer's), not the outage clock
            if targets:
                self._store.enqueue_notice(notice, targets, time.time())
        except StateError as exc:
            log.error(
                "self-alert: cannot queue %s about %s: %s",
                notice.kind.value,
                notice.subject,
                exc,
                extra=extra,
            )
            return False
        if targets:
            self._wake(targets)
        timing = notice_timing(notice)
        timing = timing[:1].lower() + timing[1:]
        where = ", ".join(targets) or "no sink (self_alerts.sinks names none)"
        if notice.kind is NoticeKind.SOURCE_FAILING:
            log.warning(
                "self-alert: cannot poll %s (%s); told %s: %s",
                notice.subject,
                timing,
                where,
                notice.error,
                extra=extra,
            )
        elif notice.kind is NoticeKind.SINK_FAILING:
            log.warning(
                "self-alert: sink %s is dead-lettering deliveries (%s); told %s: %s",
                notice.sink,
                timing,
                where,
                notice.error,
                extra=extra,
            )
        else:
            log.info(
                "self-alert: %s works again (%s); told %s",
                notice.subject,
                timing,
                where,
                extra=extra,
            )
        return True
