"""A cycle costs what changed: unchanged reports are neither parsed from the snapshot nor
written back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from notifier.config.settings import Settings
from notifier.demo.simulator import FakePostHog
from notifier.runtime.daemon import Notifier
from notifier.state.store import SnapshotRow, Store
from tests.factories import PROJECT


class CountingStore(Store):
    """A real SQLite store that records which snapshot rows each cycle loads."""

    loaded: list[list[str]]

    def snapshot_rows(self, project_id: int, report_ids: Sequence[str]) -> dict[str, SnapshotRow]:
        self.loaded.append(list(report_ids))
        return super().snapshot_rows(project_id, report_ids)


@pytest.mark.parametrize("poll_extra", ["full_sync_every: 0s", ""], ids=["full", "incremental"])
def test_unchanged_reports_are_not_loaded_or_written(
    posthog: FakePostHog,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    poll_extra: str,
) -> None:
    """After the baseline, a quiet cycle loads no snapshot row and writes none; a change loads
    and writes exactly the changed report; reports by status still count every report. The
    same with full and with incremental listings."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}", status="ready") for i in range(30)]
    settings = load(make_config(poll_extra=poll_extra))
    store = CountingStore(settings.state.path)
    store.loaded = []
    notifier = Notifier(settings, store=store)
    try:
        baseline = notifier.poll(PROJECT)
        assert baseline is not None
        assert baseline.baseline
        assert len(store.snapshot(PROJECT)) == 30  # recorded page by page (cycle.baseline)
        quiet = notifier.poll(PROJECT)
        assert quiet is not None
        assert store.loaded[-1] == []
        assert quiet.write.upserts == []
        assert quiet.incremental is (poll_extra == "")
        assert store.status_counts(PROJECT) == {"ready": 30}
        posthog.update_report(PROJECT, reports[7]["id"], status="resolved")
        changed = notifier.poll(PROJECT)
        assert changed is not None
        assert store.loaded[-1] == [reports[7]["id"]]
        assert [row.report.id for row in changed.write.upserts] == [reports[7]["id"]]
        assert [e.type.value for e in changed.events] == ["status_changed"]
        assert store.status_counts(PROJECT) == {"ready": 29, "resolved": 1}
    finally:
        notifier.close()


@pytest.mark.usefixtures("receiver")
def test_housekeeping_prunes_delivered_entries_after_keep_delivered(
    posthog: FakePostHog,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
) -> None:
    """`delivery.keep_delivered` reaches the hourly prune: delivered entries older than it go,
    younger ones stay."""
    path = make_config(
        first_run="notify",
        rules="- {name: all, match: {}, sinks: [hook]}",
        extra="self_alerts: {sinks: []}",
    )
    path.write_text(
        path.read_text().replace("backoff_max: 0.2s", "backoff_max: 0.2s\n  keep_delivered: 1h")
    )
    posthog.add_report(PROJECT, title="old")
    notifier = Notifier(load(path))
    try:
        assert notifier.settings.delivery.keep_delivered == 3600
        notifier.poll(PROJECT)
        notifier.drain_all()
        assert notifier.store.counts() == {("hook", "delivered"): 1}
        notifier.housekeeping()
        assert notifier.store.counts() == {("hook", "delivered"): 1}  # younger than an hour
        notifier.store._conn().execute("UPDATE outbox SET finished_at = finished_at - 3601")
        notifier.housekeeping()
        assert notifier.store.counts() == {}
    finally:
        notifier.close()
