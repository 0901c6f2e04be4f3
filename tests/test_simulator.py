"""The fakes are faithful: PostHog, Slack and a webhook hook_receiver answer like the real ones."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from notifier.demo.simulator import DemoStory, FakePostHog
from tests.fakes import FakeSlack, WebhookReceiver

KEY = "phx_test_key"
NEW = "/api/projects/1/signals/reports/"
LEGACY = "/api/projects/1/signal_reports/"


@pytest.fixture
def sim() -> Iterator[FakePostHog]:
    """A running fake PostHog (V5, project 1), stopped afterwards."""
    with FakePostHog(api_version=5) as fake:
        yield fake


@pytest.fixture
def api(sim: FakePostHog) -> Iterator[httpx.Client]:
    """An httpx api with the right key, over real TCP."""
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=sim.url, headers=headers, timeout=2) as http:
        yield http


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A running fake Slack."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def hook_receiver() -> Iterator[WebhookReceiver]:
    """A running webhook hook_receiver."""
    with WebhookReceiver() as fake:
        yield fake


def _ids(page: dict[str, Any]) -> list[str]:
    return [r["id"] for r in page["results"]]


# ------------------------------------------------------------------------------- paging


def test_paging_follows_absolute_next_links(sim: FakePostHog, api: httpx.Client) -> None:
    """250 reports come in pages of 100, 100, 50 linked by absolute URLs; previous drops offset."""
    created = {sim.add_report(1)["id"] for _ in range(250)}
    pages = [api.get(NEW, params={"limit": 100}).json()]
    while pages[-1]["next"]:
        pages.append(api.get(pages[-1]["next"]).json())
    assert [len(p["results"]) for p in pages] == [100, 100, 50]
    assert {i for p in pages for i in _ids(p)} == created
    assert all(p["count"] == 250 for p in pages)
    assert pages[0]["next"] == f"{sim.url}{NEW}?limit=100&offset=100"
    assert pages[0]["previous"] is None
    assert pages[1]["previous"] == f"{sim.url}{NEW}?limit=100"
    assert pages[2]["previous"] == f"{sim.url}{NEW}?limit=100&offset=100"


def test_paging_defaults_and_invalid_values(sim: FakePostHog, api: httpx.Client) -> None:
    """Default and invalid limit mean 100, invalid offset means 0, and there is no maximum."""
    for _ in range(150):
        sim.add_report(1)
    assert len(api.get(NEW).json()["results"]) == 100
    assert len(api.get(NEW, params={"limit": "x", "offset": "-3"}).json()["results"]) == 100
    assert len(api.get(NEW, params={"limit": 0}).json()["results"]) == 100
    assert len(api.get(NEW, params={"limit": 1000}).json()["results"]) == 150
    beyond = api.get(NEW, params={"offset": 500}).json()
    assert beyond["results"] == []
    assert beyond["next"] is None


def test_links_keep_other_params_and_honour_link_base() -> None:
    """Links keep the other query parameters (sorted) and can name an internal host."""
    with FakePostHog(api_version=5, link_base="http://internal:8000") as fake:
        for _ in range(3):
            fake.add_report(1)
        headers = {"Authorization": f"Bearer {KEY}"}
        params = {"status": "ready", "limit": "1", "ordering": "created_at"}
        page = httpx.get(f"{fake.url}{NEW}", params=params, headers=headers).json()
    assert page["next"] == (
        f"http://internal:8000{NEW}?limit=1&offset=1&ordering=created_at&status=ready"
    )


def test_list_page_hook_can_make_paging_repeat_and_skip(
    sim: FakePostHog, api: httpx.Client
) -> None:
    """A report updated between pages moves up: the next page repeats one and skips it."""
    first, *_ = [sim.add_report(1) for _ in range(4)]

    def bump(project_id: int, offset: int) -> None:
        if offset == 0:
            sim.update_report(project_id, first["id"], signal_count=2)

    sim.on_list_page = bump
    page1 = api.get(NEW, params={"limit": 2}).json()
    page2 = api.get(page1["next"]).json()
    seen = _ids(page1) + _ids(page2)
    assert len(set(seen)) == 3
    assert first["id"] not in seen


# ------------------------------------------------------------------------------- versions


def test_v1_lists_only_ready_on_the_old_prefix(sim: FakePostHog, api: httpx.Client) -> None:
    """V1 serves only signal_reports/, lists only ready reports and hides the others."""
    sim.api_version = 1
    ready = sim.add_report(1, status="ready")
    candidate = sim.add_report(1, status="candidate")
    page = api.get(LEGACY, params={"status": "candidate"}).json()
    assert _ids(page) == [ready["id"]]
    assert "relevant_user_count" in page["results"][0]
    assert "priority" not in page["results"][0]
    assert api.get(f"{LEGACY}{candidate['id']}/").status_code == 404
    missing = api.get(NEW)
    assert missing.status_code == 404
    assert missing.json() == {
        "type": "invalid_request",
        "code": "not_found",
        "detail": "Not found.",
        "attr": None,
    }


def test_v4_moves_prefix_and_rejects_unknown_status(sim: FakePostHog, api: httpx.Client) -> None:
    """V4 answers 404 on the old prefix and 400 for an unknown status; V3 just matches nothing."""
    sim.add_report(1)
    sim.api_version = 4
    assert api.get(LEGACY).status_code == 404
    bad = api.get(NEW, params={"status": "ready,dismissed"})
    assert bad.status_code == 400
    assert bad.json() == {
        "type": "validation_error",
        "code": "invalid_input",
        "detail": "Invalid status value(s): dismissed",
        "attr": "status",
    }
    sim.api_version = 3
    assert api.get(LEGACY, params={"status": "dismissed"}).json()["results"] == []


def test_default_listing_hides_suppressed_and_never_deleted(
    sim: FakePostHog, api: httpx.Client
) -> None:
    """Suppressed shows only when asked for; deleted never shows and retrieves as 404."""
    ready = sim.add_report(1)
    suppressed = sim.add_report(1, status="suppressed")
    gone = sim.add_report(1)
    sim.delete_report(1, gone["id"])
    assert _ids(api.get(NEW).json()) == [ready["id"]]
    wanted = api.get(NEW, params={"status": "suppressed,deleted"}).json()
    assert _ids(wanted) == [suppressed["id"]]
    assert api.get(f"{NEW}{gone['id']}/").status_code == 404
    assert api.get(f"{NEW}not-a-uuid/").status_code == 404
    assert api.get(f"{NEW}{ready['id']}/").json() == ready


def test_v3_orders_with_id_tie_breaker(sim: FakePostHog, api: httpx.Client) -> None:
    """V3+ appends id to any ordering; unknown ordering fields are ignored."""
    sim.api_version = 3
    reports = [sim.add_report(1, signal_count=n % 2) for n in range(6)]
    page = api.get(LEGACY, params={"ordering": "-signal_count,nonsense"}).json()
    ones = sorted(r["id"] for r in reports if r["signal_count"] == 1)
    zeros = sorted(r["id"] for r in reports if r["signal_count"] == 0)
    assert _ids(page) == ones + zeros


def test_v5_fields_replace_relevant_user_count(sim: FakePostHog) -> None:
    """V5 drops relevant_user_count and carries the extra fields with V5 defaults."""
    report = sim.add_report(1, priority="P1")
    assert "relevant_user_count" not in report
    assert report["priority"] == "P1"
    assert report["work_state"] == "unclaimed"
    assert report["created_at"].endswith("Z")
    assert len(report["created_at"].split(".")[1]) == 7


def test_artefacts_shapes_by_version(sim: FakePostHog, api: httpx.Client) -> None:
    """V1 gives unpaginated video segments newest first; V5 a paginated list of every type."""
    report = sim.add_report(1)
    sim.add_artefact(1, report["id"], "video_segment", {"session_id": "a"})
    sim.add_artefact(1, report["id"], "priority_judgment", {"priority": "P1"})
    sim.add_artefact(1, report["id"], "video_segment", {"session_id": "b"})
    v5 = api.get(f"{NEW}{report['id']}/artefacts/").json()
    assert v5["count"] == 3
    assert v5["next"] is None
    assert "actor_kind" in v5["results"][0]
    sim.api_version = 1
    v1 = api.get(f"{LEGACY}{report['id']}/artefacts/").json()
    assert set(v1) == {"results", "count"}
    assert [a["content"]["session_id"] for a in v1["results"]] == ["b", "a"]
    assert set(v1["results"][0]) == {"id", "type", "content", "created_at"}


def _artefacts_of(sim: FakePostHog, report_id: str) -> list[dict[str, Any]]:
    """A video segment, a priority judgment, a note and a second segment, oldest first."""
    return [
        sim.add_artefact(1, report_id, "video_segment", {"session_id": "a"}),
        sim.add_artefact(
            1, report_id, "priority_judgment", {"explanation": "why", "priority": "P1"}
        ),
        sim.add_artefact(1, report_id, "note", {}),
        sim.add_artefact(1, report_id, "video_segment", {"session_id": "b"}),
    ]


@pytest.mark.parametrize(
    ("version", "types"),
    [
        (2, ["video_segment", "video_segment"]),
        (3, ["video_segment", "note", "priority_judgment", "video_segment"]),
    ],
)
def test_artefacts_before_v4_are_one_unpaginated_answer(
    sim: FakePostHog, api: httpx.Client, version: int, types: list[str]
) -> None:
    """V2 and V3 answer {results, count} at once, newest first, whatever limit says; V2 only
    video segments, V3 every type; items carry only id, type, content and created_at."""
    report = sim.add_report(1)
    added = _artefacts_of(sim, report["id"])
    sim.api_version = version
    body = api.get(f"{LEGACY}{report['id']}/artefacts/", params={"limit": 1}).json()
    assert set(body) == {"results", "count"}
    assert [a["type"] for a in body["results"]] == types
    assert body["count"] == len(types)
    assert body["results"][0]["id"] == added[-1]["id"]
    assert all(set(a) == {"id", "type", "content", "created_at"} for a in body["results"])


def test_artefacts_from_v4_are_paginated_newest_first(sim: FakePostHog, api: httpx.Client) -> None:
    """V4+ page artefacts like the listing: limit/offset, count, absolute next/previous; every
    type, with the V4 fields; the report's artefact_count follows."""
    report = sim.add_report(1)
    added = _artefacts_of(sim, report["id"])
    sim.api_version = 4
    url = f"{NEW}{report['id']}/artefacts/"
    first = api.get(url, params={"limit": 3}).json()
    assert first["count"] == 4
    assert first["next"] == f"{sim.url}{url}?limit=3&offset=3"
    assert first["previous"] is None
    assert [a["id"] for a in first["results"]] == [a["id"] for a in reversed(added)][:3]
    assert {"actor_kind", "task_id", "updated_at", "created_by"} <= set(first["results"][0])
    second = api.get(url, params={"limit": 3, "offset": 3}).json()
    assert [a["id"] for a in second["results"]] == [added[0]["id"]]
    assert second["next"] is None
    assert api.get(f"{NEW}{report['id']}/").json()["artefact_count"] == 4


