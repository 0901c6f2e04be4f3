"""`notifier demo`: the real daemon against a built-in simulated PostHog, printing to the console.

No config and no credentials: a local fake PostHog (the same one the tests use) starts on a
random port with a few reports; after every polling cycle the story moves one of them along
(a new report appears, a status changes, a weight grows…), and the next cycle's messages show it.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from notifier.config.settings import (
    ConsoleSinkSettings,
    DeliverySettings,
    HttpSettings,
    PollSettings,
    PostHogSettings,
    RuleSettings,
    Settings,
    StateSettings,
)
from notifier.core.events import EventType
from notifier.core.rules import Match
from notifier.cycle.pipeline import CyclePlan
from notifier.demo.simulator import DemoStory, FakePostHog
from notifier.runtime.daemon import Notifier

PROJECT_ID = 1
DIM, RESET = "\033[2m", "\033[0m"


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
        # faster than PostHog's rate limit lets a real daemon poll: the simulator has none
        poll=PollSettings().model_copy(update={"interval": interval, "jitter": 0.0}),
        state=StateSettings(path=state_dir / "demo-state.db"),
        delivery=DeliverySettings(backoff_initial=0.5, backoff_max=5.0),
        http=HttpSettings(listen=None),  # no probes to serve; never clash with a real daemon
        first_run="notify",
        source="(built-in demo)",
    )


def run_demo(cycles: int = 8, interval: float = 2.0, out: TextIO | None = None) -> int:
    """Run the demo for ``cycles`` polling cycles; returns the exit code."""
    stream = out or sys.stdout
    dim = (DIM, RESET) if stream.isatty() else ("", "")

    def say(text: str) -> None:
        stream.write(f"{dim[0]}{text}{dim[1]}\n")
        stream.flush()

    with (
        FakePostHog(api_version=6, projects=(PROJECT_ID,)) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        story = DemoStory(sim, PROJECT_ID)
        story.seed_reports()
        settings = demo_settings(sim.url, sim.api_key, Path(tmp), interval)
        say(
            f"notifier demo: a simulated PostHog at {sim.url} with "
            f"{len(sim.reports(PROJECT_ID))} reports; polling every {interval:g}s for "
            f"{cycles} cycles. Every change becomes a message below."
        )

        def after_cycle(_project: int, plan: CyclePlan | None) -> None:
            count = notifier.health[PROJECT_ID].cycles
            events = len(plan.events) if plan else 0
            say(f"── cycle {count}/{cycles}: {events} events")
            notifier.deliverer.drain("console")  # show this cycle's messages before moving on
            if count < cycles:
                say(f"   PostHog meanwhile: {story.step()}")

        notifier = Notifier(settings, after_cycle=after_cycle)
        stop = threading.Event()
        try:
            notifier.run(stop, max_cycles=cycles)
        except KeyboardInterrupt:
            stop.set()
        finally:
            notifier.close()
        say(
            "demo finished. Next: copy config.example.yaml to config.yaml and run `notifier check`."
        )
    return 0
