"""Where notifications go: the sink interface (``base``), building a sink from its settings
(``registry``), what a sink sends for an event (``compose``), and one module or folder per kind:
``console``, ``webhook``, ``slack/`` (``bot``, ``incoming``, the shared ``pace``).
"""
