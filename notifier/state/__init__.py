"""The state database, behind one ``Store`` (``store``) that meets the ``StateStore`` contract
(``base``). Its modules:

- ``base``: ``StateStore``, the Protocol a second (PostgreSQL) backend must meet;
- ``records``: the dataclasses it speaks in (snapshot rows, outbox entries, outages, a cycle's
  write, a project's state);
- ``database``: the SQLite file: per-thread WAL connections, transactions, ``StateError``s;
- ``snapshots``: per-project report rows, index and row lookups, project marks, status counts;
- ``commit``: the cycle commit, snapshot + outbox + project marks in one transaction;
- ``outbox``: queueing, reading, marking, requeueing and pruning delivery entries;
- ``messages``: living messages (the Slack message a sink keeps for a report);
- ``outages``: outages under way, for self-alerts;
- ``store``: ``Store``, all of the above over one set of connections;
- ``schema``: the tables and the migrations that bring an older file up to date.
"""
