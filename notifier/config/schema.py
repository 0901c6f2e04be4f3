"""The configuration's JSON Schema, for editors (`notifier schema`, `config.schema.json`).

Generated from the settings models (``notifier.config.settings``) and adjusted to what the YAML
really accepts before validation: durations as ``90s`` strings, ``<key>_file`` for every secret,
a single value where a list is expected, and ``${VAR}`` references anywhere a string goes. The
validation itself stays in ``notifier.config.load``: the schema helps editors complete and flag
keys; `check` has the last word.
"""

from __future__ import annotations

from typing import Any, Final

from notifier.config.settings import Settings
from notifier.config.sinks import SINKS

SCHEMA_URL: Final = "https://json-schema.org/draft/2020-12/schema"

#: Keys whose value is a duration: a number of seconds or a string such as 90s, 5m, 1h.
DURATIONS: Final = frozenset(
    {
        "interval",
        "jitter",
        "deadline",
        "timeout",
        "give_up_after",
        "backoff_initial",
        "backoff_max",
        "keep_delivered",
        "after",
    }
)
#: Keys that accept one value where a list is documented.
LISTISH: Final = frozenset({"project_ids", "statuses", "sinks", "enrich"})
#: Secret keys, per model title, that also accept ``<key>_file``.
SECRETS: Final = {
    "PostHogSettings": ("api_key",),
    "StateSettings": ("password",),
    "SlackSinkSettings": ("token",),
    "SlackWebhookSinkSettings": ("url",),
    "WebhookSinkSettings": ("url", "secret"),
}
_SINK_TITLES: Final = frozenset(model.__name__ for model in SINKS.values())
_DURATION: Final = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$|^\$\{"},
    ]
}


def _loosen(name: str, prop: dict[str, Any]) -> dict[str, Any]:
    if name in DURATIONS:
        nullable = any(o.get("type") == "null" for o in prop.get("anyOf", []))
        loose: dict[str, Any] = {
            "anyOf": [*_DURATION["anyOf"], *([{"type": "null"}] if nullable else [])]
        }
        return {**{k: v for k, v in prop.items() if k not in ("type", "anyOf")}, **loose}
    if name in LISTISH:
        options = prop.get("anyOf", [prop])
        arrays = [o for o in options if o.get("type") == "array"]
        if arrays:
            item = arrays[0]["items"]
            rest = {k: v for k, v in prop.items() if k not in ("type", "items", "anyOf")}
            return {**rest, "anyOf": [*options, item]}
    return prop


def _model(title: str, model: dict[str, Any]) -> None:
    props: dict[str, Any] = model.get("properties", {})
    if title in _SINK_TITLES:  # a sink's type picks its schema: the YAML must say it
        props["type"].pop("default", None)
        model["required"] = ["type", *model.get("required", [])]
    for name in list(props):
        props[name] = _loosen(name, props[name])
    secrets = SECRETS.get(title, ())
    for key in secrets:
        props[f"{key}_file"] = {
            "type": "string",
            "description": f"a file holding {key} (surrounding whitespace stripped)",
        }
    needed = [key for key in secrets if key in model.get("required", [])]
    if needed:  # a required secret: the key or its file, one of them
        model["required"] = [r for r in model["required"] if r not in needed]
        model["allOf"] = [
            {"oneOf": [{"required": [key]}, {"required": [f"{key}_file"]}]} for key in needed
        ]
    for key in (key for key in secrets if key not in needed):  # an optional one: not both
        model.setdefault("allOf", []).append({"not": {"required": [key, f"{key}_file"]}})


def json_schema() -> dict[str, Any]:
    """The schema of config.yaml, as a JSON value."""
    schema: dict[str, Any] = Settings.model_json_schema()
    for title, model in schema.get("$defs", {}).items():
        _model(title, model)
    _model("Settings", schema)
    schema["$schema"] = SCHEMA_URL
    schema["title"] = "posthog-signal-notifier configuration"
    schema["description"] = (
        "config.yaml of posthog-signal-notifier; `notifier check` validates it fully. "
        "${VAR} and ${VAR:-default} are expanded in strings before validation."
    )
    return schema
