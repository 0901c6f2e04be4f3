"""Whether the process that wrote a heartbeat still runs, told from its pid.

The heartbeat records the writer's pid, the kernel's start time of that process (field 22 of
``/proc/<pid>/stat``, clock ticks after boot) and the pid space it lives in (the boot's
``/proc/sys/kernel/random/boot_id`` and ``/proc/self/ns/pid``). A reader in the same pid space
can then tell that the writer is gone: no such pid, a zombie waiting to be reaped, or a pid
that another process got since (its start time differs).

A pid only means something in the pid namespace that issued it. `notifier healthcheck` runs
where the daemon runs: Docker's ``HEALTHCHECK`` runs it inside the daemon's container (the same
pid namespace), so does a Kubernetes exec probe, and on a VM it runs on the same machine; a
heartbeat read from anywhere else (another container sharing the volume, another machine over
NFS) or written by an older version carries another (or no) pid space, and is judged by its
age alone, as before. Without ``/proc`` (not Linux) there is no pid space either.
"""

from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int) -> tuple[str, int] | None:
    """The state letter and start time of ``pid`` from ``/proc/<pid>/stat``, or None (no
    ``/proc``, no such process, or hidden from this user)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses itself:
    # the fields after it start after the last ")". Field 3 is the state, field 22 the start.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def this_process() -> tuple[int | None, str | None]:
    """This process' start time and pid space, as the heartbeat records them (None, None
    without ``/proc``)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        space = f"{boot} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None, None
    stat = _stat(os.getpid())
    return (stat[1] if stat is not None else None), space


def gone(pid: int, start: int | None, space: str | None) -> str | None:
    """Why the process ``pid`` (started at ``start``, in pid space ``space``) no longer runs;
    None when it runs, or when that cannot be told from here (another pid space, none known)."""
    if space is None or pid <= 0 or space != this_process()[1]:
        return None
    stat = _stat(pid)
    if stat is None:
        try:
            os.kill(pid, 0)  # signal 0: sends nothing, says whether the pid exists
        except ProcessLookupError:
            return f"the notifier that wrote the heartbeat (pid {pid}) is no longer running"
        except PermissionError:
            return None  # it exists, as another user whose /proc entry is hidden (hidepid)
        return None
    state, started = stat
    if state in ("Z", "X"):  # exited, not yet reaped by its parent
        return f"the notifier that wrote the heartbeat (pid {pid}) is no longer running"
    if start is not None and started != start:
        return (
            f"pid {pid} now belongs to another process: the notifier that wrote the heartbeat "
            "is no longer running"
        )
    return None
