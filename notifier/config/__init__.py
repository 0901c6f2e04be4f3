"""The configuration: the YAML document (``yamlload``), the settings model every other part
reads (``settings``), loading and checking it with every problem at once (``load``, ``types``,
``sinks``, ``match``), and its JSON Schema for editors (``schema``).
"""
