"""Slack sinks: a bot token's living messages (``bot``), incoming webhooks (``incoming``), what
both share — SDK options, error codes, their common state (``common``) — and the
one-post-per-second pace they share per channel (``pace``).
"""
