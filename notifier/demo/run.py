"""`notifier demo`: the real daemon against a built-in simulated PostHog, printing to the console.

No config and no credentials: a local fake PostHog (the same one the tests use) starts on a
random port with a few reports; after every polling cycle the story moves one of them along
(a new report appears, a status changes, a weight grows…), and the next cycle's messages show it.

With a config (``notifier demo -c``), its rules, templates and sinks run instead of "everything
to the console": only its PostHog is swapped for the simulator (serving the config's project ids;
the config's PostHog is never contacted) and its state for a temporary database (the config's
state is never opened). Its sinks are real: ``cli.demo`` asks for ``--yes`` before any sink but
the console may receive the made-up reports.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from notifier.config.reminders import ReminderSettings
from notifier.config.settings import (
    ConsoleSinkSettings,
    DeliverySettings,
    HttpSettings,
    PollSettings,
    PostHogSettings,
    RuleSettings,
    SelfAlertSettings,
    Settings,
    StateSettings,
)
from notifier.core.events import EventType
from notifier.core.rules import Condition, Match, Op
from notifier.core.words import counted
from notifier.cycle.pipeline import CyclePlan
from notifier.demo.simulator import DemoStory, FakePostHog
from notifier.runtime.daemon import Notifier

PROJECT_ID = 1
#: the simulated projects' names, in the order of their ids (cards show them)
PROJECT_NAMES = ("Storefront", "Mobile app", "Marketing site", "Admin console")
DIM, RESET = "\033[2m", "\033[0m"
#: the seed of the first project's story (later projects: the next seeds, so they differ)
SEED = 7
#: seconds the sinks get, after the last cycle, to deliver what is still due (a sink that keeps
#: failing must not keep the demo running: what is left is reported as still pending)
DELIVERY_GRACE = 10.0


def demo_settings(host: str, api_key: str, state_dir: Path, interval: float) -> Settings:
    """A configuration that sends every event to the console."""
    return Settings(
        posthog=PostHogSettings(host=host, api_key=SecretStr(api_key), project_ids=(PROJECT_ID,)),
        sinks={"console": ConsoleSinkSettings(name="console")},
        rules=(
            RuleSettings(
                name="everything to the console",
                match=Match(events=frozenset(EventType)),
                sinks=("console",),
            ),
        ),
        # a report left ready for review is announced again, once (a real config says 24h)
        reminders=(
            ReminderSettings(
                name="still waiting for review",
                match=Match(conditions=(Condition("status", Op.EQ, "ready"),)),
                after=3 * interval,
                max=1,
                sinks=("console",),
            ),
        ),
        # faster than PostHog's rate limit lets a real daemon poll: the simulator has none
        poll=PollSettings().model_copy(update={"interval": interval, "jitter": 0.0}),
        state=StateSettings(path=state_dir / "demo-state.db"),
        delivery=DeliverySettings(backoff_initial=0.5, backoff_max=5.0),
        http=HttpSettings(listen=None),  # no probes to serve; never clash with a real daemon
        self_alerts=SelfAlertSettings(sinks=()),  # the demo's console is not an operators' sink
        first_run="notify",
        source="(built-in demo)",
    )


def simulated(
    config: Settings, host: str, api_key: str, state_dir: Path, interval: float
) -> Settings:
    """``config`` run against the simulator: its PostHog section replaced (the same project
    ids, statuses and page size), its state a temporary SQLite file in ``state_dir``, polled
    every ``interval``, no listener, ``first_run: notify``; rules, templates, sinks, the rest
    of ``poll`` and the self-alerts as configured."""
    posthog = PostHogSettings(
        host=host,
        api_key=SecretStr(api_key),
        project_ids=config.posthog.project_ids,
        statuses=config.posthog.statuses,
        page_size=config.posthog.page_size,
    )
    return config.model_copy(
        update={
            "posthog": posthog,
            "poll": config.poll.model_copy(update={"interval": interval, "jitter": 0.0}),
            "state": StateSettings(path=state_dir / "demo-state.db"),
            # a failing sink is retried within the demo's few seconds
            "delivery": config.delivery.model_copy(
                update={"backoff_initial": 0.5, "backoff_max": 5.0}
            ),
            "http": HttpSettings(listen=None),
            "first_run": "notify",
        }
    )


def _console_sinks(settings: Settings) -> list[str]:
    return [name for name, sink in settings.sinks.items() if sink.type == "console"]


class _Demo:
    """One demo run: the simulator, a story per project, the notifier and what it prints."""

    def __init__(self, sim: FakePostHog, settings: Settings, cycles: int, out: TextIO) -> None:
        self.sim, self.settings, self.cycles, self.out = sim, settings, cycles, out
        self.projects = settings.posthog.project_ids
        self.stories = {
            pid: DemoStory(sim, pid, seed=SEED + index) for index, pid in enumerate(self.projects)
        }
        for story in self.stories.values():
            story.seed_reports()
        self.dim = (DIM, RESET) if out.isatty() else ("", "")
        self.done = threading.Event()  # every project had its cycles
        self.notifier = Notifier(settings, after_cycle=self.after_cycle)

    def say(self, text: str) -> None:
        self.out.write(f"{self.dim[0]}{text}{self.dim[1]}\n")
        self.out.flush()

    def after_cycle(self, project: int, plan: CyclePlan | None) -> None:
        health = self.notifier.health
        count = health[project].cycles
        if all(pid in health and health[pid].cycles >= self.cycles for pid in self.projects):
            self.done.set()
        if count > self.cycles:  # polled on while the sinks finish delivering
            return
        events = len(plan.events) if plan else 0
        reminded = plan.write.reminders if plan and plan.write.reminders else None
        due = len({event.id for event, _, _ in reminded.outbox}) if reminded else 0
        also = f", {counted(due, 'reminder')}" if due else ""
        where = f"project {project}, " if len(self.projects) > 1 else ""
        self.say(f"── {where}cycle {count}/{self.cycles}: {counted(events, 'event')}{also}")
        for name in _console_sinks(self.settings):  # this cycle's messages before moving on
            self.notifier.deliverer.drain(name)
        if count < self.cycles:
            self.say(
                f"   PostHog meanwhile{where and ' in ' + where[:-2]}: "
                f"{self.stories[project].step()}"
            )

    def run(self) -> None:
        stop = threading.Event()
        bound = threading.Thread(target=self._bound, args=(stop,), name="demo-bound", daemon=True)
        bound.start()
        try:
            self.notifier.run(stop, max_cycles=self.cycles)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()

    def _bound(self, stop: threading.Event) -> None:
        """Once every project had its cycles, stop after ``DELIVERY_GRACE`` (``run`` returns
        sooner when nothing is left to deliver)."""
        while not stop.wait(0.1):
            if self.done.is_set():
                stop.wait(DELIVERY_GRACE)
                stop.set()

    def undelivered(self) -> int:
        """Say per sink what was delivered; return how many entries were not."""
        counts = self.notifier.store.counts()
        missing = 0
        for name in self.settings.sinks:
            done, waiting, dead = (
                counts.get((name, s), 0) for s in ("delivered", "pending", "dead")
            )
            missing += waiting + dead
            self.say(
                f"   sink {name}: {done} delivered"
                + (f", {waiting} still pending (it kept failing: see the log)" if waiting else "")
                + (f", {dead} dead-lettered (see the log above)" if dead else "")
            )
        return missing


def run_demo(
    cycles: int = 8,
    interval: float = 2.0,
    out: TextIO | None = None,
    config: Settings | None = None,
) -> int:
    """Run the demo for ``cycles`` polling cycles, with ``config``'s rules, templates and sinks
    when given (else everything to the console); returns the exit code (1: a message of the
    config's sinks was not delivered)."""
    stream = out or sys.stdout
    projects = config.posthog.project_ids if config is not None else (PROJECT_ID,)
    with (
        FakePostHog(api_version=6, projects=projects) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        sim.project_names.update(
            {pid: PROJECT_NAMES[i % len(PROJECT_NAMES)] for i, pid in enumerate(projects)}
        )
        if config is None:
            settings = demo_settings(sim.url, sim.api_key, Path(tmp), interval)
        else:
            settings = simulated(config, sim.url, sim.api_key, Path(tmp), interval)
        demo = _Demo(sim, settings, cycles, stream)
        try:
            _introduce(demo, config, interval)
            demo.run()
            missing = demo.undelivered() if config is not None else 0
        finally:
            demo.notifier.close()
        _conclude(demo, config)
    return 1 if missing else 0


def _introduce(demo: _Demo, config: Settings | None, interval: float) -> None:
    reports = sum(len(demo.sim.reports(pid)) for pid in demo.projects)
    if config is None:
        demo.say(
            f"notifier demo: a simulated PostHog at {demo.sim.url} with "
            f"{reports} reports; polling every {interval:g}s for "
            f"{counted(demo.cycles, 'cycle')}. Every change becomes a message below; a report "
            f"left ready for review is announced again after {3 * interval:g}s (`reminders:` in "
            "config.example.yaml)."
        )
        return
    ids = ", ".join(map(str, demo.projects))
    demo.say(
        f"notifier demo with {config.source}: its rules, templates and sinks against a "
        f"simulated PostHog at {demo.sim.url}\n"
        f"   simulated projects: {ids} ({reports} reports to start with); the config's PostHog "
        f"({config.posthog.host}) is not contacted\n"
        "   state: a temporary database, deleted afterwards; the config's state is not opened\n"
        f"   first_run: notify; polling every {interval:g}s for {counted(demo.cycles, 'cycle')}"
    )


def _conclude(demo: _Demo, config: Settings | None) -> None:
    if config is None:
        demo.say(
            "demo finished. Next: copy config.example.yaml to config.yaml and run `notifier check`."
        )
        return
    demo.say(
        f"demo finished. Next: `notifier check -c {config.source}`, then `notifier run -c "
        f"{config.source}` against your PostHog."
    )
