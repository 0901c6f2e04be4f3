"""Warnings: settings that are valid but unwise (a sink no rule sends to, a jitter longer than
the interval, a template that is never used…). They never stop the notifier: ``check`` prints
them and the daemon logs them at start. Each names its key and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from notifier.config.checks import PLACEHOLDER_HOST, rule_where
from notifier.config.lint import rule_warnings, shadowed
from notifier.config.match import backtracking, regex_conditions
from notifier.config.settings import RuleSettings, Settings
from notifier.config.sinks import SinkSettings
from notifier.core.events import EventType
from notifier.core.report import Links
from notifier.core.rules import REGEX_TIMEOUT, Match, top_level
from notifier.core.times import format_span
from notifier.render.templates import CompiledTemplates, fragile_parts

#: What ``match.backtracking`` finds, for people.
_BACKTRACKING: Final = {
    "nested": "nested quantifiers (a repeat inside a repeat that can also match what follows "
    "it, like (a+)+ or (.*a){12})",
    "overlapping": "overlapping alternatives inside a repeat (alternatives that can match the "
    "same text, like (a|aa)+)",
}


def warnings(settings: Settings) -> list[str]:
    """Every warning about ``settings`` as validated (before the loader caps jitter and
    backoff_max), in the order ``check`` prints them."""
    return _section_warnings(settings) + _rule_warnings(settings) + _sink_warnings(settings)


def _section_warnings(settings: Settings) -> list[str]:
    poll, delivery, rules = settings.poll, settings.delivery, settings.rules
    used = {s for r in rules for s in r.sinks}
    alerting = settings.self_alerts.sinks
    used |= set(alerting or ())  # a sink only for the notifier's own notices is in use
    found = [
        f"sinks.{name}: no rule sends to it; add it to a rule's sinks or remove it"
        for name in settings.sinks
        if name not in used
    ]
    if not rules:
        found.append("rules: there are none, so nothing will be sent; add a rule")
    interval = format_span(poll.interval, "config")
    if poll.interval < 10:
        found.append(
            f"poll.interval: {interval} is under 10s; every cycle lists "
            "every project and PostHog allows 480 requests/minute; try 60s"
        )
    if "jitter" in poll.model_fields_set and poll.jitter > poll.interval:
        found.append(f"poll.jitter: longer than poll.interval; using {interval}")
    if delivery.backoff_max < delivery.backoff_initial:
        found.append("delivery.backoff_max: shorter than backoff_initial; using backoff_initial")
    if alerting is not None and len(alerting) == 1 and len(settings.sinks) > 1:
        found.append(
            f"self_alerts.sinks: only {alerting[0]!r}, so its own failures cannot be reported; "
            "add a second sink"
        )
    if settings.posthog.host.startswith("http://"):
        found.append("posthog.host: http:// sends the API key unencrypted; use https://")
    return found


def _rule_warnings(settings: Settings) -> list[str]:
    found, rules = [], settings.rules
    names_of = [rule_where(i, r.name) for i, r in enumerate(rules)]
    for index, rule in enumerate(settings.rules):
        where, sinks = rule_where(index, rule.name), [settings.sinks[s] for s in rule.sinks]
        names = ", ".join(rule.sinks)
        if rule.reply_broadcast and not any(sink.living for sink in sinks):
            found.append(
                f"{where}.reply_broadcast: none of its sinks ({names}) is a slack (bot token) "
                "sink, the only kind that keeps one message per report with thread replies; "
                "it has no effect"
            )
        elif rule.reply_broadcast and (top_level(rule.match).events or set()) <= {EventType.NEW}:
            found.append(
                f"{where}.reply_broadcast: the rule sees only new reports, whose message starts "
                "the thread; it has no effect (match status_changed or updated events)"
            )
        found += rule_warnings(where, rule.match) + _regex_warnings(where, rule.match)
        if rule.templates is not None:
            found += _fragile(f"{where}.template", rule.templates)
        if rule.templates is not None and not any(sink.payload == "slack" for sink in sinks):
            found.append(
                f"{where}.template: none of its sinks ({names}) is a slack or slack_webhook "
                "sink, so the template is never used (webhooks receive the report as JSON)"
            )
    return found + shadowed(rules, names_of)


def _regex_warnings(where: str, match: Match) -> list[str]:
    """Regexes that can backtrack catastrophically on long text (a report is attacker text)."""
    found = []
    for path, pattern in regex_conditions(match):
        if kinds := backtracking(pattern):
            found.append(
                f"{where}.match.{path}.regex: {pattern!r} has "
                f"{' and '.join(_BACKTRACKING[kind] for kind in kinds)}, so a search on long "
                f"text can take very long: each gives up after {REGEX_TIMEOUT:g}s, a cycle's "
                "together after poll.routing_budget, and then the rule does not match. Anchor "
                "it (^…$), make the inner repeat an atomic group or a possessive quantifier "
                "((?>a+)+ or (a++)+), or use a simpler pattern (a+$ rather than (a+)+$ or "
                "(a|aa)+$)"
            )
    return found


def _fragile(where: str, compiled: CompiledTemplates) -> list[str]:
    return [
        f"{where}.{problem} — with a report carrying only the fields every PostHog version "
        "sends; guard optional fields with `is defined` or `| default(...)`, or the default "
        "message is sent instead on older PostHog versions"
        for problem in fragile_parts(compiled, Links(PLACEHOLDER_HOST))
    ]


def _sink_warnings(settings: Settings) -> list[str]:
    found = []
    for name, sink in settings.sinks.items():
        found += _one_sink_warnings(name, sink, [r for r in settings.rules if name in r.sinks])
    return found


def _one_sink_warnings(name: str, sink: SinkSettings, routing: Sequence[RuleSettings]) -> list[str]:
    found = []
    own = sink.message_templates()
    if own is not None:
        found += _fragile(f"sinks.{name}.template", own)
    found += sink.advice(f"sinks.{name}")
    if own is not None and routing and all(r.templates is not None for r in routing):
        found.append(
            f"sinks.{name}.template: every rule sending to it has its own template, which "
            "replaces this one whole, so this one is never used"
        )
    return found


def self_alerts_advice(settings: Settings) -> str | None:
    """``check``'s suggestion when ``self_alerts.sinks`` is not set (not a warning: log-only is
    a sound default, and ``check --strict`` must not fail on it); None when it is."""
    if settings.self_alerts.sinks is not None or not settings.sinks:
        return None
    return (
        "self_alerts.sinks is not set, so the notifier's notices about itself stay in the log, "
        "/metrics and /readyz (until this version they went to every sink); to be told in "
        "Slack too, name an operators' sink there (not a product channel), or set "
        "`sinks: []` to say the log is enough"
    )
