"""The shape of the source tree, checked: imports flow one way, and modules, classes and
functions stay small enough to read.

Each top-level folder of ``notifier/`` is a layer and may import only the layers listed for it
in ``LAYERS`` (and itself). ``core`` imports nothing of the project; the adapters (``posthog``,
``state``, ``sinks``) sit on ``core``, ``render`` and ``config``; ``cycle`` and ``delivery`` use
the adapters; ``runtime`` wires them; ``demo`` and ``cli`` are on top. The check reads the
source with ``ast``, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "notifier"

#: layer → the layers it may import (besides itself and the ``notifier`` root's ``__version__``)
_ADAPTERS = frozenset({"core", "net", "config", "render", "posthog", "state", "sinks"})
LAYERS: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "net": frozenset({"core"}),  # bounded HTTP: below the adapters that share it
    "render": frozenset({"core"}),
    "config": frozenset({"core", "render"}),
    "posthog": frozenset({"core", "net", "config"}),
    "state": frozenset({"core", "config"}),
    "sinks": frozenset({"core", "net", "config", "render"}),
    "cycle": _ADAPTERS - {"sinks"},
    "delivery": _ADAPTERS - {"posthog"},
    "interact": _ADAPTERS,  # a click on a Slack card: PostHog write, state, card update
    "runtime": _ADAPTERS | {"cycle", "delivery", "interact"},
    "demo": _ADAPTERS | {"cycle", "delivery", "runtime", "interact"},
    "cli": _ADAPTERS | {"cycle", "delivery", "runtime", "demo", "interact"},
}
#: what may stand at the top of ``notifier/`` besides the layers
TOP_LEVEL_MODULES = {"__init__.py", "__main__.py"}

MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 60


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every ``notifier`` module ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # ``from notifier.x import module``
                yield node.lineno, f"{node.module}.{alias.name}"


def layer_of(dotted: str) -> str | None:
    """The layer of a dotted ``notifier.<layer>…`` name (None: the root or not ours)."""
    parts = dotted.split(".")
    if parts[0] != "notifier" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return parts[1]


def wrong_way_imports(package: Path) -> list[str]:
    """Every import of ``package`` that a layer may not make, as ``file:line: a → b``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if len(relative.parts) < 2:
            continue  # the root's __init__ and __main__ may import anything
        layer = relative.parts[0]
        allowed = LAYERS.get(layer, frozenset()) | {layer}
        for line, name in imported_modules(path):
            target = layer_of(name)
            if target is not None and target not in allowed:
                found.append(f"notifier/{relative}:{line}: {layer} → {target} ({name})")
    return found


def test_imports_flow_one_way() -> None:
    assert wrong_way_imports(PACKAGE) == []


def test_a_wrong_way_import_is_found(tmp_path: Path) -> None:
    """The check itself can fail: core importing an adapter, and sinks importing a sibling
    adapter, are both reported with file and line."""
    package = tmp_path / "notifier"
    for layer in ("core", "sinks", "posthog"):
        (package / layer).mkdir(parents=True)
        (package / layer / "__init__.py").write_text("")
    (package / "core" / "models.py").write_text("import json\nfrom notifier.state import store\n")
    (package / "sinks" / "slack.py").write_text(
        "def later():\n    from notifier.posthog.listing import instant\n"
    )
    (package / "posthog" / "client.py").write_text("from notifier.core.events import Report\n")
    assert wrong_way_imports(package) == [
        "notifier/core/models.py:2: core → state (notifier.state)",
        "notifier/core/models.py:2: core → state (notifier.state.store)",
        "notifier/sinks/slack.py:2: sinks → posthog (notifier.posthog.listing)",
        "notifier/sinks/slack.py:2: sinks → posthog (notifier.posthog.listing.instant)",
    ]


def test_every_folder_is_a_layer() -> None:
    """A new folder must be placed in ``LAYERS`` (and so in the import order) on purpose."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS)
    modules = {p.name for p in PACKAGE.iterdir() if p.is_file() and p.suffix == ".py"}
    assert modules == TOP_LEVEL_MODULES


def _spans(tree: ast.Module) -> Iterator[tuple[str, str, int]]:
    """``(kind, name, lines)`` of every class and function, nested ones included; a function's
    docstring does not count."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            yield "class", node.name, (node.end_lineno or node.lineno) - node.lineno + 1
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0]
            docstring = (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            )
            start = (first.end_lineno or first.lineno) + 1 if docstring else node.lineno
            yield "function", node.name, (node.end_lineno or node.lineno) - start + 1


def oversized(package: Path) -> list[str]:
    """Modules, classes and functions over their limits, as ``file[:name]: lines``."""
    found = []
    limits = {"class": MAX_CLASS_LINES, "function": MAX_FUNCTION_LINES}
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(package.parent).as_posix()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{where}: {lines} lines")
        for kind, name, size in _spans(ast.parse(text)):
            if size > limits[kind] and f"{where}:{name}" not in TABLES:
                found.append(f"{where}:{name}: {size} lines")
    return found


#: Functions that are tables of data (one definition after another, nothing to follow), which
#: the function limit leaves alone.
TABLES: frozenset[str] = frozenset({"notifier/runtime/metrics.py:__init__"})


def test_modules_classes_and_functions_stay_small() -> None:
    assert oversized(PACKAGE) == []


def test_tables_of_data_exist() -> None:
    """An exemption names a function that still exists."""
    for entry in TABLES:
        path, name = entry.split(":")
        tree = ast.parse((PACKAGE.parent / path).read_text())
        assert any(getattr(node, "name", None) == name for node in ast.walk(tree)), entry
