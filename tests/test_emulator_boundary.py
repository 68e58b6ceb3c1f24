"""The client never imports the emulator; the shared photo check imports neither.

The emulator may import the client's modules (it builds the client's ``Session``) and the
neutral :mod:`aiportrait._vision`; the client (every module of ``aiportrait`` outside the
emulator and the entry points that start it for the user) must not import the emulator, in any
form: at module level, in a function, under ``TYPE_CHECKING``, as ``from . import emulator``, or
by name through ``importlib.import_module``, ``__import__``, ``importlib.resources.files`` or
``find_spec`` (each of which imports the package).
"""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import aiportrait
from tests.test_architecture import string_argument

PACKAGE = Path(aiportrait.__file__).parent
EMULATOR = "aiportrait.emulator"
#: Calls that import the module named by their first argument.
_IMPORTING_CALLS = frozenset({"import_module", "__import__", "files", "find_spec"})


def _pytest_plugin() -> str:
    """The file of the pytest plugin (the ``pytest11`` entry point): it starts emulators."""
    (plugin,) = [e.value for e in entry_points(group="pytest11") if e.name == "aiportrait"]
    return plugin.removeprefix("aiportrait.").replace(".", "/") + ".py"


#: Not the client: the emulator, and what starts one for the user (the CLI, the Temporal layer,
#: the demo and the pytest plugin), whole; in the client, only the functions named here may.
NOT_CLIENT = ("emulator/", "cli/", "temporal/", "_demo.py", _pytest_plugin())
ALLOWED_FUNCTIONS = {
    ("sync.py", "emulator"),  # aiportrait.sync.emulator(): starts one on the sync loop
}


def _package_of(path: Path, root: Path) -> list[str]:
    parts = ["aiportrait", *path.relative_to(root).parts]
    return parts[:-1]  # a module's package; for __init__.py, the package itself


def _absolute(name: str, level: int, package: list[str]) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``package``."""
    if level == 0:
        return name
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _targets(node: ast.AST, package: list[str]) -> list[str]:
    """The absolute names of the modules ``node`` may import (none if it imports nothing)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        module = _absolute(node.module or "", node.level, package)
        return [module, *(f"{module}.{alias.name}" for alias in node.names)]
    text = string_argument(node, _IMPORTING_CALLS)
    if text is not None:
        level = len(text) - len(text.lstrip("."))
        return [_absolute(text.lstrip("."), level, package)]
    return []


def imports(path: Path, root: Path = PACKAGE) -> list[tuple[list[str], str]]:
    """Each import that ``path`` (under ``root``, the ``aiportrait`` folder) makes anywhere: the
    modules it may import, and the outermost function it is in (``""`` at module level,
    ``TYPE_CHECKING`` blocks included)."""
    package = _package_of(path, root)
    found: list[tuple[list[str], str]] = []

    def visit(node: ast.AST, function: str) -> None:
        targets = _targets(node, package)
        if targets:
            found.append((targets, function))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = function or node.name
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(path.read_text()), "")
    return found


def _is_emulator(name: str) -> bool:
    return name == EMULATOR or name.startswith(EMULATOR + ".")


def emulator_imports(path: Path, root: Path = PACKAGE) -> list[tuple[str, str]]:
    """The imports of the emulator in ``path``: the emulator module each names, and where."""
    return [
        (next(t for t in targets if _is_emulator(t)), function)
        for targets, function in imports(path, root)
        if any(_is_emulator(t) for t in targets)
    ]


def _client_modules() -> list[Path]:
    sources = sorted(PACKAGE.rglob("*.py"))
    return [p for p in sources if not p.relative_to(PACKAGE).as_posix().startswith(NOT_CLIENT)]


def test_the_client_never_imports_the_emulator() -> None:
    clients = _client_modules()
    assert len(clients) > 30
    assert PACKAGE / "_local" / "preflight.py" in clients
    assert PACKAGE / "_vision" / "check.py" in clients
    found: dict[str, list[str]] = {}
    for path in clients:
        name = path.relative_to(PACKAGE).as_posix()
        bad = [
            f"{target} ({f'in {function}()' if function else 'module level'})"
            for target, function in emulator_imports(path)
            if (name, function) not in ALLOWED_FUNCTIONS
        ]
        if bad:
            found[name] = bad
    assert found == {}


def test_the_shared_photo_check_imports_only_itself() -> None:
    sources = sorted((PACKAGE / "_vision").glob("*.py"))
    assert len(sources) >= 6
    outside = {
        path.name: [
            target
            for targets, _ in imports(path)
            for target in targets
            if target.startswith("aiportrait") and not target.startswith("aiportrait._vision")
        ]
        for path in sources
    }
    assert outside == {path.name: [] for path in sources}


def test_the_emulator_may_import_the_client() -> None:
    # The rule runs one way: the emulator uses the shared check (and may use any client module).
    work = PACKAGE / "emulator" / "_work.py"
    assert any(t.startswith("aiportrait._vision") for targets, _ in imports(work) for t in targets)


def test_the_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "aiportrait" / "_vision" / "sample.py"  # '..' is the client package
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "import importlib\n"
        "from importlib import resources\n"
        "from typing import TYPE_CHECKING\n"
        "from . import images\n"
        "from .. import emulator\n"
        "from ..emulator._work import Worker\n"
        "import aiportrait.emulator._jobs\n"
        "if TYPE_CHECKING:\n"
        "    from aiportrait.emulator import Emulator\n"
        "def f():\n"
        "    from aiportrait import emulator\n"
        "    def g():\n"
        "        importlib.import_module('aiportrait.emulator._app')\n"
        "    resources.files('aiportrait.emulator')\n"
        "    return __import__('aiportrait.emulator')\n"
        "class C:\n"
        "    def m(self):\n"
        "        importlib.util.find_spec('..emulator')\n"
    )
    root = tmp_path / "aiportrait"
    assert (["aiportrait._vision", "aiportrait._vision.images"], "") in imports(sample, root)
    assert emulator_imports(sample, root) == [
        ("aiportrait.emulator", ""),
        ("aiportrait.emulator._work", ""),
        ("aiportrait.emulator._jobs", ""),
        ("aiportrait.emulator", ""),
        ("aiportrait.emulator", "f"),
        ("aiportrait.emulator._app", "f"),
        ("aiportrait.emulator", "f"),
        ("aiportrait.emulator", "f"),
        ("aiportrait.emulator", "m"),
    ]