def test_artefacts_of_unknown_deleted_or_hidden_reports_are_404(
    sim: FakePostHog, api: httpx.Client
) -> None:
    """PostHog's not_found for an unknown or deleted report, and for V1's non-ready ones;
    'Project not found.' for an unknown project."""
    deleted, candidate = sim.add_report(1), sim.add_report(1, status="candidate")
    sim.delete_report(1, deleted["id"])
    for rid in ("0c9e7d1e-2b7a-4c1e-9a53-000000000000", deleted["id"]):
        missing = api.get(f"{NEW}{rid}/artefacts/")
        assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert api.get(f"{NEW}{candidate['id']}/artefacts/").status_code == 200
    sim.api_version = 1
    assert api.get(f"{LEGACY}{candidate['id']}/artefacts/").status_code == 404
    project = api.get(f"/api/projects/9/signal_reports/{candidate['id']}/artefacts/")
    assert project.json()["detail"] == "Project not found."


def test_artefacts_scope_differs_in_v1(sim: FakePostHog, api: httpx.Client) -> None:
    """A key without 'signal_report:read' lists reports but cannot read V1's artefacts; from
    V2 artefacts need 'task:read' like the rest."""
    report = sim.add_report(1)
    sim.missing_scopes = {"signal_report:read"}
    sim.api_version = 1
    assert api.get(LEGACY).status_code == 200
    refused = api.get(f"{LEGACY}{report['id']}/artefacts/")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "API key missing required scope 'signal_report:read'"
    sim.api_version = 2
    assert api.get(f"{LEGACY}{report['id']}/artefacts/").status_code == 200
    sim.missing_scopes = {"task:read"}
    assert api.get(f"{LEGACY}{report['id']}/artefacts/").status_code == 403
    assert api.get(LEGACY).status_code == 403


