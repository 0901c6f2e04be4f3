"""The ``notifier`` command: ``app`` parses the arguments and dispatches to one module per
command group; errors become exit codes (0 success, 1 runtime failure, 2 invalid usage or
configuration).

- ``app``: the parser (built from each command module's ``add_parser``) and ``main``
- ``shared``: the exit codes and the type the command modules add their parsers to
- ``run``: ``run`` (the daemon, in ``notifier.runtime.service``) and ``once``
- ``check``: ``check``, the configuration validated and summarised
- ``healthcheck``: ``healthcheck``, the daemon's heartbeat probed
- ``schema``: ``schema``, the configuration's JSON Schema
- ``dry_run``: ``dry-run``, poll and diff, print what would be sent
- ``preview``: ``preview``, what each sink would receive for a sample event
- ``test_sink``: ``test-sink``, one sample notification sent to a sink
- ``demo``: ``demo``, a run against a simulated PostHog
- ``outbox``: ``outbox``, pending and dead entries listed or retried
"""
