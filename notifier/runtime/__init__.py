"""The running process: the ``Notifier`` that wires settings to adapters (``daemon``); polling
each project within its deadline (``polling``) and its health (``project_health``); the
scheduler, delivery threads and housekeeping (``workers``); the heartbeat and the probes'
answers (``vitals``) judged by the rules and served by the HTTP listener of ``probes``;
Prometheus metrics (``metrics``); logging (``logs``); and the process's life — signals, stop
grace, reloads (``service``).
"""
