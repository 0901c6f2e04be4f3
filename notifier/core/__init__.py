"""The pure core: reports, events and notices (``models``), the exception tree (``errors``),
diffing a listing against a snapshot (``diff``) and routing events through rules (``rules``).

No I/O, and no import of any other part of the notifier: everything else builds on this.
"""
