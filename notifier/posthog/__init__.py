"""The PostHog adapter: the HTTP client (``client``), its error answers (``errors``), reading
response bodies (``parse``), paging a listing (``paging``, ``listing``) and the API key's
request budget (``budget``).
"""
