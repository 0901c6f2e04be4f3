"""The pure core: a report and its links (``report``), what happened to it (``events``), the
outbox's notices and deliveries (``outbox``), diffing a listing against a snapshot (``diff``),
routing events through rules (``rules``), how a poll or a delivery ended (``outcomes``), the
exception tree (``errors``), timestamps and Retry-After (``times``), and redaction
(``secrets``).

No I/O, and no import of any other part of the notifier: everything else builds on this.
"""
