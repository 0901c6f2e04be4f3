"""The running process: the ``Notifier`` that wires settings to adapters and runs the schedule
(``daemon``), per-project poll health (``project_health``), heartbeat, probes and the HTTP
listener (``probes``), Prometheus metrics (``metrics``), logging (``logs``), and the process's
life — signals, stop grace, reloads (``service``).
"""
