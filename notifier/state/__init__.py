"""The state database, behind one contract (``base.StateStore``) met by two backends. Its
modules:

- ``base``: ``StateStore``, the Protocol both backends meet;
- ``records``: the dataclasses it speaks in (snapshot rows, outbox entries, outages, a cycle's
  write, a project's state, the fence of a lease);
- ``database``: what every part stands on — a write transaction, a read, ``close``;
- ``sqlite`` / ``postgres``: the two backends' connections, transactions and ``StateError``s;
- ``dialect``: the little their SQL differs in (placeholders, types, schema version, locks);
- ``snapshots``: per-project report rows, index and row lookups, project marks, status counts;
- ``commit``: the cycle commit, snapshot + outbox + project marks in one transaction;
- ``outbox``: queueing, reading, marking, requeueing and pruning delivery entries;
- ``messages``: living messages (the Slack message a sink keeps for a report);
- ``outages``: outages under way, for self-alerts;
- ``leases``: replicas, the leases on units of work, and the fence every write checks;
- ``budget``: the PostHog request budget replicas share;
- ``actions``: actions taken from Slack cards — one PostHog write per click, who did what;
- ``store``: ``Store`` (SQLite) and ``PostgresStore``, all of the above, and ``open_store``;
- ``schema``: the tables and the migrations that bring an older database up to date;
- ``lock``: one process per SQLite file;
- ``migrate``: copying a SQLite state into PostgreSQL (``notifier state migrate``).
"""
