"""A faithful fake of PostHog's signal reports API, and a story that keeps it changing.

Used by ``notifier demo`` and by the tests. Standard library only: a ``ThreadingHTTPServer`` on
127.0.0.1, port 0, served from a daemon thread.

- ``server``: ``BackgroundServer`` and ``FakeRequestHandler``, the HTTP plumbing every fake uses.
- ``posthog``: ``FakePostHog``, put together from the parts below, and ``RequestRecord``.
- ``reports``: ``ReportData``, the projects, reports and artefacts, how they change and how each
  API version shows them.
- ``signals``: ``SignalData``, V6's signals of each report (``add_signal``, ``add_recording``) and
  the team's signals config (``set_signals_config``).
- ``writes``: ``ReportWrites``, V6's writes applied to the data (``writes``, ``claim_as``,
  ``write_scope_ok``); ``transitions``: their bodies and the moves PostHog allows.
- ``endpoints``: ``PostHogApi``, the answer to one request (paths, key, scopes, paging); its
  request and answer types are in ``answers``.
- ``faults``: ``FaultInjection``, ``fail_next``/``throttle_next``/``stall_next``/``reset_next``.
- ``facts``: PostHog's statuses, fields per API version, URL prefixes and error bodies.
- ``listing``: DRF limit/offset paging and each version's ordering.
- ``story``: ``DemoStory``, believable report life cycles, one change per call.

Import from ``notifier.demo.simulator``; the submodules are an implementation detail.
"""

from __future__ import annotations

from notifier.demo.simulator.facts import INVALID_KEY as INVALID_KEY
from notifier.demo.simulator.facts import NO_KEY as NO_KEY
from notifier.demo.simulator.facts import NOT_FOUND as NOT_FOUND
from notifier.demo.simulator.facts import PROJECT_NOT_FOUND as PROJECT_NOT_FOUND
from notifier.demo.simulator.facts import REPORT_STATUSES
from notifier.demo.simulator.facts import SERVER_ERROR as SERVER_ERROR
from notifier.demo.simulator.facts import throttled_body as throttled_body
from notifier.demo.simulator.posthog import FakePostHog, RequestRecord
from notifier.demo.simulator.server import BackgroundServer, FakeRequestHandler
from notifier.demo.simulator.story import DemoStory
from notifier.demo.simulator.writes import Write

# The same names as before the split; the error bodies and ``throttled_body`` stay importable
# (re-exported with ``as``) without joining ``import *``.
__all__ = [
    "REPORT_STATUSES",
    "BackgroundServer",
    "DemoStory",
    "FakePostHog",
    "FakeRequestHandler",
    "RequestRecord",
    "Write",
]
