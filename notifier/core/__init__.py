"""The pure core: a report and its links (``report``), what happened to it (``events``), the
outbox's notices and deliveries (``outbox``), diffing a listing against a snapshot (``diff``),
routing events through rules (``rules``), how a poll or a delivery ended (``outcomes``), the
exception tree (``errors``), timestamps, Retry-After and durations (``times``), redaction
(``secrets``), and one cycle's deadline, stop event and request count (``context``).

No I/O, and no import of any other part of the notifier: everything else builds on this.
"""
