"""The package's shape, read from its source: no import cycle of any kind, the client never
imports the emulator, no hidden channel between layers, and how long modules may grow.

Every import counts: at module level, inside functions, under ``TYPE_CHECKING``,
``from . import x`` of a submodule, ``importlib.import_module`` of a string, in every
subpackage.
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
        elif isinstance(node, ast.Call) and node.args:
            func, first = node.func, node.args[0]
            called = getattr(func, "attr", None) or getattr(func, "id", None)
            if (
                called in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                name = first.value
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
STILL_TOO_LONG = {
    "aiportrait._wire.transport",
}


def test_modules_stay_short() -> None:
    lines = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    long = {name for name, count in lines.items() if count > 420} - {"aiportrait.errors"}
    assert long - STILL_TOO_LONG == set()  # no new long module
    assert STILL_TOO_LONG - long == set()  # shrank: take it off the list
