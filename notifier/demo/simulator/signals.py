"""V6's signals: the signals a report was clustered from, and the team's signals config.

``SignalData`` is the part of ``FakePostHog`` that stores them. Tests and the demo add signals
with ``add_signal`` (any product) and ``add_recording`` (a ``session_replay`` signal, how
recordings reach a report since ``video_segment`` artefacts lost their producer), and set the
config with ``set_signals_config``; V6 serves them at ``GET …/signals/reports/{id}/signals/``
(``{"report": …, "signals": [...]}``, unpaginated) and ``GET …/signals/config/``.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Any

from notifier.demo.simulator.facts import PROBLEM_TYPES, SIGNALS_CONFIG_DEFAULTS
from notifier.demo.simulator.reports import ReportData

__all__ = ["SignalData"]


def _later(iso: str, seconds: float) -> str:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SignalData(ReportData):
    """Each report's signals and each project's signals config, over ``ReportData``.

    Adding a signal stores it and nothing else: the report's ``signal_count``, weight and
    ``updated_at`` stay as they are (change them with ``update_report`` when a test wants the
    join to show, as PostHog's would).
    """

    def add_signal(self, project_id: int, report_id: str, **fields: Any) -> dict[str, Any]:
        """Store one signal of a report, shaped like ``v6-signals.json`` (an ``error_tracking``
        issue unless ``fields`` say otherwise); return a copy of it. Unknown fields are served
        as given."""
        with self._data_lock:
            self._report(project_id, report_id)  # KeyError for an unknown report
            self._serial += 1
            signal: dict[str, Any] = {
                "signal_id": str(uuid.uuid4()),
                "content": f"Simulated signal {self._serial}.",
                "source_product": "error_tracking",
                "source_type": "issue",
                "source_id": f"issue-{self._serial}",
                "weight": 0.5,
                "timestamp": self._tick(),
                "extra": {},
                "match_metadata": {},
            }
            signal.update(copy.deepcopy(fields))
            signal["signal_id"] = str(signal["signal_id"])
            self._project(project_id).signals.setdefault(report_id, []).append(signal)
            return copy.deepcopy(signal)

    def add_recording(
        self,
        project_id: int,
        report_id: str,
        *,
        session_id: str,
        segment_title: str = "Session with the problem",
        start_time: str | None = None,
        end_time: str | None = None,
        problem_type: str = "confusion",
        distinct_id: str = "user-1",
        content: str = "The user struggled here.",
        **fields: Any,
    ) -> dict[str, Any]:
        """Store a ``session_replay`` signal (``source_type`` ``session_problem``) whose
        ``extra`` names the recording's segment; ``start_time`` defaults to the fake's clock,
        ``end_time`` to 30 s later. ``fields`` override the signal's other fields (weight…)."""
        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type {problem_type!r} is not one of {PROBLEM_TYPES}")
        if start_time is None:
            with self._data_lock:
                start_time = self._tick()
        extra = {
            "session_id": session_id,
            "segment_title": segment_title,
            "start_time": start_time,
            "end_time": end_time or _later(start_time, 30),
            "problem_type": problem_type,
            "distinct_id": distinct_id,
        }
        signal = {
            "content": content,
            "source_product": "session_replay",
            "source_type": "session_problem",
            "source_id": session_id,
            "timestamp": extra["end_time"],
            "extra": extra,
            **fields,
        }
        return self.add_signal(project_id, report_id, **signal)

    def signals(self, project_id: int, report_id: str) -> list[dict[str, Any]]:
        """Copies of the report's stored signals, oldest ``timestamp`` first."""
        with self._data_lock:
            self._report(project_id, report_id)
            return self._sorted_signals(project_id, report_id)

    def set_signals_config(self, project_id: int, **fields: Any) -> dict[str, Any]:
        """Change the project's signals config (e.g. ``default_slack_notification_channel=
        "C0123456789"``); return it as ``GET …/signals/config/`` serves it."""
        with self._data_lock:
            config = self._project(project_id).config
            config.update(copy.deepcopy(fields))
            return {**copy.deepcopy(SIGNALS_CONFIG_DEFAULTS), **copy.deepcopy(config)}

    # ------------------------------------------------------------ the data as the API shows it

    def _sorted_signals(self, project_id: int, report_id: str) -> list[dict[str, Any]]:
        stored = self._projects[project_id].signals.get(report_id, [])
        ordered = sorted(stored, key=lambda s: str(s.get("timestamp")))
        return copy.deepcopy(ordered)

    def _report_signals(self, pid: int, rid: str) -> dict[str, Any] | None:
        """``{"report": …, "signals": [...]}``, or None when the report is not shown (404)."""
        with self._data_lock:
            report = self._projects[pid].reports.get(rid)
            if report is None or not self._shown(report):
                return None
            return {"report": self._render(report), "signals": self._sorted_signals(pid, rid)}

    def _signals_config(self, pid: int) -> dict[str, Any]:
        with self._data_lock:
            config = self._projects[pid].config
            return {**copy.deepcopy(SIGNALS_CONFIG_DEFAULTS), **copy.deepcopy(config)}
