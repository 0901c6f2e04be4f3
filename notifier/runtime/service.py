"""`notifier run`: the daemon's process life — signals, the stop grace, configuration reloads.

The main thread takes the signals; the notifier runs in a ``Runner`` thread. SIGTERM/SIGINT
stop it (in-flight work gets a grace period, then is abandoned: nothing is lost, since an
unsaved cycle is redone and an unconfirmed delivery re-sent on the next start). SIGHUP — or a
change to the file with ``--watch-config`` — reloads the YAML: an invalid file is logged and
the running configuration stays; a valid one replaces it between cycles, keeping the state and
every pending delivery (they live in the state database) and the metrics registry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from notifier.config.load import load_config
from notifier.config.settings import Settings
from notifier.core.errors import ConfigError
from notifier.core.explain import rule_changes
from notifier.core.secrets import remember
from notifier.posthog.budget import RequestBudget
from notifier.runtime import logs
from notifier.runtime.daemon import Notifier
from notifier.runtime.metrics import Metrics

log = logging.getLogger("notifier")

EXIT_OK = 0


#: After SIGTERM/SIGINT, how long in-flight work may take before it is abandoned: under the 10 s
#: `docker stop` waits before its SIGKILL. ``NOTIFIER_STOP_GRACE`` (seconds) overrides it, e.g.
#: for Kubernetes' longer ``terminationGracePeriodSeconds``.
STOP_GRACE_SECONDS = 8.0


def _stop_grace() -> float:
    raw = os.environ.get("NOTIFIER_STOP_GRACE", "")
    try:
        grace = float(raw) if raw.strip() else STOP_GRACE_SECONDS
    except ValueError:
        grace = -1.0
    if not 0 < grace < 86400:
        log.warning(
            "NOTIFIER_STOP_GRACE=%r is not a number of seconds; using %g", raw, STOP_GRACE_SECONDS
        )
        return STOP_GRACE_SECONDS
    return grace


class Runner(threading.Thread):
    """One ``Notifier.run`` in a thread, so the main thread can take signals and reloads; an
    exception it raises (e.g. http.listen taken) is handed back to the main thread."""

    def __init__(self, notifier: Notifier) -> None:
        super().__init__(name="notifier", daemon=True)
        self.notifier = notifier
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.notifier.run(self.stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by finish()
            self.error = exc

    def finish(self) -> None:
        self.stop.set()
        self.join()
        self.notifier.close()
        if self.error is not None:
            raise self.error


def _where(settings: Settings) -> str:
    """The state's database, as a reload message names it."""
    return settings.state.url or str(settings.state.path)


def reloaded(path: Path, current: Settings, metrics: Metrics) -> Settings | None:
    """The new configuration, or None (logged, counted) when it cannot replace ``current``."""
    try:
        new = load_config(path)
        remember(new.secrets())  # errors are scrubbed of the new secrets too (and the old)
        if new.state.url != current.state.url or (
            new.state.url is None and new.state.path.resolve() != current.state.path.resolve()
        ):
            key = "url" if current.state.url or new.state.url else "path"
            raise ConfigError(
                [
                    f"state.{key}: cannot change on reload ({_where(current)} → "
                    f"{_where(new)}); restart the notifier to move the state"
                ],
                source=str(path),
            )
    except ConfigError as exc:
        metrics.config_reloaded(False)
        log.error(
            "config reload rejected, the running configuration stays in use: %s",
            exc,
            extra={"event": "config_reload", "error": str(exc)},
        )
        return None
    metrics.config_reloaded(True)
    log.info(
        "config reloaded from %s: %d projects, %d sinks, %d rules; in effect from the next cycle",
        path,
        len(new.posthog.project_ids),
        len(new.sinks),
        len(new.rules),
        extra={"event": "config_reload"},
    )
    _log_rule_changes(current, new)
    return new


#: What a reload compares of each rule (by name) to say which rules changed.
RULE_ASPECTS = ("match", "sinks", "stop", "reply_broadcast", "template")


def _log_rule_changes(old: Settings, new: Settings) -> None:
    """``reload: rules added: a; removed: b; changed: c (match, sinks)``, when they differ."""

    def aspects(settings: Settings) -> dict[str, dict[str, object]]:
        return {r.name: {k: getattr(r, k) for k in RULE_ASPECTS} for r in settings.rules}

    changes = rule_changes(aspects(old), aspects(new))
    if changes is not None:
        log.info("reload: %s", changes, extra={"event": "config_reload"})


def _watch_file(path: Path, reload: threading.Event, stop: threading.Event) -> None:
    """Set ``reload`` whenever the file's content changes (checked every second)."""

    def fingerprint() -> bytes | None:
        try:
            return hashlib.sha256(path.read_bytes()).digest()
        except OSError:
            return None

    seen = fingerprint()
    while not stop.wait(1.0):
        now = fingerprint()
        if now is not None and now != seen:
            seen = now
            log.info("%s changed: reloading", path, extra={"event": "config_changed"})
            reload.set()


