"""The PostHog adapter.

- ``client``: ``PostHogClient``, the endpoints (list, retrieve, artefacts) the cycle calls.
- ``session``: ``Session``, the httpx connection: one GET of a cycle (``CycleContext``), its
  budget turn, and its count in the cycle's requests.
- ``retry``: ``RetryPolicy``, bounded retries (tenacity) honouring Retry-After and shutdown.
- ``paths``: ``Paths``, the API path prefix this PostHog version serves.
- ``reader``: ``ListingReader``, the full and incremental listing loops and their checks.
- ``paging``: the page requested ahead (``Ahead``) and the snapshot's versions per page.
- ``listing``: ``Gathered`` and ``Listing``, a listing's pages added up (pure).
- ``parse``: reading response bodies (pure).
- ``errors``: PostHog's error answers → ``SourceError``, and Retry-After.
- ``budget``: ``RequestBudget``, the API key's request budget.
"""
