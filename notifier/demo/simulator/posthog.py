"""A faithful fake of PostHog's signal reports API.

Used by ``notifier demo`` and by the tests. ``FakePostHog`` is as unkind as the real API (see
``posthog-signals-api.md``): two URL prefixes depending on the API version, V1 listing only
``ready`` reports, DRF limit/offset paging with absolute ``next`` links built from the ``Host``
header (or an internal host behind a proxy), orderings without a tie-breaker in V1/V2, 403 bodies
in PostHog's shape, 429 without ``Retry-After``. Faults are injected with
``fail_next``/``throttle_next`` (an answer), ``stall_next`` (a late answer) and ``reset_next`` (a
connection dropped mid-body); ``on_list_page`` lets a test change the data between two pages of
one listing, ``rewrite_page`` change a page itself, ``count_override`` make ``count`` lie.

``FakePostHog`` is put together from one part per job, each in its own module:

- ``reports.ReportData``: the projects, reports and artefacts, how they change, how each API
  version shows them (``add_report``, ``update_report``, ``add_artefact``…);
- ``endpoints.PostHogApi``: the answer to one request: paths, keys, scopes, paging;
- ``faults.FaultInjection``: ``fail_next``, ``throttle_next``, ``stall_next``, ``reset_next``;
- ``server.BackgroundServer``: the HTTP server on a local port.

What stays here is one request's way through them (``_handle``) and its record.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from notifier.demo.simulator.endpoints import Answer, ApiRequest, PostHogApi
from notifier.demo.simulator.facts import SERVER_ERROR
from notifier.demo.simulator.faults import FaultInjection
from notifier.demo.simulator.server import BackgroundServer, FakeRequestHandler

__all__ = ["FakePostHog", "RequestRecord"]


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake received. ``port`` is the client's source port (connection reuse)."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    port: int
    received_at: float = field(default=0.0, compare=False)
    #: The request body as sent (a V6 write's JSON); empty for a GET.
    body: bytes = field(default=b"", compare=False)

    def json(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None


class FakePostHog(PostHogApi, FaultInjection, BackgroundServer):
    """PostHog's signal reports API, V1 to V6, on a local port.

    V6 is today's PostHog (``posthog-today.md``): only ``signals/reports``,
    ``collapsed_note_count``, each report's signals (``add_signal``, ``add_recording``) at
    ``…/{id}/signals/``, the team's config (``set_signals_config``) at ``…/signals/config/``,
    the listing's ``count_only`` and
    ``include_all_statuses``, 400 for ``status=deleted``, a default ordering without tie-breaker,
    and the writes (``state``, ``bulk-state``, note artefacts, ``claim``, ``feedback``): accepted
    ones are kept in ``writes``; ``write_scope_ok = False`` takes ``task:write`` from the key;
    ``claim_as`` plays another user's claim.

    Mutable attributes a test may set at any time: ``api_version`` (1..6), ``allowed_projects``
    (projects the key may read; None = all), ``scopes_ok`` (False = key lacks ``task:read``),
    ``missing_scopes`` (scopes the key lacks, e.g. ``{"signal_report:read"}``, which V1's
    artefacts need; everything else needs ``task:read``), ``link_base`` (origin for
    ``next``/``previous``; None = from the Host header), ``unstable_ties`` (V1/V2 orderings have
    no tie-breaker: equal keys come back in a different order on every request),
    ``on_list_page``, ``stall_seconds``, ``count_override`` (the listing's ``count``, with
    ``next`` links computed from it as DRF would: a count larger than the data gives empty pages
    that still say there is more), ``rewrite_page`` (a hook ``(project_id, offset, body) ->
    body`` that may change a listing page before it is sent: repeat an id, loop ``next``, drop an
    ``id``…).
    """

    def __init__(
        self,
        *,
        api_version: int = 6,
        api_key: str = "phx_test_key",
        projects: Iterable[int] = (1,),
        link_base: str | None = None,
    ) -> None:
        BackgroundServer.__init__(self)
        FaultInjection.__init__(self)
        PostHogApi.__init__(
            self, projects, api_version=api_version, api_key=api_key, link_base=link_base
        )
        self.on_list_page: Callable[[int, int], None] | None = None
        self.rewrite_page: Callable[[int, int, dict[str, Any]], dict[str, Any]] | None = None
        self.requests: list[RequestRecord] = []
        #: Exceptions raised while answering (e.g. by ``on_list_page``); answered as 500.
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()  # guards ``requests`` and ``errors``

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.origin

    def report_requests(self) -> list[RequestRecord]:
        """The requests about reports: every one but the projects' own pages (``/api/projects/``
        and ``/api/projects/{id}/``, which the notifier reads for a project's name)."""
        return [r for r in self.requests if r.path.rstrip("/").count("/") > 3]

    def _handle(self, handler: FakeRequestHandler) -> None:
        """Record the request, play out its fault if one matches, else answer it."""
        req, record = self._received(handler)
        req = self._with_body(req, record, handler.read_body())
        if not self._stall():
            handler.close_connection = True
            return
        fault = self._take_fault(handler.path)
        if fault is not None and fault.action == "stall":
            if self._stopping.wait(fault.stall):  # stopped meanwhile
                handler.close_connection = True
                return
        elif fault is not None and fault.action == "reply":
            handler.reply(fault.status, fault.body, fault.headers)
            return
        answer = self._answer(req)
        if fault is not None and fault.action == "reset":
            body = json.dumps(answer.payload).encode()
            headers = {"Content-Type": "application/json", **answer.headers}
            handler.reply_reset(answer.status, body, headers, keep=fault.keep)
            return
        handler.reply_json(answer.status, answer.payload, answer.headers)

    def _received(self, handler: FakeRequestHandler) -> tuple[ApiRequest, RequestRecord]:
        """Record the request in ``requests``; return it as the endpoints see it, and its
        record."""
        split = urlsplit(handler.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        record = RequestRecord(
            method=handler.command,
            path=split.path,
            query=query,
            authorization=handler.headers.get("Authorization"),
            port=handler.client_address[1],
            received_at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(record)
            number = len(self.requests)
        req = ApiRequest(
            method=handler.command,
            path=split.path,
            raw_query=split.query,
            host=handler.headers.get("Host") or f"127.0.0.1:{self.port}",
            query=query,
            authorization=record.authorization,
            number=number,
        )
        return req, record

    def _with_body(self, req: ApiRequest, record: RequestRecord, body: bytes) -> ApiRequest:
        """``req`` with its body, which its record in ``requests`` now keeps too (unless a test
        cleared ``requests`` meanwhile)."""
        if not body:
            return req
        with self._lock:
            for index in range(len(self.requests) - 1, -1, -1):
                if self.requests[index] is record:
                    self.requests[index] = dataclasses.replace(record, body=body)
                    break
        return dataclasses.replace(req, body=body)

    def _answer(self, req: ApiRequest) -> Answer:
        """The endpoints' answer, passed through the page hooks; 500 when a hook raises."""
        try:
            answer, page_of = self._route(req)
            if page_of is not None and self.rewrite_page is not None:
                answer.payload = self.rewrite_page(*page_of, answer.payload)
            if page_of is not None and self.on_list_page is not None:
                self.on_list_page(*page_of)
        except Exception as exc:  # noqa: BLE001 - a broken hook must still answer something
            with self._lock:
                self.errors.append(exc)
            return Answer(500, SERVER_ERROR)
        return answer
