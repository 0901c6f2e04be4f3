"""Getting the outbox out: draining each sink's entries in order with backoff, digests and dead
letters (``drain``), and the notifier's notices about its own outages (``selfalerts``).
"""
