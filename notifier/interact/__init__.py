"""Decisions taken from a Slack card (issue 14): a click arrives (Socket Mode or HTTP), is
acknowledged within Slack's 3 seconds, then written to PostHog once, recorded in the state, and
shown on the card and in its thread."""
