"""The configuration: the YAML document (``yamlload``), the settings — the pydantic models the
document is validated against and everything else reads (``settings``; value types in
``types``, the sinks in ``sinks``, rule ``match`` blocks in ``match``) —, the checks pydantic
cannot make (``checks``), warnings about valid but unwise settings (``advice``), loading with
every problem at once (``load``), and the JSON Schema for editors (``schema``).
"""
