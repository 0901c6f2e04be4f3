"""The ``notifier`` command: ``app`` parses the arguments and dispatches to one module per
command group; errors become exit codes (0 success, 1 runtime failure, 2 invalid usage or
configuration).
"""
