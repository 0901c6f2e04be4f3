"""The built-in sample events of `notifier preview`: several ordinary reports, in the states a
team meets every week, so that a preview shows what the rules do with each — including one
that a sensible configuration sends nowhere — rather than one flattering match.

PostHog's own policy (reference/posthog-today.md) notifies a report when it is ready and
actionable (``immediately_actionable`` or ``requires_human_input``); the samples straddle it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from notifier.core.diff import compare
from notifier.core.events import Enrichment, Event, EventType, Recording, Reviewer
from notifier.core.report import Report


@dataclass(frozen=True, slots=True)
class Sample:
    """One built-in sample: its name (``--sample NAME``), what it shows, the report before and
    after the change, and what its artefacts would add (``enrich: [artefacts]``)."""

    name: str
    about: str
    before: dict[str, Any] | None  # None: a new report
    after: dict[str, Any]
    enrichment: Enrichment
    removed: bool = False  # PostHog stopped listing ``after``

    def event(self, project_id: int) -> Event:
        report = Report.from_api(self.after)
        if self.removed:
            return Event.create(EventType.REMOVED, project_id, report, report, {})
        if self.before is None:
            return Event.create(EventType.NEW, project_id, report, None, {})
        previous = Report.from_api(self.before)
        return Event.create(
            EventType.STATUS_CHANGED, project_id, report, previous, compare(previous, report)
        )


def _report(report_id: str, title: str, summary: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": report_id,
        "title": title,
        "summary": summary,
        "total_weight": 0.8,
        "signal_count": 3,
        "relevant_user_count": 12,
        "artefact_count": 4,
        "priority": "P2",
        "actionability": "immediately_actionable",
        "already_addressed": False,
        "source_products": ["session_replay"],
        "created_at": "2026-01-14T09:12:03Z",
        "updated_at": "2026-01-15T16:40:11Z",
        **fields,
    }


def _recording(session_id: str, text: str) -> tuple[Recording, ...]:
    return (
        Recording(
            session_id=session_id,
            text=text,
            start_time="2026-01-15T16:02:11Z",
            end_time="2026-01-15T16:02:40Z",
        ),
    )


_PRICING: Final = _report(
    "5b1f0c2e-8d4a-4f6e-b1c3-2a9e7d6f4c01",
    "Pricing page toggle confuses annual vs monthly",
    "Visitors flip the annual/monthly toggle several times, then leave without choosing a plan.",
    status="ready",
)
_EXPORT: Final = _report(
    "9e3d7a41-6c2b-4b8f-a0d5-1f4e8c2b7a02",
    "CSV export stops at 10,000 rows",
    "Large exports end early without a warning; is the limit intended?",
    status="pending_input",
    priority="P1",
    actionability="requires_human_input",
    total_weight=1.6,
    signal_count=5,
)
_SIGNUP: Final = _report(
    "2c8a5e19-4f7d-4e3a-9b6c-7d1f0e5a8b03",
    "Signup form rejects emails with a plus sign",
    "Addresses like ana+work@example.com fail validation at signup.",
    status="resolved",
    priority="P1",
)
_SEARCH: Final = _report(
    "3a6c9f12-7b4e-4d2a-8e1f-5c0b9d3a6e05",
    "Search returns nothing for product codes with a dash",
    'Searches like "AB-1234" find no products although the code exists.\n\nSeen in 9 '
    "sessions this week, mostly from the B2B catalogue.",
    status="ready",
    priority="P1",
    total_weight=2.35,
    signal_count=9,
    relevant_user_count=31,
)
_ONBOARDING: Final = _report(
    "8d2e4b67-0a9c-4f1d-b7e3-9c6a2f8d4b06",
    "Onboarding checklist skipped on mobile",
    "New users on mobile close the checklist in the first minute.",
    status="in_progress",
    priority=None,
    actionability=None,
    total_weight=1.1,
    signal_count=4,
)
_BANNER: Final = _report(
    "4e7a1c38-2d9b-4a6f-9e05-1b8c7d3f2a07",
    "Cookie banner covers the Buy button on small screens",
    "On screens under 360px the banner hides the Buy button until dismissed.",
    status="suppressed",
    priority="P3",
)
_INVOICE: Final = _report(
    "6b9d3e71-5f2a-4c8e-a1d4-7e0f2b9c5d08",
    "Invoice PDF shows the wrong currency symbol",
    "Customers billed in CHF see € on their invoice PDFs.",
    status="ready",
)
_DARK: Final = _report(
    "1c5f8a94-3e6d-4b7a-9c2f-0d8e6a4b1f09",
    "Dark mode toggle resets after login",
    "The theme goes back to light after every login.",
    status="potential",
    priority=None,
    actionability=None,
    total_weight=0.9,
    signal_count=4,
)
_FOOTER: Final = _report(
    "7f4b2d86-1e9c-4a5b-8c3d-6e0a9f1b2c04",
    "Visitors hover over the footer links",
    "A pattern with no visible problem behind it.",
    status="ready",
    priority="P4",
    actionability="not_actionable",
    total_weight=0.2,
)

#: The samples, in the order `preview` shows them: one per status a team meets, then one that
#: PostHog's own policy leaves out.
SAMPLES: Final = (
    Sample(
        "new",
        "a new report, already researched and ready",
        None,
        _SEARCH,
        Enrichment(
            priority_explanation="Blocks B2B buyers from finding what they reorder.",
            reviewers=(
                Reviewer(login="ana-silva", name="Ana Silva", email="ana@example.com"),
                Reviewer(login="jkowalski"),
            ),
        ),
    ),
    Sample(
        "ready",
        "ready and actionable (PostHog's own policy notifies it)",
        {**_PRICING, "status": "in_progress"},
        _PRICING,
        Enrichment(
            recordings=_recording(
                "01941c7e-5b2d-7c4f-9a1e-3d8f6b2a9c10",
                "Switches between Annual and Monthly four times, then closes the tab.",
            ),
            priority_explanation="Affects plan choice on the pricing page: lost conversions.",
            actionability_explanation="The toggle's labels can be fixed in the page's copy.",
        ),
    ),
    Sample(
        "needs-input",
        "waiting for someone's answer (pending_input)",
        {**_EXPORT, "status": "in_progress"},
        _EXPORT,
        Enrichment(
            actionability_explanation="Only the product team can say if the cap is intended."
        ),
    ),
    Sample(
        "researching",
        "PostHog started researching it (in_progress)",
        {**_ONBOARDING, "status": "candidate"},
        _ONBOARDING,
        Enrichment(),
    ),
    Sample(
        "resolved",
        "a ready report resolved",
        {**_SIGNUP, "status": "ready"},
        _SIGNUP,
        Enrichment(priority_explanation="Blocked some signups."),
    ),
    Sample(
        "dismissed",
        "someone dismissed it in PostHog (suppressed)",
        {**_BANNER, "status": "ready"},
        _BANNER,
        Enrichment(),
    ),
    Sample(
        "removed",
        "PostHog no longer lists it",
        _INVOICE,
        _INVOICE,
        Enrichment(),
        removed=True,
    ),
    Sample(
        "reopened",
        "a resolved report back in research",
        {**_DARK, "status": "resolved"},
        _DARK,
        Enrichment(),
    ),
    Sample(
        "not-actionable",
        "ready but judged not actionable (PostHog's own policy does not notify it)",
        {**_FOOTER, "status": "in_progress"},
        _FOOTER,
        Enrichment(actionability_explanation="Nothing to change: hovering is not a problem."),
    ),
)
SAMPLE_NAMES: Final = tuple(sample.name for sample in SAMPLES)


def sample_named(name: str) -> Sample:
    """The built-in sample called ``name`` (one of ``SAMPLE_NAMES``)."""
    return next(sample for sample in SAMPLES if sample.name == name)
