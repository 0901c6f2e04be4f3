"""The benchmark of issue 6: the notifier's steady-state cycle against a bare download floor.

Run by ``make bench`` (``python bench/run.py --help`` for the options). The fake PostHog runs in
a separate process (``multiprocessing``, spawn), so the CPU time and peak RSS measured here are
the client's only; the fake's own CPU time is reported in its own column.

For every (N, page size):

- the fake is seeded with N reports in a project of their own;
- **floor**: a bare ``httpx.Client`` that downloads every page (``limit``/``offset``,
  ``ordering=created_at,id``, the notifier's headers), decodes each page's JSON to read
  ``next``, and nothing else;
- **notifier**: ``Notifier(settings).poll(project_id)`` with real settings (no sinks, no rules),
  after a first (baseline) cycle;
- before every measured run, 1 % of the reports change (status or weight) through
  ``update_report``. Each measurement is repeated ``--repeat`` times; the median is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import logging
import multiprocessing as mp
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

API_KEY = "phx_bench_key"
STATUSES = ("ready", "in_progress", "pending_input", "candidate", "potential", "resolved")
CHURN = 0.01


# ------------------------------------------------------------------ the fake, in its own process


def _serve(conn: Connection) -> None:
    """The fake PostHog's process: answers commands from the benchmark over ``conn``."""
    from notifier.simulator import FakePostHog  # noqa: PLC0415 - only in the child

    rng = random.Random(6)
    fake = FakePostHog(api_key=API_KEY, projects=()).start()
    ids: dict[int, list[str]] = {}
    conn.send(fake.url)
    while True:
        cmd, args = conn.recv()
        if cmd == "seed":
            project_id, n = args
            started = time.perf_counter()
            fake.add_project(project_id)
            ids[project_id] = [
                fake.add_report(
                    project_id,
                    status=rng.choice(STATUSES),
                    total_weight=round(rng.uniform(0.5, 20.0), 2),
                    signal_count=rng.randint(1, 40),
                )["id"]
                for _ in range(n)
            ]
            conn.send(time.perf_counter() - started)
        elif cmd == "churn":
            project_id, fraction = args
            chosen = rng.sample(ids[project_id], max(1, round(len(ids[project_id]) * fraction)))
            for i, rid in enumerate(chosen):
                if i % 2:
                    fake.update_report(project_id, rid, status=rng.choice(STATUSES))
                else:
                    fake.update_report(
                        project_id, rid, total_weight=round(rng.uniform(0.5, 40.0), 2)
                    )
            conn.send(len(chosen))
        elif cmd == "mark":  # forget the requests so far; report the fake's CPU time
            fake.requests.clear()
            conn.send(time.process_time())
        elif cmd == "read":
            conn.send((len(fake.requests), time.process_time()))
        else:  # stop
            fake.stop()
            conn.send(None)
            return


class Fake:
    """The benchmark's handle on the fake PostHog process."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        self.url: str = self._conn.recv()

    def call(self, cmd: str, *args: Any) -> Any:
        self._conn.send((cmd, args))
        return self._conn.recv()

    def close(self) -> None:
        self.call("stop")
        self._proc.join(5)


# ------------------------------------------------------------------------------ measurements


def _reset_peak_rss() -> None:
    """Linux: reset VmHWM, so the next reading is this measurement's peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _status_mb(key: str) -> float:
    """``VmHWM`` (peak RSS) or ``VmRSS`` from /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    server_cpu: float
    requests: int
    peak_rss_mb: float
    rss_growth_mb: float  # the peak minus the RSS just before the run


def _measure(fake: Fake, project_id: int, run: Callable[[], None]) -> Sample:
    fake.call("churn", project_id, CHURN)
    gc.collect()
    _reset_peak_rss()
    rss0 = _status_mb("VmRSS")
    server_cpu0 = fake.call("mark")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    requests, server_cpu1 = fake.call("read")
    peak = _status_mb("VmHWM")
    return Sample(wall, cpu, server_cpu1 - server_cpu0, requests, peak, peak - rss0)


def floor_listing(client: httpx.Client, project_id: int, page_size: int) -> int:
    """Download every page the way the notifier asks for them; return the reports seen."""
    path = f"/api/projects/{project_id}/signals/reports/"
    offset = seen = 0
    while True:
        params = {"limit": page_size, "ordering": "created_at,id", "offset": offset}
        body = client.get(path, params=params).json()
        items = len(body["results"])
        seen += items
        if not body["next"] or not items:
            return seen
        offset += items


def _settings(url: str, project_id: int, page_size: int, state: Path) -> Any:
    from notifier.config import parse_config  # noqa: PLC0415

    text = f"""
