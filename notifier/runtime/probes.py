"""Liveness and readiness: the heartbeat file, the rules, and the HTTP listener.

The daemon writes a small JSON heartbeat next to the state database (``<state.path>.heartbeat``)
when it starts and when each poll cycle starts and ends. ``notifier healthcheck`` (Docker
``HEALTHCHECK``, Kubernetes exec probes) reads that file; ``/healthz`` reads the same data from
memory; both judge it with ``liveness``: healthy while a cycle was attempted within
``LIVENESS_INTERVALS`` × ``poll.interval`` (or the process started less long ago, or a cycle is
still running within its deadline). ``notifier healthcheck`` fails at once, whatever the
file's age, when the heartbeat says `notifier run` stopped or when the process that wrote it is
gone (``process.py``: its pid, start time and pid namespace are in the heartbeat).
``readiness`` is ``/readyz``: the state is readable and every project has had a successful poll
or is still within its first interval.

``HealthServer`` (``listener.py``, re-exported here) serves ``/healthz``, ``/readyz`` and
``/metrics``; nothing here knows the daemon, which hands it an ``Endpoints``
(``vitals.Vitals``). A ``Verdict`` carries a short ``public`` reason for callers that are not
told the details (upstream error text, file paths, pids).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from notifier import __version__
from notifier.config.settings import StateSettings
from notifier.core.words import counted
from notifier.runtime.listener import Endpoints, HealthServer, is_local
from notifier.runtime.process import gone, this_process

__all__ = ["Endpoints", "HealthServer", "is_local"]  # the listener, where it always was

#: A process is alive while a cycle was attempted within this many poll intervals.
LIVENESS_INTERVALS: Final = 3
#: What ``/healthz`` tells callers who get no details.
ALIVE: Final = "alive"
STUCK: Final = "not alive: no poll cycle attempted in time"
NOT_RUNNING: Final = "not alive: not running"


def heartbeat_path(state: StateSettings) -> Path:
    """Where the daemon using ``state`` writes its heartbeat: next to the SQLite file, or — a
    replica on PostgreSQL has no volume — in the temporary directory, named after the database
    (``$TMPDIR/notifier-<hash>.heartbeat``), so that `notifier healthcheck` in the same
    container finds it."""
    if state.url is None:
        return state.path.with_name(state.path.name + ".heartbeat")
    digest = hashlib.sha256(state.url.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"notifier-{digest}.heartbeat"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The daemon's sign of life. Times are Unix seconds."""

    started_at: float
    interval: float  # poll.interval of the running daemon
    pid: int
    last_attempt: float | None = None  # a poll cycle last started (or was skipped, paused)
    last_finished: float | None = None  # a poll cycle last ended
    busy_until: float | None = None  # a cycle is running and its deadline is then
    version: str = __version__
    # who wrote it, so `notifier healthcheck` can tell it is gone (``process.gone``)
    pid_start: int | None = None  # the kernel's start time of ``pid`` (clock ticks)
    pid_space: str | None = None  # the boot and pid namespace ``pid`` belongs to
    stopped_at: float | None = None  # `notifier run` stopped cleanly then

    @classmethod
    def of_this_process(cls, *, started_at: float, interval: float) -> Heartbeat:
        """The first heartbeat of the daemon in this process."""
        start, space = this_process()
        return cls(
            started_at=started_at,
            interval=interval,
            pid=os.getpid(),
            pid_start=start,
            pid_space=space,
        )

    def to_json(self) -> str:
        """The file's content: the fields, plus readable UTC times for people."""
        data: dict[str, Any] = asdict(self)
        data["readable"] = {
            name: _iso(data[name])
            for name in ("started_at", "last_attempt", "last_finished", "busy_until", "stopped_at")
        }
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Heartbeat:
        """Parse a heartbeat file; ``ValueError`` when it is not one."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            optional = {
                name: None if data.get(name) is None else float(data[name])
                for name in ("last_attempt", "last_finished", "busy_until", "stopped_at")
            }
            start, space = data.get("pid_start"), data.get("pid_space")
            beat = cls(
                started_at=float(data["started_at"]),
                interval=float(data["interval"]),
                pid=int(data["pid"]),
                version=str(data.get("version", "?")),
                pid_start=None if start is None else int(start),
                pid_space=None if space is None else str(space),
                **optional,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a notifier heartbeat ({type(exc).__name__}: {exc})") from exc
        if beat.interval <= 0:
            raise ValueError("not a notifier heartbeat (interval must be positive)")
        if beat.pid <= 0:
            raise ValueError("not a notifier heartbeat (pid must be positive)")
        return beat


def write_heartbeat(path: Path, beat: Heartbeat) -> None:
    """Replace the heartbeat file atomically (write a temporary file, then rename): a reader
    never sees half a file. Mode 0600 whatever the umask. Raises ``OSError``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(fd, 0o600)  # the umask may have taken bits off; a leftover may have more
        file.write(beat.to_json())
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A probe's answer: ``ok``, one line saying why, details for the JSON body, and the short
    reason told to callers who get no details (no upstream text, paths or pids)."""

    ok: bool
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    public: str = ""

    def body(self, *, details: bool = True) -> bytes:
        """The JSON body of the HTTP answer: with ``details``, the reason and the details;
        without, the public reason only."""
        status = "ok" if self.ok else "failing"
        if not details:
            return json.dumps({"status": status, "reason": self.public or status}).encode()
        return json.dumps({"status": status, "reason": self.reason, **self.detail}).encode()


def liveness(beat: Heartbeat, now: float) -> Verdict:
    """Alive while a cycle was attempted within 3 intervals, or the process started less than
    3 intervals ago, or a running cycle is still within its deadline (a cycle may legitimately
    run for up to ``poll.deadline``, which defaults to 3 intervals or more)."""
    limit = LIVENESS_INTERVALS * beat.interval
    last = max((t for t in (beat.last_attempt, beat.last_finished) if t is not None), default=None)
    detail: dict[str, Any] = {
        "pid": beat.pid,
        "version": beat.version,
        "started_at": _iso(beat.started_at),
        "last_attempt": _iso(beat.last_attempt),
        "limit_seconds": limit,
    }
    if last is None:
        age = max(0.0, now - beat.started_at)
        if age <= limit:
            why = f"started {age:.0f}s ago; the first cycle is under way"
            return Verdict(True, why, detail, ALIVE)
        return Verdict(
            False,
            f"no poll cycle attempted in the {age:.0f}s since the start (pid {beat.pid}; limit "
            f"{limit:g}s = {LIVENESS_INTERVALS} × poll.interval): the scheduler looks stuck",
            detail,
            STUCK,
        )
    age = max(0.0, now - last)
    detail["last_activity_age_seconds"] = round(age, 3)
    if age <= limit:
        why = f"a poll cycle was active {age:.0f}s ago (pid {beat.pid})"
        return Verdict(True, why, detail, ALIVE)
    if beat.busy_until is not None and now <= beat.busy_until:
        return Verdict(
            True,
            f"a poll cycle is running; its deadline is in {beat.busy_until - now:.0f}s",
            detail,
            ALIVE,
        )
    return Verdict(
        False,
        f"no poll cycle attempted for {age:.0f}s (pid {beat.pid}; limit {limit:g}s = "
        f"{LIVENESS_INTERVALS} × poll.interval): the scheduler looks stuck, or the notifier "
        "is not running",
        detail,
        STUCK,
    )


def check_heartbeat(path: Path, now: float) -> Verdict:
    """``notifier healthcheck``: read the heartbeat file; unhealthy when it says the daemon
    stopped, or when the process that wrote it is gone (``process.gone``: a pid is checked
    only in the pid namespace that wrote it — Docker's HEALTHCHECK and Kubernetes exec probes
    run in the daemon's container, so there it is); otherwise judge it with ``liveness``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Verdict(
            False,
            f"no heartbeat at {path}: the notifier has not started, or it runs with another "
            "state.path",
        )
    except OSError as exc:
        return Verdict(False, f"cannot read the heartbeat {path}: {exc.strerror or exc}")
    try:
        beat = Heartbeat.from_json(text)
    except ValueError as exc:
        return Verdict(False, f"heartbeat {path}: {exc}")
    if beat.stopped_at is not None:
        return Verdict(
            False,
            f"the notifier (pid {beat.pid}) stopped at {_iso(beat.stopped_at)}; it is not running",
            public=NOT_RUNNING,
        )
    why = gone(beat.pid, beat.pid_start, beat.pid_space)
    if why is not None:
        return Verdict(False, why, public=NOT_RUNNING)
    return liveness(beat, now)


