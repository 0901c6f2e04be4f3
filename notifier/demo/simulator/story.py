"""A story that keeps a ``FakePostHog`` changing, for ``notifier demo``.

``DemoStory`` drives a ``FakePostHog`` through believable report life cycles, one change per call.
Each new report comes with the recording of a session that shows its problem: a
``session_replay`` signal on V6, as today's PostHog; a ``video_segment`` artefact before.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any, Final

from notifier.demo.simulator.facts import LIVE_STATUSES
from notifier.demo.simulator.posthog import FakePostHog

__all__ = ["DemoStory"]

_STORIES: Final = (
    (
        "Checkout button unresponsive on Safari",
        "Users on Safari 17 tap the Pay button repeatedly and nothing happens; "
        "{users} users abandoned checkout after this.",
        "session_replay",
    ),
    (
        "Onboarding tour stalls on step 3",
        "The product tour waits for a 'Connect data source' click that never registers "
        "on small screens; {users} new sign-ups stopped there.",
        "session_replay",
    ),
    (
        "CSV export times out for large cohorts",
        "Exporting cohorts above 50k persons returns a 504 after 30 s; "
        "{users} users retried the export more than three times.",
        "error_tracking",
    ),
    (
        "Password reset emails arrive after the link expired",
        "Reset links expire after 15 minutes but the mail queue delays some by 20; "
        "{users} users requested a second link within the hour.",
        "logs",
    ),
    (
        "Dashboard filters reset after navigating back",
        "Date-range and property filters are lost on browser back; "
        "{users} users re-applied the same filters repeatedly.",
        "session_replay",
    ),
    (
        "Invite teammate modal throws on empty role",
        "Submitting the invite form without choosing a role raises a TypeError; "
        "{users} users saw the error toast.",
        "error_tracking",
    ),
    (
        "Mobile nav menu covers the cart total",
        "On iOS the sticky menu overlaps the order total during checkout; "
        "{users} users scrolled up and down before paying.",
        "session_replay",
    ),
    (
        "Billing page shows the wrong currency for EU accounts",
        "EU workspaces see prices in USD on the billing page while invoices use EUR; "
        "{users} users opened a support chat from that page.",
        "surveys",
    ),
)

#: The problem each story's recording shows (``extra.problem_type`` of a replay signal).
_PROBLEMS: Final = ("blocking_exception", "confusion", "failure", "abandonment")
_CANDIDATE_WEIGHT: Final = 1.0


def _signals(count: int, adjective: str = "") -> str:
    return f"{count} {adjective}signal{'' if count == 1 else 's'}"


class DemoStory:
    """Believable life cycles for a few reports; ``step()`` makes one change and says which.

    Deterministic for a seed. Never runs out: new reports keep appearing, old finished ones
    are deleted, a resolved problem can come back as a new report.
    """

    def __init__(self, sim: FakePostHog, project_id: int, seed: int = 7) -> None:
        self.sim = sim
        self.project_id = project_id
        self._rng = random.Random(seed)
        self._next_story = 0
        self._users: dict[str, int] = {}
        self._story_of: dict[str, int] = {}
        sim.add_project(project_id)

    # ----------------------------------------------------------------------------- helpers

    def _all(self) -> list[dict[str, Any]]:
        """The story's own reports (others in the project are left alone)."""
        return [r for r in self.sim.reports(self.project_id) if r["id"] in self._story_of]

    def _with(self, *statuses: str) -> list[dict[str, Any]]:
        return [r for r in self._all() if r["status"] in statuses]

    def _summary(self, report_id: str) -> str:
        _, summary, _ = _STORIES[self._story_of[report_id]]
        return summary.format(users=max(2, self._users[report_id]))

    def _new(self, status: str, weight: float, signals: int) -> dict[str, Any]:
        index = self._next_story % len(_STORIES)
        self._next_story += 1
        title, summary, product = _STORIES[index]
        users = max(1, signals + self._rng.randint(0, 3))
        report = self.sim.add_report(
            self.project_id,
            title=title,
            summary=summary.format(users=users),
            status=status,
            total_weight=round(weight, 2),
            signal_count=signals,
            relevant_user_count=users,
            source_products=[product],
        )
        self._users[report["id"]] = users
        self._story_of[report["id"]] = index
        self._recording(report, title)
        return report

    def _recording(self, report: dict[str, Any], title: str) -> None:
        """The session that shows the problem: a ``session_replay`` signal on V6 (today's
        PostHog), a ``video_segment`` artefact on older versions."""
        session_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        distinct_id = f"user_{self._rng.randint(10, 999)}"
        distance = round(self._rng.uniform(0.05, 0.4), 2)
        start = report["created_at"][:19] + "Z"
        if self.sim.api_version >= 6:
            self.sim.add_recording(
                self.project_id,
                report["id"],
                session_id=session_id,
                segment_title=title,
                start_time=start,
                problem_type=_PROBLEMS[self._story_of[report["id"]] % len(_PROBLEMS)],
                distinct_id=distinct_id,
                content=f"Session showing: {title.lower()}.",
                weight=round(1 - distance, 2),
            )
            return
        content = {
            "session_id": session_id,
            "start_time": start,
            "end_time": start,
            "distinct_id": distinct_id,
            "content": f"Session showing: {title.lower()}.",
            "distance_to_centroid": distance,
        }
        self.sim.add_artefact(self.project_id, report["id"], "video_segment", content)

    def _update(self, report: dict[str, Any], **fields: Any) -> None:
        self.sim.update_report(self.project_id, report["id"], **fields)

    # ------------------------------------------------------------------------------- story

    def seed_reports(self) -> None:
        """Three reports to start with: one ready, one candidate, one potential."""
        ready = self._new("ready", 2.35, 7)
        self._update(
            ready,
            priority="P1",
            actionability="immediately_actionable",
            already_addressed=False,
            repo_slug="acme/web",
            is_suggested_reviewer=True,
        )
        self._new("candidate", 1.2, 4)
        self._new("potential", 0.4, 1)

    def step(self) -> str:
        """Advance the story by one change; return a one-line description of it."""
        live = self._with(*LIVE_STATUSES)
        if len(live) < 3:
            return self._appear()
        finished = len(self._with("resolved", "suppressed", "failed"))
        moves: list[tuple[float, Callable[[], str | None]]] = [
            (3.0, self._advance),
            (2.0, self._grow),
            (1.0, self._appear if len(live) < 7 else self._grow),
            (1.0, self._resolve),
            (0.6, self._rework),
            (0.5, self._suppress),
            (0.5 if finished < 8 else 3.0, self._clean_up),
        ]
        while True:
            pick = self._rng.choices([m for _, m in moves], weights=[w for w, _ in moves])[0]
            said = pick()
            if said is not None:
                return said

    def _appear(self) -> str:
        signals = self._rng.randint(1, 2)
        report = self._new("potential", self._rng.uniform(0.2, 0.6), signals)
        return f"new report '{report['title']}' appeared as potential ({_signals(signals)})"

    def _grow(self) -> str | None:
        live = self._with(*LIVE_STATUSES)
        if not live:
            return None
        report = self._rng.choice(live)
        more = self._rng.randint(1, 3)
        weight = round(float(report["total_weight"]) + more * self._rng.uniform(0.08, 0.25), 2)
        self._users[report["id"]] += self._rng.randint(0, more)
        fields: dict[str, Any] = {
            "signal_count": int(report["signal_count"]) + more,
            "total_weight": weight,
            "relevant_user_count": self._users[report["id"]],
        }
        line = f"'{report['title']}' gathered {_signals(more, 'new ')}, weight now {weight:.2f}"
        if report["status"] == "potential" and weight >= _CANDIDATE_WEIGHT:
            fields["status"] = "candidate"
            line += " → candidate"
        self._update(report, **fields)
        return line

    def _advance(self) -> str | None:
        movable = self._with("potential", "candidate", "in_progress", "pending_input")
        if not movable:
            return None
        report = self._rng.choice(movable)
        title, status = report["title"], report["status"]
        if status == "potential":
            more = self._rng.randint(2, 4)
            weight = float(report["total_weight"]) + more * self._rng.uniform(0.15, 0.3)
            weight = round(max(weight, _CANDIDATE_WEIGHT + 0.05), 2)
            count = int(report["signal_count"]) + more
            self._update(report, status="candidate", total_weight=weight, signal_count=count)
            return f"'{title}' passed the weight threshold ({weight:.2f}): potential → candidate"
        if status == "candidate":
            self._update(report, status="in_progress", signals_at_run=report["signal_count"])
            return f"research started on '{title}': candidate → in_progress"
        if status == "pending_input":
            self._finish_research(report)
            return f"a human answered the question on '{title}': pending_input → ready"
        roll = self._rng.random()
        if roll < 0.08:
            self._update(report, status="failed")
            return f"the research run on '{title}' crashed: in_progress → failed"
        if roll < 0.35:
            self._update(report, status="pending_input", actionability="requires_human_input")
            return f"research on '{title}' needs a human: in_progress → pending_input"
        self._finish_research(report)
        return f"research finished on '{title}': in_progress → ready"

    def _finish_research(self, report: dict[str, Any]) -> None:
        priority = self._rng.choice(("P0", "P1", "P2", "P2", "P3", "P4"))
        self._update(
            report,
            status="ready",
            priority=priority,
            actionability="immediately_actionable",
            already_addressed=False,
            signals_at_run=report["signal_count"],
            summary=self._summary(report["id"]),
        )
        self.sim.add_artefact(
            self.project_id,
            report["id"],
            "priority_judgment",
            {
                "explanation": f"{self._users[report['id']]} users affected.",
                "priority": priority,
                "dollar_value": float(self._rng.randrange(500, 9000, 250)),
            },
        )

    def _resolve(self) -> str | None:
        ready = self._with("ready")
        if not ready:
            return None
        report = self._rng.choice(ready)
        pr = f"https://github.com/acme/web/pull/{self._rng.randint(1000, 9999)}"
        self._update(
            report,
            status="resolved",
            work_state="done",
            implementation_pr_url=pr,
            implementation_pr_state="merged",
            implementation_pr_merged=True,
        )
        return f"the fix for '{report['title']}' was merged ({pr}): ready → resolved"

    def _rework(self) -> str | None:
        ready = self._with("ready")
        if not ready:
            return None
        report = self._rng.choice(ready)
        self._users[report["id"]] += self._rng.randint(2, 6)
        more = self._rng.randint(2, 4)
        summary = self._summary(report["id"]) + " New sessions show it on Chrome as well."
        self._update(
            report,
            summary=summary,
            signal_count=int(report["signal_count"]) + more,
            relevant_user_count=self._users[report["id"]],
            signals_at_run=int(report["signal_count"]) + more,
        )
        return f"'{report['title']}' was re-researched after {more} new signals: summary changed"

    def _suppress(self) -> str | None:
        quiet = self._with("potential", "candidate")
        if not quiet:
            return None
        report = self._rng.choice(quiet)
        self._update(report, status="suppressed", dismissal_reason="wontfix_irrelevant")
        return f"'{report['title']}' was dismissed: {report['status']} → suppressed"

    def _clean_up(self) -> str | None:
        finished = self._with("resolved", "suppressed", "failed")
        if len(finished) < 3:
            return None
        report = finished[0]
        self.sim.delete_report(self.project_id, report["id"])
        return f"old {report['status']} report '{report['title']}' was deleted"