posthog:
  host: {url}
  api_key: {API_KEY}
  project_ids: [{project_id}]
  page_size: {page_size}
state:
  path: {state}
http:
  listen: null
sinks: {{}}
rules: []
"""
    return parse_config(text, source="bench")


def _median(samples: list[Sample]) -> Sample:
    return Sample(
        wall=statistics.median(s.wall for s in samples),
        cpu=statistics.median(s.cpu for s in samples),
        server_cpu=statistics.median(s.server_cpu for s in samples),
        requests=max(s.requests for s in samples),
        peak_rss_mb=max(s.peak_rss_mb for s in samples),
        rss_growth_mb=max(s.rss_growth_mb for s in samples),
    )


@dataclass(frozen=True)
class Row:
    n: int
    page_size: int
    floor: Sample
    notifier: Sample


def bench_one(
    fake: Fake, project_id: int, n: int, page_size: int, repeat: int, workdir: Path, profile: bool
) -> Row:
    from notifier.daemon import Notifier  # noqa: PLC0415

    headers = {
        "authorization": f"Bearer {API_KEY}",
        "accept": "application/json",
        "user-agent": "posthog-signal-notifier-bench",
    }
    floors: list[Sample] = []
    with httpx.Client(base_url=fake.url, headers=headers, timeout=120) as client:
        floor_listing(client, project_id, page_size)  # warm the connection
        for _ in range(repeat):
            floors.append(_measure(fake, project_id, lambda: _floor(client, project_id, page_size)))
    state = workdir / f"state-{n}-{page_size}.db"
    notifier = Notifier(_settings(fake.url, project_id, page_size, state))
    try:
        if notifier.poll(project_id) is None:  # the baseline cycle
            raise SystemExit(f"the baseline cycle failed for N={n}, page_size={page_size}")
        cycles: list[Sample] = []
        for _ in range(repeat):
            cycles.append(_measure(fake, project_id, lambda: _poll(notifier, project_id)))
        if profile:
            profiler = cProfile.Profile()
            _measure(fake, project_id, lambda: profiler.runcall(_poll, notifier, project_id))
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
            print(f"\nprofile, notifier steady cycle, N={n:,}, page_size={page_size}:")
            print(out.getvalue())
    finally:
        notifier.close()
    return Row(n, page_size, _median(floors), _median(cycles))


def _floor(client: httpx.Client, project_id: int, page_size: int) -> None:
    floor_listing(client, project_id, page_size)


def _poll(notifier: Any, project_id: int) -> None:
    if notifier.poll(project_id) is None:
        raise SystemExit("a steady-state cycle failed")


# ----------------------------------------------------------------------------------- output


def table(rows: list[Row]) -> str:
    head = (
        "|       N | page | what     | requests | wall s | client CPU s | fake CPU s "
        "| peak RSS MB (+growth) | wall ×floor | client CPU ×floor |"
    )
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        for name, s in (("floor", r.floor), ("notifier", r.notifier)):
            wall_ratio = "" if name == "floor" else f"{s.wall / r.floor.wall:.2f}"
            cpu_ratio = "" if name == "floor" else f"{s.cpu / r.floor.cpu:.2f}"
            lines.append(
                f"| {r.n:>7,} | {r.page_size:>4} | {name:<8} | {s.requests:>8} "
                f"| {s.wall:>6.2f} | {s.cpu:>12.2f} | {s.server_cpu:>10.2f} "
                f"| {s.peak_rss_mb:>10.0f} (+{s.rss_growth_mb:>6.1f}) "
                f"| {wall_ratio:>11} | {cpu_ratio:>17} |"
            )
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[1000, 10000], help="N, e.g. 1000,10000")
    parser.add_argument("--page-sizes", type=_ints, default=[100, 1000], help="e.g. 100,1000")
    parser.add_argument("--repeat", type=int, default=3, help="measured cycles per row")
    parser.add_argument("--profile", action="store_true", help="cProfile one notifier cycle")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    fake = Fake()
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
            for i, n in enumerate(args.sizes, start=1):
                seconds = fake.call("seed", i, n)
                print(f"seeded N={n:,} into the fake in {seconds:.1f}s", file=sys.stderr)
                for page_size in args.page_sizes:
                    started = time.perf_counter()
                    row = bench_one(fake, i, n, page_size, args.repeat, Path(tmp), args.profile)
                    rows.append(row)
                    print(
                        f"  page_size={page_size}: done in {time.perf_counter() - started:.1f}s",
                        file=sys.stderr,
                    )
    finally:
        fake.close()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
