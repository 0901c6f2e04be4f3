"""The state database behind one ``Store``: snapshots, the outbox, living messages and outages
(``store``), its tables and migrations (``schema``).
"""