# ------------------------------------------------------------------------------- errors


def test_auth_and_project_errors(sim: FakePostHog, api: httpx.Client) -> None:
    """Missing key, wrong key, foreign project, missing scope and unknown project bodies."""
    no_key = httpx.get(f"{sim.url}{NEW}")
    assert no_key.status_code == 403
    assert no_key.json()["code"] == "not_authenticated"
    wrong = httpx.get(f"{sim.url}{NEW}", headers={"Authorization": "Bearer phx_nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (403, "authentication_failed")
    assert api.get("/api/projects/9/signals/reports/").json()["detail"] == "Project not found."
    sim.allowed_projects = {2}
    foreign = api.get(NEW)
    assert foreign.status_code == 403
    assert (
        foreign.json()["detail"] == "API key does not have access to the requested project: ID 1."
    )
    sim.allowed_projects = None
    sim.scopes_ok = False
    scope = api.get(NEW).json()
    assert scope["code"] == "permission_denied"
    assert scope["detail"] == "API key missing required scope 'task:read'"


def test_throttle_has_no_retry_after(sim: FakePostHog, api: httpx.Client) -> None:
    """A throttled answer carries the wait only in detail, then the API answers again."""
    sim.throttle_next(17)
    throttled = api.get(NEW)
    assert throttled.status_code == 429
    assert "retry-after" not in throttled.headers
    assert throttled.json() == {
        "type": "throttled_error",
        "code": "throttled",
        "detail": "Request was throttled. Expected available in 17 seconds.",
        "attr": None,
    }
    assert api.get(NEW).status_code == 200


def test_fail_next_times_path_and_raw(sim: FakePostHog, api: httpx.Client) -> None:
    """fail_next answers n matching requests, with a default body, headers or exact bytes."""
    sim.fail_next(503, times=2, path_contains="offset=")
    assert api.get(NEW).status_code == 200
    failed = api.get(NEW, params={"offset": 0})
    assert failed.status_code == 503
    assert failed.headers["retry-after"] == "1"
    assert failed.json()["type"] == "server_error"
    assert api.get(NEW, params={"offset": 0}).status_code == 503
    assert api.get(NEW, params={"offset": 0}).status_code == 200
    sim.fail_next(502, raw=b"<html>Bad Gateway</html>")
    html = api.get(NEW)
    assert (html.status_code, html.text) == (502, "<html>Bad Gateway</html>")
    sim.fail_next(200, raw=b'{"count": 1, "res')
    with pytest.raises(ValueError):
        api.get(NEW).json()


def test_requests_are_recorded(sim: FakePostHog, api: httpx.Client) -> None:
    """Every request is recorded with its query, authorization and api port."""
    api.get(NEW, params={"limit": 5})
    api.get(NEW)
    first, second = sim.requests
    assert (first.method, first.path, first.query) == ("GET", NEW, {"limit": "5"})
    assert first.authorization == f"Bearer {KEY}"
    assert first.port == second.port  # keep-alive: one connection


def test_stall_times_out_and_stop_is_fast() -> None:
    """A stalled answer times the api out, and stop() does not wait for the stall."""
    fake = FakePostHog().start()
    fake.stall_seconds = 5
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{fake.url}{NEW}", timeout=0.2)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1


def test_demo_story_is_deterministic_and_endless() -> None:
    """The demo story repeats for a seed and keeps finding something to change."""

    def run(seed: int) -> list[str]:
        sim = FakePostHog()
        story = DemoStory(sim, 1, seed=seed)
        story.seed_reports()
        return [story.step() for _ in range(150)]

    lines = run(7)
    assert lines == run(7)
    assert lines != run(8)
    text = "\n".join(lines)
    for change in ("appeared", "→ candidate", "→ in_progress", "→ ready", "→ resolved"):
        assert change in text


# ------------------------------------------------------------------------------- Slack


def test_slack_web_api_posts_updates_and_rate_limits(fake_slack: FakeSlack) -> None:
    """chat.postMessage and chat.update succeed; ratelimited raises with Retry-After."""
    web = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)
    posted = web.chat_postMessage(channel="#alerts", text="hello")
    assert posted["ok"] is True
    assert posted["channel"] == fake_slack.channel_id("#alerts")
    web.chat_update(channel=posted["channel"], ts=posted["ts"], text="edited")
    assert [(m.text, m.ts, m.method) for m in fake_slack.messages] == [
        ("hello", posted["ts"], "chat.postMessage"),
        ("edited", posted["ts"], "chat.update"),
    ]
    fake_slack.fail_next("ratelimited", retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        web.chat_postMessage(channel="#alerts", text="again")
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    assert limited.value.response.headers["Retry-After"] == "7"
    with pytest.raises(SlackApiError) as unknown:
        web.chat_update(channel=posted["channel"], ts="1.000001", text="x")
    assert unknown.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as bad_auth:
        WebClient(token="xoxb-wrong", base_url=fake_slack.api_url).auth_test()
    assert bad_auth.value.response["error"] == "invalid_auth"


def test_slack_unknown_channel_and_bad_blocks(fake_slack: FakeSlack) -> None:
    """Unknown channels and oversized blocks are refused like Slack refuses them."""
    web = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)
    fake_slack.channels = {"#alerts"}
    with pytest.raises(SlackApiError) as missing:
        web.chat_postMessage(channel="#nowhere", text="x")
    assert missing.value.response["error"] == "channel_not_found"
    header = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    with pytest.raises(SlackApiError) as blocks:
        web.chat_postMessage(channel="#alerts", text="x", blocks=[header])
    assert blocks.value.response["error"] == "invalid_blocks"
    assert fake_slack.messages == []


def test_slack_incoming_webhook(fake_slack: FakeSlack) -> None:
    """An incoming webhook answers plain 'ok', and plain-text errors on demand."""
    hook = WebhookClient(fake_slack.webhook_url)
    sent = hook.send(text="hi")
    assert (sent.status_code, sent.body) == (200, "ok")
    assert fake_slack.messages[0].via == "webhook"
    assert fake_slack.messages[0].ts is None
    fake_slack.webhook_fail_next(410, "channel_is_archived")
    archived = hook.send(text="hi again")
    assert (archived.status_code, archived.body) == (410, "channel_is_archived")
    assert len(fake_slack.messages) == 1


# ------------------------------------------------------------------------------- webhooks


def test_webhook_receiver_records_and_answers_on_demand(hook_receiver: WebhookReceiver) -> None:
    """The hook_receiver answers 204 by default, queued answers first, and records every request."""
    hook_receiver.respond_next(503, headers={"Retry-After": "3"})
    hook_receiver.respond_next(302, headers={"Location": "http://elsewhere/"})
    with httpx.Client(timeout=2) as http:
        answers = [
            http.post(hook_receiver.url, content=b'{"n": 1}', headers={"webhook-id": "msg_1"})
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [503, 302, 204]
    assert answers[0].headers["retry-after"] == "3"
    assert [r.status for r in hook_receiver.received] == [503, 302, 204]
    assert hook_receiver.received[0].headers["webhook-id"] == "msg_1"
    assert hook_receiver.received[0].json() == {"n": 1}
    assert hook_receiver.received[0].path == "/hook"
