"""`notifier demo` (``run``) and the simulated PostHog it runs against (``simulator``), which
the tests use as their fake PostHog too.
"""
