"""The package's shape, read from its source: no import cycle of any kind, the client never
imports the emulator, no hidden channel between layers, and how long modules may grow.

Every import counts: at module level, inside functions, under ``TYPE_CHECKING``,
``from . import x`` of a submodule, ``importlib.import_module`` of a string, in every
subpackage.

And the tests' side of it: a test goes through the public API, except in tests/unit/ (unit tests
of internal pieces), in tests/emulator/ (the emulator's own modules) and in the few rows of
:data:`PRIVATE_READS`, each with its reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import aiportrait

PACKAGE = Path(aiportrait.__file__).parent

#: The parts of the package above the client, besides the emulator (whose boundary
#: tests/test_emulator_boundary.py guards): they may import the client; it never imports them.
ABOVE_THE_CLIENT = ("aiportrait.cli", "aiportrait.temporal")
ABOVE_THE_CLIENT_MODULES = ("aiportrait.__main__", "aiportrait._demo", "aiportrait.pytest_plugin")


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` inside ``module``."""
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def string_argument(node: ast.AST, calls: frozenset[str]) -> str | None:
    """The string that a call of one of ``calls`` (``import_module("x")``, ``f.setattr("x",
    ...)``) takes first, or ``None``."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func, first = node.func, node.args[0]
    called = getattr(func, "attr", None) or getattr(func, "id", None)
    if called in calls and isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


_IMPORTING_CALLS = frozenset({"import_module", "__import__"})


def imports_of(path: Path, module: str, known: set[str]) -> Iterator[str]:
    """Every module of ``known`` that the source at ``path`` imports, by any means."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve(module, is_package, node.level, node.module)
            else:
                target = node.module or ""
            for alias in node.names:  # ``from . import x``: x may be a submodule
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield sub
                elif target in known:
                    yield target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name
        elif (name := string_argument(node, _IMPORTING_CALLS)) is not None:
            if name.startswith("."):
                level = len(name) - len(name.lstrip("."))
                name = _resolve(module, is_package, level, name.lstrip(".") or None)
            if name in known:
                yield name


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = _modules(root)
    known = set(modules)
    return {name: set(imports_of(path, name, known)) - {name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each once (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(edges.get(node, ())):
            if dep not in index:
                connect(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_there_is_no_import_cycle_of_any_kind() -> None:
    edges = graph()
    assert len(edges) > 80
    assert cycles(edges) == []


def test_the_client_never_imports_its_entry_points_or_the_temporal_layer() -> None:
    above = ABOVE_THE_CLIENT + ABOVE_THE_CLIENT_MODULES

    def is_above(name: str) -> bool:
        return any(name == top or name.startswith(top + ".") for top in above)

    wrong = {
        name: sorted(dep for dep in deps if is_above(dep))
        for name, deps in graph().items()
        if not is_above(name) and not name.startswith("aiportrait.emulator")
    }
    assert {name: deps for name, deps in wrong.items() if deps} == {}


def test_batches_and_requests_never_see_the_session() -> None:
    edges = graph()
    assert "aiportrait._session" not in edges["aiportrait._batches.batch"]
    assert "aiportrait._session" not in edges["aiportrait._batches.runner"]
    assert "aiportrait._session" not in edges["aiportrait._requests"]


def test_the_guard_sees_every_kind_of_import(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    for name in ("__init__", "a", "b", "c", "d", "e", "sub/__init__", "sub/f"):
        (root / f"{name}.py").write_text("")
    (root / "a.py").write_text(
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n"
        "    from .c import Thing\n"
        "def f():\n"
        "    from .sub import f\n"
        "    importlib.import_module('.d', __package__)\n"
        "    import pkg.e\n"
    )
    (root / "sub" / "f.py").write_text("def g():\n    from .. import a\n")
    edges = graph(root)
    assert edges["pkg.a"] == {"pkg.b", "pkg.c", "pkg.sub.f", "pkg.d", "pkg.e"}
    assert edges["pkg.sub.f"] == {"pkg.a"}
    assert cycles(edges) == [["pkg.a", "pkg.sub.f"]]


def test_no_context_variable_carries_a_calls_data_between_layers() -> None:
    users = sorted(
        name
        for name, path in _modules().items()
        if "ContextVar(" in path.read_text(encoding="utf-8")
    )
    # aiportrait.otel's hook keeps the span of a call in progress between that call's own
    # events (a hook's private state, in the task of the call), never data for another layer.
    assert users == ["aiportrait.otel.instrumentation"]


#: Modules still over about 400 lines, to be split (issue 19): none may join the list, and a
#: module that shrank below the bound leaves it.
STILL_TOO_LONG: set[str] = set()


def test_modules_stay_short() -> None:
    lines = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    long = {name for name, count in lines.items() if count > 420} - {"aiportrait.errors"}
    assert long - STILL_TOO_LONG == set()  # no new long module
    assert STILL_TOO_LONG - long == set()  # shrank: take it off the list


# -- the tests' side: through the public API, except where a place or a row below says why -------

TESTS = Path(__file__).parent

#: Where a test may import what is private: tests/unit/ holds the unit tests of internal pieces
#: with no public face (the signer, the streamed-image lifter, the codec's fast paths and fuzzing,
#: the journal's SQLite file, ...); tests/emulator/ is the emulator's own suite, which may import
#: the emulator's modules and aiportrait._vision (the photo checks the emulator is built on).
PRIVATE_PLACES = {
    "unit": ("aiportrait.",),
    "emulator": ("aiportrait.emulator.", "aiportrait._vision"),
}

#: Tests elsewhere that still read what no public API shows, each with why. The list only
#: shrinks: a row no test needs any more fails like a new private import does.
PRIVATE_READS = {
    ("test_batch.py", "aiportrait._batches.journal"):
        "the journal's item states (Journal.counts); a row's key, to spoil that row",
    ("test_batch_kill.py", "aiportrait._batches.journal"):
        "the journal's item states while a child process runs the batch",
    ("test_charged_calls.py", "aiportrait._batches.journal"):
        "that a create stopped before it was sent left no row at all",
    ("test_demo.py", "aiportrait._demo"):
        "the contact sheet's layout and run_demo's wiring: the demo's public face is the command",
    ("test_secrets.py", "aiportrait._wire.transport"):
        "every signature a whole flow sent (a spy on Transport.headers)",
    # local photos
    ("test_batch_local.py", "aiportrait._batches.journal"): "the journal's upload rows",
    ("test_uploads.py", "aiportrait._batches.journal"): "the journal's upload rows",
    ("test_uploads.py", "aiportrait._local.photos"): "read_photo on bytes of a format it refuses",
}  # fmt: skip

#: Calls whose first argument, a string, names what they import or patch.
_NAMING_CALLS = _IMPORTING_CALLS | {"setattr", "delattr", "patch"}


def _is_private(dotted: str) -> bool:
    return any(p.startswith("_") and not p.endswith("__") for p in dotted.split("."))


def private_imports(source: str) -> set[str]:
    """Every private module or name of aiportrait that ``source`` reaches: ``import`` and
    ``from ... import`` at any depth, a private name imported from a public module, an
    attribute chain from ``aiportrait``, and a string naming one in ``monkeypatch.setattr``,
    ``importlib.import_module`` and the like."""
    found: set[str] = set()

    def note(dotted: str) -> None:
        if dotted.split(".")[0] == "aiportrait" and _is_private(dotted):
            found.add(dotted)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if _is_private(node.module):
                note(node.module)
            else:
                for alias in node.names:
                    note(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                note(alias.name)
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                note(".".join([value.id, *reversed(chain)]))
        elif (named := string_argument(node, _NAMING_CALLS)) is not None:
            note(named)
    return found


def _module_of(dotted: str, known: set[str]) -> str:
    """The module ``dotted`` is in (``aiportrait._x.y`` for ``aiportrait._x.y.name``)."""
    parts = dotted.split(".")
    while len(parts) > 1 and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def test_tests_go_through_the_public_api() -> None:
    known = set(_modules())
    reads: set[tuple[str, str]] = set()
    wrong: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        place = path.relative_to(TESTS).parts
        allowed = PRIVATE_PLACES.get(place[0], ()) if len(place) > 1 else ()
        for dotted in sorted(private_imports(path.read_text(encoding="utf-8"))):
            if dotted.startswith(allowed):
                continue
            row = ("/".join(place), _module_of(dotted, known))
            if row in PRIVATE_READS:
                reads.add(row)
            else:
                wrong.setdefault("/".join(place), []).append(dotted)
    assert wrong == {}  # a test outside tests/unit/ imports what is private
    assert set(PRIVATE_READS) - reads == set()  # no longer needed: take the row off


def test_the_tests_guard_sees_every_kind_of_reach() -> None:
    source = (
        "import aiportrait._wire.signing\n"
        "from aiportrait._batches.journal import Journal\n"
        "from aiportrait import _args, errors\n"
        "from aiportrait.hooks import _GLOBAL, add_hook\n"
        "from . import _helper\n"  # the tests' own helpers are theirs
        "def f(monkeypatch):\n"
        "    from aiportrait.temporal._wire import OutcomePage\n"
        "    monkeypatch.setattr('aiportrait._demo.run_demo', None)\n"
        "    importlib.import_module('aiportrait._display.progress')\n"
        "    aiportrait.hooks._GLOBAL.clear()\n"
        "    aiportrait.errors.JournalLocked\n"
        "    'aiportrait._session' in edges\n"  # a module's name as data
    )
    assert private_imports(source) == {
        "aiportrait._wire.signing",
        "aiportrait._batches.journal",
        "aiportrait._args",
        "aiportrait.hooks._GLOBAL",
        "aiportrait.temporal._wire",
        "aiportrait._demo.run_demo",
        "aiportrait._display.progress",
    }
    known = set(_modules())
    assert _module_of("aiportrait._demo.run_demo", known) == "aiportrait._demo"
    assert _module_of("aiportrait._wire.transport.Transport", known) == "aiportrait._wire.transport"
