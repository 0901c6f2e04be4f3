"""The raw configuration document: size cap, safe YAML without aliases, ``${VAR}``, ``*_file``.

YAML problems that stop parsing (syntax, aliases, duplicate or non-text keys, a file too big,
too many values) raise ``ConfigError`` at once, naming line and column. Environment expansion
and secret files instead *collect* their problems, each with its key path, so that
``notifier.config.load`` can report them together with every other problem in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from notifier.core.errors import ConfigError

MAX_BYTES: Final = 1024 * 1024
#: Values (scalars, lists, mappings) one document may hold: real configs have hundreds, and
#: pure-Python YAML takes ~20 µs and ~700 bytes per value (a 1 MiB flow list: 11 s, 370 MB).
MAX_NODES: Final = 20_000
SECRET_FILE_MAX: Final = 64 * 1024
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_REFERENCE: Final = re.compile(r"\$(?:\$|\{([^}]*)\}|\{)")
_NAME_DEFAULT: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)

#: A key path: ``("rules", 0, "match", "title")`` is ``rules[0].match.title``.
Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


class Said(str):
    """A problem's message that already names its place in its own words (a template's
    ``rules[2] "ready".template.body, line 1: …``): printed as it is, without the key path."""

    __slots__ = ()


def format_problem(loc: Loc, message: str) -> str:
    """``key.path: message``, or a ``Said`` message as it is."""
    return message if isinstance(message, Said) else f"{format_loc(loc)}: {message}"


def format_loc(loc: Loc) -> str:
    """``("rules", 1, "sinks", 0)`` → ``rules[1].sinks[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that we do not accept."""


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` without aliases (billion laughs), duplicate keys, non-text keys or
    more than ``MAX_NODES`` values."""

    nodes = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            raise _Refused(
                problem="YAML aliases (*name) are not supported; write the value out instead",
                problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
            )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Refused(
                problem=f"more than {MAX_NODES} values; is it the right file?",
                problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                key = self.construct_object(key_node)
                if not isinstance(key, str):
                    raise _Refused(
                        problem=f"the key {key_node.value!r} is read as {type(key).__name__}, "
                        "not text; quote it",
                        problem_mark=key_node.start_mark,
                    )
                if key in seen:
                    raise _Refused(
                        problem=f"duplicate key {key!r}; the later one would silently win, "
                        "remove one",
                        problem_mark=key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_text(path: Path) -> str:
    """The file's text, refusing anything over ``MAX_BYTES`` or not UTF-8."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], source) from exc
    if len(data) > MAX_BYTES:
        raise ConfigError(["the file is larger than 1 MiB; is it the right file?"], source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start}); save it as UTF-8"], source) from exc


def _hint(text: str, mark: yaml.Mark | None, context: str | None) -> str:
    """What to look at: a ``${VAR}`` inside ``{…}``/``[…]`` must be quoted (its braces end
    the flow mapping); else indentation and quoting."""
    line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
    if "${" in line and "flow" in (context or ""):
        return '; inside { } or [ ], quote a ${VAR} value: api_key: "${VAR}"'
    return "; check indentation and quoting"


def load_yaml(text: str, source: str) -> dict[Any, Any]:
    """Parse one YAML document that must be a mapping; fatal problems raise ``ConfigError``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ConfigError(["the file is larger than 1 MiB; is it the right file?"], source)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        hint = "" if isinstance(exc, _Refused) else _hint(text, mark, exc.context)
        raise ConfigError([f"{where}{what}{context}{hint}"], source) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {type(exc).__name__}"], source) from exc
    except RecursionError as exc:
        raise ConfigError(["the YAML is nested too deeply"], source) from exc
    if data is None:
        raise ConfigError(["the file is empty; start from config.example.yaml"], source)
    if not isinstance(data, dict):
        raise ConfigError(
            ["the top level must be a mapping (posthog:, sinks:, rules: ...)"], source
        )
    return data


def expand_env(value: Any, env: Mapping[str, str], loc: Loc, problems: list[Problem]) -> Any:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$`` in every string value, recursively.

    Keys are left alone. An unset variable without a default becomes a problem at ``loc``.
    """
    if isinstance(value, dict):
        return {k: expand_env(v, env, (*loc, str(k)), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, (*loc, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        inner = found.group(1)
        parsed = _NAME_DEFAULT.fullmatch(inner) if inner is not None else None
        if parsed is None:
            problems.append(
                (
                    loc,
                    f"invalid reference {found.group(0)!r}: use ${{NAME}} or "
                    "${NAME:-default}, and $$ for a literal $",
                )
            )
            return ""
        name, default = parsed.group(1), parsed.group(2)
        current = env.get(name)
        if current:
            return current
        if default is not None:
            return default
        if current is None:
            problems.append(
                (
                    loc,
                    f"environment variable {name} is not set (export it, or use ${{{name}:-...}})",
                )
            )
        return ""

    return _REFERENCE.sub(substitute, value)


def _read_secret(value: object, base_dir: Path | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be the path of a file holding the secret")
    path = Path(value.strip()).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        with path.open("rb") as handle:
            data = handle.read(SECRET_FILE_MAX + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"cannot read {path}: {reason}; check the path and permissions") from exc
    try:
        secret = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        secret = ""
    if not secret or len(data) > SECRET_FILE_MAX:
        raise ValueError(f"{path} is empty, not UTF-8 text or over 64 KiB; put the secret in it")
    return secret


def read_secret_files(
    block: Any, keys: Iterable[str], loc: Loc, base_dir: Path | None, problems: list[Problem]
) -> set[Loc]:
    """Replace each ``<key>_file`` in ``block`` by ``<key>`` holding the file's stripped text.

    Relative paths are relative to ``base_dir``. Returns the keys whose file could not be read,
    so that their "required key is missing" is not reported on top.
    """
    failed: set[Loc] = set()
    for key in keys if isinstance(block, dict) else ():
        if f"{key}_file" not in block:
            continue
        where, value = (*loc, f"{key}_file"), block.pop(f"{key}_file")
        if key in block:
            problems.append((where, f"both {key} and {key}_file are set; keep one"))
            continue
        try:
            block[key] = _read_secret(value, base_dir)
        except ValueError as exc:
            problems.append((where, str(exc)))
            failed.add((*loc, key))
    return failed