def mark_stopped(path: Path, now: float) -> None:
    """The daemon of this process stopped cleanly: say so in its heartbeat, so `notifier
    healthcheck` fails at once rather than 3 intervals later. Leaves a heartbeat of another
    process alone; best effort (the pid check covers a heartbeat left unmarked)."""
    try:
        beat = Heartbeat.from_json(path.read_text(encoding="utf-8"))
        if (beat.pid, beat.pid_start) == (os.getpid(), this_process()[0]):
            write_heartbeat(path, replace(beat, stopped_at=now, busy_until=None))
    except (OSError, ValueError):
        pass


class Polled(Protocol):
    """What readiness needs to know about one project (``daemon.ProjectHealth``)."""

    @property
    def last_success(self) -> float | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def failures(self) -> int: ...


def project_ready(polled: Polled, now: float, started_at: float, interval: float) -> str | None:
    """None when the project is ready, else why not."""
    if polled.last_success is not None:
        return None
    if now - started_at < interval:
        return None  # within its first interval: the first cycle is under way
    if polled.last_error:
        runs = f"{polled.failures} failed cycle{'s' if polled.failures != 1 else ''}"
        return f"no successful poll yet ({runs}; last error: {polled.last_error})"
    return "no successful poll yet: the first cycle has not finished"


def readiness(
    projects: Mapping[int, Polled],
    *,
    now: float,
    started_at: float,
    interval: float,
    state_error: str | None,
    config: str,
) -> Verdict:
    """Ready when the state database is readable and every project has had a successful poll
    or is still within its first interval."""
    why = {pid: project_ready(p, now, started_at, interval) for pid, p in projects.items()}
    detail: dict[str, Any] = {
        "config": config,
        "state": state_error or "ok",
        "projects": {
            str(pid): {
                "ready": why[pid] is None,
                "reason": why[pid] or "ok",
                "last_success": _iso(p.last_success),
                "failures_in_a_row": p.failures,
            }
            for pid, p in projects.items()
        },
    }
    waiting = [pid for pid, reason in why.items() if reason is not None]
    problems = [f"state: {state_error}"] if state_error else []
    problems += [f"project {pid}: {why[pid]}" for pid in waiting]
    if problems:
        public = ["the state database cannot be read"] if state_error else []
        failing = sum(1 for pid in waiting if projects[pid].last_error)
        if failing:
            public.append(
                "a project is failing" if failing == 1 else f"{failing} projects are failing"
            )
        if len(waiting) > failing:
            public.append("waiting for a first successful poll")
        return Verdict(False, "; ".join(problems), detail, "not ready: " + "; ".join(public))
    polled = counted(len(projects), "project")
    return Verdict(True, f"{polled} polled successfully", detail, "ready")
