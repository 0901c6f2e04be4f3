"""The simulated PostHog speaks today's PostHog (V6): paths, fields, signals, config, listing
semantics and the write endpoints with both error shapes (``posthog-today.md``), over real TCP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier.demo.simulator import DemoStory, FakePostHog
from notifier.demo.simulator.facts import LISTABLE_STATUSES

KEY = "phx_test_key"
REPORTS = "/api/projects/1/signals/reports/"
LEGACY = "/api/projects/1/signal_reports/"
EXAMPLES = Path("/work/shared/reference/posthog-examples")
NOT_FOUND = {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None}


def _example(name: str) -> Any:
    """A body from the reference examples (skipped where the reference is not at hand)."""
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return json.loads(path.read_text())


@pytest.fixture
def sim() -> Iterator[FakePostHog]:
    """A running fake PostHog speaking V6, project 1."""
    with FakePostHog(api_version=6) as fake:
        yield fake


@pytest.fixture
def api(sim: FakePostHog) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=sim.url, headers=headers, timeout=2) as http:
        yield http


def _ids(page: dict[str, Any]) -> list[str]:
    return [r["id"] for r in page["results"]]


def _state(api: httpx.Client, rid: str, **body: Any) -> httpx.Response:
    return api.post(f"{REPORTS}{rid}/state/", json=body)


# ------------------------------------------------------------------------------- reading


def test_v6_serves_only_the_signals_prefix_with_todays_fields(
    sim: FakePostHog, api: httpx.Client
) -> None:
    """signal_reports/ is gone (Django's 404); report fields are V5's plus collapsed_note_count,
    never relevant_user_count, and list items' metrics leave out their query."""
    metric = {"name": "errors", "value": 3, "query": {"kind": "TrendsQuery"}}
    report = sim.add_report(1, metrics=[metric])
    legacy = api.get(LEGACY)
    assert legacy.status_code == 404
    assert legacy.json() == NOT_FOUND
    listed = api.get(REPORTS).json()["results"][0]
    retrieved = api.get(f"{REPORTS}{report['id']}/").json()
    assert retrieved["collapsed_note_count"] == 0
    assert "relevant_user_count" not in retrieved
    keys = list(_example("v5-report.json"))
    at = keys.index("artefact_count") + 1
    assert list(retrieved) == [*keys[:at], "collapsed_note_count", *keys[at:]]
    assert retrieved["metrics"] == [metric]
    assert listed["metrics"] == [{"name": "errors", "value": 3}]


def test_artefact_writes_never_move_updated_at(sim: FakePostHog, api: httpx.Client) -> None:
    """An artefact, added by PostHog or written through the API, moves artefact_count only."""
    report = sim.add_report(1)
    sim.add_artefact(1, report["id"], "priority_judgment", {"priority": "P0"})
    note = {"artefact_type": "note", "content": {"note": "seen", "author": "bot"}}
    assert api.post(f"{REPORTS}{report['id']}/artefacts/", json=note).status_code == 201
    now = api.get(f"{REPORTS}{report['id']}/").json()
    assert now["updated_at"] == report["updated_at"]
    assert now["artefact_count"] == 2


def test_signals_endpoint_serves_the_report_and_every_signal(
    sim: FakePostHog, api: httpx.Client
) -> None:
    """GET {id}/signals/ answers {report, signals}: the full report and all its signals, unpaginated
    (more than a page's 100), oldest first; a recording is a session_replay signal whose extra
    names the segment, as in v6-signals.json."""
    report = sim.add_report(1, title="Checkout")
    for n in range(120):
        sim.add_signal(1, report["id"], content=f"error {n}")
    recording = sim.add_recording(
        1,
        report["id"],
        session_id="sess-1",
        segment_title="Rage clicks on Pay",
        start_time="2027-01-15T16:20:41.000000Z",
        end_time="2027-01-15T16:21:09.000000Z",
        problem_type="blocking_exception",
        distinct_id="user-8812",
    )
    body = api.get(f"{REPORTS}{report['id']}/signals/").json()
    assert body["report"] == api.get(f"{REPORTS}{report['id']}/").json()
    assert len(body["signals"]) == 121
    assert [s["content"] for s in body["signals"][:3]] == ["error 0", "error 1", "error 2"]
    assert body["signals"][-1] == recording
    example = _example("v6-signals.json")["signals"]
    assert list(recording) == list(example[0])
    assert list(recording["extra"]) == list(example[0]["extra"])
    assert list(body["signals"][0]) == list(example[1])
    assert recording["source_product"] == "session_replay"
    assert recording["source_type"] == "session_problem"
    assert recording["extra"]["start_time"] == "2027-01-15T16:20:41.000000Z"
    assert sim.requests[-2].path == f"{REPORTS}{report['id']}/signals/"


def test_signals_endpoint_is_404_before_v6_and_for_unknown_reports(
    sim: FakePostHog, api: httpx.Client
) -> None:
    """Unknown or deleted reports are PostHog's 404 body; V1 to V5 have no such endpoint."""
    report = sim.add_report(1)
    gone = sim.add_report(1)
    sim.delete_report(1, gone["id"])
    sim.add_recording(1, report["id"], session_id="s")
    assert api.get(f"{REPORTS}nope/signals/").json() == NOT_FOUND
    assert api.get(f"{REPORTS}{gone['id']}/signals/").status_code == 404
    for version in (4, 5):
        sim.api_version = version
        assert api.get(f"{REPORTS}{report['id']}/signals/").status_code == 404
        assert api.get("/api/projects/1/signals/config/").status_code == 404
    with pytest.raises(ValueError, match="problem_type"):
        sim.add_recording(1, report["id"], session_id="s", problem_type="boredom")


def test_signals_config_defaults_to_no_channel(sim: FakePostHog, api: httpx.Client) -> None:
    """GET signals/config/ is SignalTeamConfig's shape: no default channel until one is set."""
    config = api.get("/api/projects/1/signals/config/").json()
    assert config["default_slack_notification_channel"] is None
    assert config["default_autostart_priority"] == "P4"
    sim.set_signals_config(1, default_slack_notification_channel="C0123456789")
    config = api.get("/api/projects/1/signals/config/").json()
    assert config["default_slack_notification_channel"] == "C0123456789"
    assert api.get("/api/projects/99/signals/config/").status_code == 404


def test_status_filter_refuses_deleted_and_unknown_values(
    sim: FakePostHog, api: httpx.Client
) -> None:
    """A status filter with deleted (or nonsense) is a 400 ValidationError that lists the accepted
    values; V5 still answers status=deleted with an empty page."""
    sim.add_report(1)
    answer = api.get(REPORTS, params={"status": "ready,deleted"})
    assert answer.status_code == 400
    body = answer.json()
    assert (body["type"], body["code"], body["attr"]) == (
        "validation_error",
        "invalid_input",
        "status",
    )
    assert body["detail"].startswith("Invalid status value(s): deleted")
    assert body["detail"].endswith(f"Accepted values: {', '.join(LISTABLE_STATUSES)}")
    assert "deleted" not in body["detail"].split("Accepted values:")[1]
    assert api.get(REPORTS, params={"status": "nonsense"}).status_code == 400
    sim.api_version = 5
    assert api.get(REPORTS, params={"status": "deleted"}).json()["results"] == []


def test_include_all_statuses_and_count_only(sim: FakePostHog, api: httpx.Client) -> None:
    """include_all_statuses adds suppressed (never deleted); count_only is just the count. V5
    ignores both, as older servers ignore unknown parameters."""
    ready = [sim.add_report(1)["id"] for _ in range(3)]
    hidden = sim.add_report(1, status="suppressed")["id"]
    sim.delete_report(1, sim.add_report(1)["id"])
    assert set(_ids(api.get(REPORTS).json())) == set(ready)
    every = api.get(REPORTS, params={"include_all_statuses": "true"}).json()
    assert set(_ids(every)) == {*ready, hidden}
    counted = api.get(REPORTS, params={"count_only": "true"}).json()
    assert counted == {"count": 3, "next": None, "previous": None, "results": []}
    both = {"count_only": "true", "include_all_statuses": "true"}
    assert api.get(REPORTS, params=both).json()["count"] == 4
    sim.api_version = 5
    assert len(api.get(REPORTS, params=both).json()["results"]) == 3


def _page_all(api: httpx.Client, params: dict[str, str]) -> list[str]:
    page = api.get(REPORTS, params={**params, "limit": "20"}).json()
    seen = _ids(page)
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += _ids(page)
    return seen


def test_default_ordering_is_unstable_for_paging(sim: FakePostHog, api: httpx.Client) -> None:
    """Without a (known) ordering field, reports with equal keys come back in a different order
    on every request: paging through them repeats some and misses others. A known field
    gets id appended, and paging is exact."""
    created = {sim.add_report(1, total_weight=1.0)["id"] for _ in range(60)}
    for params in ({}, {"ordering": "nonsense,-bogus"}):
        seen = _page_all(api, params)
        assert len(seen) == 60
        assert set(seen) != created  # duplicates, so some missed
    seen = _page_all(api, {"ordering": "nonsense,-total_weight"})
    assert seen == sorted(created)  # equal weights: id decides
    assert _page_all(api, {"ordering": "created_at,id"}) == [
        r["id"] for r in sim.reports(1) if r["id"] in created
    ]


# ------------------------------------------------------------------------------- writing


def test_dismiss_saves_the_report_and_records_the_dismissal(
    sim: FakePostHog, api: httpx.Client
) -> None:
    """A dismissal moves the status and updated_at, shows the reason and note (from the dismissal
    artefact it writes), and is kept in writes and requests with its body."""
    report = sim.add_report(1, status="candidate")
    body = {"state": "suppressed", "dismissal_reason": "wontfix_irrelevant", "dismissal_note": "x"}
    answer = _state(api, report["id"], **body)
    assert answer.status_code == 200
    after = answer.json()
    assert after == api.get(f"{REPORTS}{report['id']}/").json()
    assert after["status"] == "suppressed"
    assert after["updated_at"] > report["updated_at"]
    assert (after["dismissal_reason"], after["dismissal_note"]) == ("wontfix_irrelevant", "x")
    assert after["artefact_count"] == 1
    artefacts = api.get(f"{REPORTS}{report['id']}/artefacts/").json()["results"]
    assert artefacts[0]["type"] == "dismissal"
    assert [(w.action, w.report_id, w.body) for w in sim.writes] == [("state", report["id"], body)]
    posted = [r for r in sim.requests if r.method == "POST"]
    assert [(r.path, r.json()) for r in posted] == [(f"{REPORTS}{report['id']}/state/", body)]


# (status before, body, status code after) — the moves of posthog-today.md "Statuses and moves".
MOVES = [
    ("ready", {"state": "resolved", "dismissal_reason": "fixed_outside_posthog"}, 200),
    ("pending_input", {"state": "resolved"}, 200),
    ("candidate", {"state": "resolved"}, 409),
    ("in_progress", {"state": "suppressed", "dismissal_reason": "other"}, 200),
    ("failed", {"state": "suppressed", "dismissal_reason": "other"}, 409),
    ("suppressed", {"state": "potential"}, 200),  # restore
    ("suppressed", {"state": "ready"}, 200),  # restore
    ("suppressed", {"state": "resolved"}, 409),  # not suppressed through the API from ready
    ("resolved", {"state": "potential"}, 200),  # reopen
    ("ready", {"state": "potential", "snooze_for": 5}, 200),
    ("ready", {"state": "potential"}, 409),  # only a snooze goes back from a live status
    ("failed", {"state": "potential", "snooze_for": 5}, 409),
    ("potential", {"state": "failed"}, 200),
    ("ready", {"state": "candidate"}, 409),  # research is PostHog's own move
    ("ready", {"state": "ready"}, 409),
]


@pytest.mark.parametrize(("before", "body", "code"), MOVES)
def test_state_moves_allowed_and_refused(
    sim: FakePostHog, api: httpx.Client, before: str, body: dict[str, Any], code: int
) -> None:
    """Allowed moves answer the report in its new status; others a 409 {"error": …} that names
    both statuses, changing nothing and recording no write."""
    report = sim.add_report(1, status=before)
    answer = _state(api, report["id"], **body)
    assert answer.status_code == code, answer.text
    now = sim.reports(1)[0]
    if code == 200:
        assert answer.json()["status"] == now["status"] == body["state"]
        assert len(sim.writes) == 1
    else:
        assert answer.json() == {
            "error": f"Cannot transition report from {before} to {body['state']}"
        }
        assert now == report
        assert sim.writes == []


def test_resolve_after_dismissal_depends_on_the_status_before(
    sim: FakePostHog, api: httpx.Client
) -> None:
    """A report suppressed from ready may be resolved; one suppressed from candidate may not;
    a resolved one may not be dismissed (the reference's own 409 body)."""
    from_ready = sim.add_report(1, status="ready")["id"]
    from_candidate = sim.add_report(1, status="candidate")["id"]
    for rid in (from_ready, from_candidate):
        assert _state(api, rid, state="suppressed", dismissal_reason="other").status_code == 200
    assert _state(api, from_ready, state="resolved").status_code == 200
    assert _state(api, from_candidate, state="resolved").status_code == 409
    refused = _state(api, from_ready, state="suppressed", dismissal_reason="other")
    assert refused.json() == _example("v6-write-answers.json")["state_409"]


def test_state_validation_errors_have_both_shapes(sim: FakePostHog, api: httpx.Client) -> None:
    """Field errors are DRF's {type, code, detail, attr}; bad combinations {"error": …}; unknown
    reports 404; nothing refused is a write."""
    rid = sim.add_report(1)["id"]
    answers = _example("v6-write-answers.json")
    bad_reason = _state(api, rid, state="suppressed", dismissal_reason="nope")
    assert (bad_reason.status_code, bad_reason.json()) == (400, answers["state_400_reason"])

    def refused(**body: Any) -> tuple[Any, ...]:
        answer = _state(api, rid, **body)
        assert answer.status_code == 400, answer.text
        got = answer.json()
        return (got["attr"], got["code"]) if "attr" in got else (got["error"],)

    assert refused() == ("state", "required")
    assert refused(state="deleted") == ("state", "invalid_choice")
    long = "x" * 4001
    assert refused(state="suppressed", dismissal_reason="other", dismissal_note=long) == (
        "dismissal_note",
        "max_length",
    )
    assert refused(state="potential", snooze_for=0) == ("snooze_for", "min_value")
    assert refused(state="potential", snooze_for=100_001) == ("snooze_for", "max_value")
    assert refused(state="potential", snooze_for="soon") == ("snooze_for", "invalid")
    assert refused(state="resolved", snooze_for=3) == (
        "snooze_for can only be used with state 'potential'.",
    )
    assert "dismissal_reason" in refused(state="suppressed")[0]
    garbage = api.post(f"{REPORTS}{rid}/state/", content=b"{not json")
    assert (garbage.status_code, garbage.json()["code"]) == (400, "parse_error")
    assert _state(api, "nope", state="resolved").json() == NOT_FOUND
    assert _state(api, rid, state="potential", snooze_for=100_000).status_code == 200
    assert [w.body for w in sim.writes] == [{"state": "potential", "snooze_for": 100_000}]


def test_writes_need_task_write(sim: FakePostHog, api: httpx.Client) -> None:
    """A key without task:write reads as before; every write is the reference's 403."""
    rid = sim.add_report(1)["id"]
    sim.write_scope_ok = False
    denied = _example("v6-write-answers.json")["state_403_scope"]
    for path, body in (
        (f"{rid}/state/", {"state": "resolved"}),
        ("bulk-state/", {"ids": [rid], "state": "resolved"}),
        (f"{rid}/artefacts/", {"artefact_type": "note", "content": {"note": "n"}}),
        (f"{rid}/claim/", {}),
        (f"{rid}/feedback/", {"sentiment": "positive"}),
    ):
        answer = api.post(f"{REPORTS}{path}", json=body)
        assert (answer.status_code, answer.json()) == (403, denied)
    assert api.get(f"{REPORTS}{rid}/").status_code == 200
    wrong_key = httpx.post(f"{sim.url}{REPORTS}{rid}/claim/", json={}, timeout=2)
    assert wrong_key.json()["code"] == "not_authenticated"
    assert sim.writes == []


def test_bulk_state_answers_per_id(sim: FakePostHog, api: httpx.Client) -> None:
    """bulk-state moves what it may and says, per id, what became of each; more than 100 ids
    is a 400."""
    live = sim.add_report(1, status="ready")["id"]
    already = sim.add_report(1, status="suppressed")["id"]
    resolved = sim.add_report(1, status="resolved")["id"]
    body = {"ids": [live, already, resolved, "nope"], "state": "suppressed"}
    body["dismissal_reason"] = "report_unclear"
    answer = api.post(f"{REPORTS}bulk-state/", json=body).json()
    outcomes = [(r["id"], r["outcome"], r["status"]) for r in answer["results"]]
    assert outcomes == [
        (live, "transitioned", "suppressed"),
        (already, "skipped", "suppressed"),
        (resolved, "failed", "resolved"),
        ("nope", "not_found", None),
    ]
    assert answer["results"][2]["detail"] == "Cannot transition report from resolved to suppressed"
    counts = {k: v for k, v in answer.items() if k.endswith("_count")}
    expected = _example("v6-write-answers.json")["bulk_state_200"]
    assert set(counts) == {k for k in expected if k.endswith("_count")}
    assert counts == {
        "transitioned_count": 1,
        "skipped_count": 1,
        "failed_count": 1,
        "not_found_count": 1,
    }
    assert set(answer["results"][0]) == set(expected["results"][0])
    too_many = api.post(f"{REPORTS}bulk-state/", json={**body, "ids": [live] * 101})
    assert (too_many.status_code, too_many.json()["attr"]) == (400, "ids")
    assert [w.action for w in sim.writes] == ["bulk-state"]


def test_note_artefact_is_created(sim: FakePostHog, api: httpx.Client) -> None:
    """A note is a 201 artefact in the reference's shape, credited to the key's owner and listed
    first; other artefact types and empty notes are refused."""
    rid = sim.add_report(1)["id"]
    content = {"note": "Acknowledged in Slack by @alice", "author": "posthog-signal-notifier"}
    answer = api.post(
        f"{REPORTS}{rid}/artefacts/", json={"artefact_type": "note", "content": content}
    )
    assert answer.status_code == 201
    note = answer.json()
    assert set(note) == set(_example("v6-write-answers.json")["note_201"])
    assert (note["report_id"], note["type"], note["content"]) == (rid, "note", content)
    listed = api.get(f"{REPORTS}{rid}/artefacts/").json()["results"][0]
    assert listed["id"] == note["id"]
    assert listed["created_by"] == sim.key_user
    judgment = {"artefact_type": "priority_judgment", "content": {"priority": "P0"}}
    assert api.post(f"{REPORTS}{rid}/artefacts/", json=judgment).json()["attr"] == "artefact_type"
    empty = {"artefact_type": "note", "content": {"note": " "}}
    assert api.post(f"{REPORTS}{rid}/artefacts/", json=empty).json()["attr"] == "content"
    assert [w.action for w in sim.writes] == ["note"]


def test_claim_release_and_conflict(sim: FakePostHog, api: httpx.Client) -> None:
    """A claim is the key owner's (updated_at unchanged); release undoes it; another user's
    claim makes both a 409 {"error": …}."""
    report = sim.add_report(1)
    rid = report["id"]
    claimed = api.post(f"{REPORTS}{rid}/claim/", json={}).json()
    assert (claimed["assignee"], claimed["work_state"]) == (sim.key_user, "working")
    assert claimed["updated_at"] == report["updated_at"]
    released = api.post(f"{REPORTS}{rid}/claim/", json={"release": True}).json()
    assert (released["assignee"], released["work_state"]) == (None, "unclaimed")
    sim.claim_as(1, rid, "Bob")
    for body in ({}, {"release": True}):
        conflict = api.post(f"{REPORTS}{rid}/claim/", json=body)
        assert conflict.status_code == 409
        assert conflict.json() == {"error": "Report is already claimed by Bob."}
    bad = api.post(f"{REPORTS}{rid}/claim/", json={"release": "yes"})
    assert (bad.status_code, bad.json()["attr"]) == (400, "release")
    assert [w.body for w in sim.writes] == [{}, {"release": True}]


def test_feedback(sim: FakePostHog, api: httpx.Client) -> None:
    """Feedback is accepted with a sentiment; anything else is a 400 on sentiment."""
    rid = sim.add_report(1)["id"]
    ok = api.post(f"{REPORTS}{rid}/feedback/", json={"sentiment": "negative", "note": "noisy"})
    assert ok.status_code == 200
    bad = api.post(f"{REPORTS}{rid}/feedback/", json={"sentiment": "meh"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_choice")
    assert api.post(f"{REPORTS}nope/feedback/", json={"sentiment": "positive"}).status_code == 404
    assert [w.action for w in sim.writes] == ["feedback"]


def test_methods_per_endpoint(sim: FakePostHog, api: httpx.Client) -> None:
    """Reads are GET, writes POST: the other method is a 405; V5 has no write endpoints."""
    rid = sim.add_report(1)["id"]
    assert api.get(f"{REPORTS}{rid}/state/").status_code == 405
    assert api.get(f"{REPORTS}bulk-state/").status_code == 405
    assert api.post(f"{REPORTS}{rid}/", json={}).status_code == 405
    assert api.post(f"{REPORTS}{rid}/signals/", json={}).status_code == 405
    assert api.patch(f"{REPORTS}{rid}/", json={"status": "resolved"}).status_code == 405
    sim.api_version = 5
    assert _state(api, rid, state="resolved").status_code == 404
    assert sim.writes == []


# ------------------------------------------------------------------------------- the demo


def test_demo_story_on_v6_brings_recordings_as_signals() -> None:
    """On V6 every story report's recording is a session_replay signal; no video_segment."""
    sim = FakePostHog(api_version=6)
    story = DemoStory(sim, 1)
    story.seed_reports()
    lines = [story.step() for _ in range(60)]
    assert any("→ ready" in line for line in lines)
    for report in sim.reports(1):
        signals = sim.signals(1, report["id"])
        assert [s["source_product"] for s in signals] == ["session_replay"]
        assert signals[0]["extra"]["segment_title"] == report["title"]
        assert signals[0]["extra"]["start_time"] < signals[0]["extra"]["end_time"]
        assert all(a["type"] != "video_segment" for a in sim._artefacts_of(1, report["id"]) or [])
