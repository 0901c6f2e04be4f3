"""Slack sinks: a bot token's living messages (``bot``), incoming webhooks (``incoming``), and
the one-post-per-second pace they share per channel (``pace``).
"""
