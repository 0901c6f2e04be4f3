"""The configuration: the YAML document (``yamlload``), the settings every other part reads
(``settings``), the pydantic models the document is validated against (``model``; value types in
``types``, sinks and templates in ``sinks``, rule ``match`` blocks in ``match``), the checks
pydantic cannot make (``checks``), loading with every problem at once (``load``), and the JSON
Schema for editors (``schema``).
"""
