"""The value types of the configuration: durations, URLs, lists that accept one value, and the
strict base model, each with a message that says what to write instead.

Used by ``notifier.config.load`` and ``notifier.config.sinks``. Messages are our own words; the
loader adds the value the user wrote (``shown``: quoted, cut, escaped), except where a secret
goes or when the value looks like one (a key put in the wrong place).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import math
import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from notifier.core.report import STATUSES
from notifier.core.secrets import derived as secret_forms

_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
WHSEC_HELP: Final = (
    "must be 'whsec_' followed by base64 of 24-64 random bytes; generate one with: python -c "
    "\"import base64,os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())\""
)


#: An echoed value is cut to this many characters (``…`` included).
ECHO_LIMIT: Final = 60
#: How credentials begin (PostHog keys, Slack tokens, Standard Webhooks secrets, header values).
_CREDENTIAL: Final = re.compile(
    r"(?:ph[a-z]_|whsec_|xox[a-z.]*-|xapp-|(?:Bearer|Basic|Token|Bot)\s)", re.IGNORECASE
)
#: A long single word mixing letters and digits: a key or token more likely than a mistake.
_TOKEN_LENGTH: Final = 16


def looks_secret(text: str) -> bool:
    """Whether ``text`` may be a credential: one that begins like one, a URL with secret parts
    (userinfo, query values, a webhook path: ``core.secrets``' own rule), or a long word of
    letters and digits."""
    if _CREDENTIAL.match(text.strip()):
        return True
    if "://" in text:
        return any(prefix for prefix in secret_forms(text.strip()).values())
    return (
        len(text) >= _TOKEN_LENGTH
        and not any(ch.isspace() for ch in text)
        and any(ch.isdigit() for ch in text)
        and any(ch.isalpha() for ch in text)
    )


def _quoted(text: str) -> str:
    """``text`` in quotes, escaped like ``repr`` (no raw newline or control character), cut to
    ``ECHO_LIMIT`` characters with ``…``."""
    pieces: list[str] = []
    size = 0
    for ch in text:
        piece = "\\'" if ch == "'" else repr(ch)[1:-1]
        size += len(piece)
        if size > ECHO_LIMIT - 2:
            return "'" + "".join(pieces) + "…'"
        pieces.append(piece)
    return "'" + "".join(pieces) + "'"


def shown(value: object) -> str | None:
    """What the user wrote, for a message: text quoted (see ``_quoted``), a number or true/false
    as written, a list or mapping by its type only; None for a value that ``looks_secret``."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | float):
        return _quoted(str(value)).strip("'")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, date):
        value = value.isoformat()
    if not isinstance(value, str):
        return f"a value of type {type(value).__name__}"
    return None if looks_secret(value) else _quoted(value)


def parse_duration(value: object) -> float:
    """``90s``, ``5m``, ``1h``, ``1d``, ``500ms`` or a number of seconds → seconds (≥ 0)."""
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (found := _DURATION.fullmatch(value.strip())):
        seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("invalid duration; use a number of seconds or 500ms, 90s, 5m, 1h, 1d")
    return seconds


def _positive_duration(value: object) -> float:
    if (seconds := parse_duration(value)) <= 0:
        raise ValueError("must be longer than 0s, like 30s")
    return seconds


def at_least_1s(seconds: float) -> float:
    """``poll.interval``: PostHog's rate limit makes anything shorter pointless."""
    if seconds < 1:
        raise ValueError("must be at least 1s; PostHog allows 480 requests/minute, try 60s")
    return seconds


def keep_at_least_1s(seconds: float) -> float:
    """``delivery.keep_delivered``: the audit trail."""
    if seconds < 1:
        raise ValueError("must be at least 1s; delivered entries are the audit trail, try 7d")
    return seconds


def _no_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


def listify(value: object) -> object:
    """A single value where a list is expected: a list of one."""
    return [value] if isinstance(value, str | int | float) else value