def same_budget(old: Settings, new: Settings) -> bool:
    """Whether a reloaded configuration keeps the running request budget: same PostHog, same
    key, same limits."""
    a, b = old.posthog, new.posthog
    return (a.host, a.api_key, a.requests_per_minute, a.requests_per_hour) == (
        b.host,
        b.api_key,
        b.requests_per_minute,
        b.requests_per_hour,
    )


class _Signals:
    """The main thread's signal handlers: SIGTERM/SIGINT set ``stop`` and start the stop grace,
    SIGHUP (or a change to the watched file) sets ``reload``. ``done`` tells the grace's
    watchdog that in-flight work finished in time."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.done = threading.Event()

    def install(self, path: Path | None, *, watch: bool) -> None:
        """Take SIGTERM and SIGINT; with a configuration file, SIGHUP and (``watch``) its
        changes too."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if path is not None:
            signal.signal(signal.SIGHUP, self._hup)
            if watch:
                threading.Thread(
                    target=_watch_file,
                    args=(path, self.reload, self.stop),
                    name="config-watch",
                    daemon=True,
                ).start()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            _abandon(f"received {name} again")
        log.info("received %s: finishing in-flight work", name)
        self.stop.set()
        threading.Thread(
            target=self._watchdog, args=(name,), name="stop-watchdog", daemon=True
        ).start()

    def _watchdog(self, name: str) -> None:
        if not self.done.wait(self.grace):
            _abandon(f"in-flight work did not finish within {self.grace:g} s of {name}")

    def _hup(self, _signum: int, _frame: FrameType | None) -> None:
        log.info("received SIGHUP: reloading the configuration", extra={"event": "config_reload"})
        self.reload.set()


def _abandon(why: str) -> None:
    """Exit at once, leaving in-flight work behind (logged first)."""
    log.warning(
        "%s: abandoning in-flight work and exiting (nothing is lost: an unfinished cycle is "
        "redone and an unconfirmed delivery is sent again on the next start)",
        why,
        extra={"event": "stop_abandoned"},
    )
    logging.shutdown()  # flush every handler: os._exit skips it
    os._exit(EXIT_OK)


def _until_reload(
    runner: Runner, signals: _Signals, path: Path | None, settings: Settings, metrics: Metrics
) -> Settings | None:
    """Wait while ``runner`` runs; the new configuration once a reload is asked for and valid,
    None when the notifier stops (a signal, or the runner ended)."""
    while runner.is_alive() and not signals.stop.wait(0.2):
        if signals.reload.is_set() and path is not None:
            signals.reload.clear()
            new = reloaded(path, settings, metrics)
            if new is not None:
                return new
    return None


def cmd_run(
    settings: Settings,
    path: Path | None = None,
    *,
    watch: bool = False,
    formatter: logs.RedactingFormatter | None = None,
) -> int:
    """The daemon, until SIGTERM or SIGINT; SIGHUP (or, with ``watch``, a change to the file)
    reloads the configuration.

    A reload is validated first: an invalid file is logged and the running configuration stays.
    A valid one replaces it between cycles: in-flight work finishes, the state and every pending
    delivery stay (they live in the state database), and the next cycle uses the new rules,
    sinks and projects.

    In-flight work gets ``STOP_GRACE_SECONDS`` (or ``$NOTIFIER_STOP_GRACE``) to finish; whatever
    still runs then (a PostHog request or a send that hangs) is abandoned by exiting at once,
    which loses nothing: an uncommitted cycle is simply redone and an unconfirmed delivery is
    sent again on the next start. A second signal exits at once too.
    """
    signals = _Signals(_stop_grace())
    signals.install(path, watch=watch)
    metrics = Metrics()
    budget: RequestBudget | None = None
    reloads = 0
    try:
        while True:
            notifier = Notifier(settings, metrics=metrics, budget=budget)
            notifier.reload = reloads > 0
            runner = Runner(notifier)
            runner.start()
            new = _until_reload(runner, signals, path, settings, metrics)
            notifier.workers.handing_over = new is not None and not signals.stop.is_set()
            runner.finish()
            if new is None or signals.stop.is_set():
                return EXIT_OK
            if formatter is not None:
                formatter.set_secrets((*formatter.secrets, *new.secrets()))
            # the same key keeps its budget: a reload must not grant a fresh hour's worth (with
            # replicas the buckets that count are in the database, and the new store serves them)
            kept = same_budget(settings, new) and new.state.url is None
            budget = runner.notifier.budget if kept else None
            settings = new
            reloads += 1
    finally:
        signals.done.set()