def _not_empty(fix: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    def check(items: tuple[Any, ...]) -> tuple[Any, ...]:
        if not items:
            raise ValueError(f"is empty; {fix}")
        return tuple(dict.fromkeys(items))

    return check


#: What ``posthog.statuses`` may list: every status but ``deleted``, which PostHog refuses as a
#: filter (400; deleted reports are found as ``removed`` events).
LISTABLE_STATUSES: Final = tuple(status for status in STATUSES if status != "deleted")


def _listable(items: tuple[str, ...]) -> tuple[str, ...]:
    """Statuses PostHog accepts as a listing filter (an unknown one is ``shown``)."""
    valid = ", ".join(LISTABLE_STATUSES)
    for number, item in enumerate(items, 1):
        if item == "deleted":
            raise ValueError(
                "lists 'deleted', which PostHog refuses as a filter (400); remove it: deleted "
                "reports are announced as 'removed' events without it"
            )
        if item not in LISTABLE_STATUSES:
            close = difflib.get_close_matches(item, LISTABLE_STATUSES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            said = f" ({shown(item)})" if shown(item) else ""
            raise ValueError(f"item {number}{said} is not a PostHog status; {hint}valid: {valid}")
    return items


def unique(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """The items without duplicates, in order."""
    return tuple(dict.fromkeys(items))


def _secret_url(value: SecretStr) -> SecretStr:
    _http_url(value.get_secret_value())
    return value


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port or bracket
        valid = False
    if not valid:
        raise ValueError("must be an http:// or https:// URL")
    return value


def origin(value: str) -> str:
    """An http(s) origin without a path, normalised to ``scheme://host[:port]``."""
    parts = urlsplit(_http_url(value))
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(
            "must be an http(s) origin without a path, like https://us.posthog.com, "
            "https://eu.posthog.com or your self-hosted https://posthog.example.com"
        )
    return f"{parts.scheme}://{parts.netloc}"


def api_base_url(value: str) -> str:
    """An http(s) URL ending in ``/``."""
    return _http_url(value).rstrip("/") + "/"


def whsec(secret: SecretStr) -> SecretStr:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24-64 bytes."""
    value = secret.get_secret_value()
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not value.startswith("whsec_") or not 24 <= len(key) <= 64:
        raise ValueError(WHSEC_HELP)
    return secret


Int = Annotated[int, BeforeValidator(_no_bool)]
Text = Annotated[str, Field(min_length=1)]
Url = Annotated[str, AfterValidator(_http_url)]
#: Secrets are ``SecretStr``: printed, logged or dumped they show ``**********``; code that
#: needs the value asks for it with ``get_secret_value()``.
Secret = Annotated[SecretStr, Field(min_length=1)]
SecretUrl = Annotated[SecretStr, AfterValidator(_secret_url)]
Duration = Annotated[float, BeforeValidator(_positive_duration)]
Durationish = Annotated[float, BeforeValidator(parse_duration)]  # zero allowed
# Lists accept a single value too, must not be empty, and drop duplicates.
ProjectIds = Annotated[
    tuple[Annotated[Int, Field(gt=0)], ...],
    BeforeValidator(listify),
    AfterValidator(_not_empty("list one project id or more, like [12345]")),
]
Statuses = Annotated[
    tuple[Text, ...],
    BeforeValidator(listify),
    AfterValidator(_not_empty("list statuses, or omit the key for the default listing")),
    AfterValidator(_listable),
]
SinkNames = Annotated[
    tuple[Text, ...],
    BeforeValidator(listify),
    AfterValidator(_not_empty("name a sink from sinks:")),
]


class Model(BaseModel):
    """Unknown keys are errors, values are frozen, text is stripped."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def derived(default: Any = None) -> Any:
    """A field the loader fills in (a sink's name, compiled templates, the source file), never
    a key of the YAML: ``inputs`` leaves it out. Its type is wrapped in ``SkipJsonSchema`` so
    that editors are not offered it either."""
    return Field(default=default, exclude=True)


def inputs(model: type[BaseModel]) -> list[str]:
    """The keys the YAML may give ``model``, in declaration order (without ``derived`` ones)."""
    return [name for name, field in model.model_fields.items() if not field.exclude]
