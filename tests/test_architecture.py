"""The shape of the package: no import circle, imports only downward between the packages, no
module ``__getattr__`` (but calibration's optional estimator), 0.6.x paths that only re-export."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "l0"
LEGACY_PATHS = ("gates", "layers", "penalties", "sparse", "distributions")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level(nodes: list[ast.stmt]):
    """Statements run at import: the module's own, and those inside its ``if``/``try`` blocks
    (``if TYPE_CHECKING:`` too: a circle there is still a circle), not function bodies."""
    for node in nodes:
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            for block in (node.body, node.orelse, getattr(node, "finalbody", [])):
                yield from _module_level(block)
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports at module level (not inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in _module_level(ast.parse(path.read_text()).body):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("l0"):
                for alias in node.names:  # `from . import x` may name a module
                    sub = f"{target}.{alias.name}"
                    found.add(sub if _exists(sub) else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("l0"))
    return {m for m in found if _exists(m)} - {name}


def _exists(module: str) -> bool:
    path = SRC.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


GRAPH = {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}


def test_no_module_takes_part_in_an_import_circle():
    def parents(module: str) -> set[str]:  # importing a.b.c runs a/__init__ and a/b/__init__
        parts = module.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(GRAPH.get(module, ())):
            if nxt in parents(module):
                continue  # a package's own __init__ is already running
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(path + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("package, forbidden", [
    ("l0.nn", ("l0.selection", "l0.calibration", "l0.cli", "l0.datasets") + tuple(
        f"l0.{p}" for p in LEGACY_PATHS)),
    ("l0.selection", ("l0.calibration", "l0.cli") + tuple(f"l0.{p}" for p in LEGACY_PATHS)),
    ("l0.calibration", ("l0.selection", "l0.cli") + tuple(f"l0.{p}" for p in LEGACY_PATHS)),
    ("l0._kernels", ("l0.nn", "l0.functional", "l0.calibration", "l0.selection")),
    ("l0.functional", ("l0.nn", "l0.calibration", "l0.selection", "l0._distribution")),
    ("l0._distribution", ("l0.nn", "l0.calibration", "l0.selection")),
])
def test_imports_point_only_downward_between_the_packages(package, forbidden):
    for module, targets in GRAPH.items():
        if module == package or module.startswith(package + "."):
            bad = sorted(t for t in targets if t == "l0" or any(
                t == f or t.startswith(f + ".") for f in forbidden))
            assert not bad, f"{module} imports {bad}"


def test_no_module_getattr_but_the_optional_estimators():
    with_getattr = sorted(_module_name(p) for p in SRC.rglob("*.py")
                          if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__"
                                 for n in ast.parse(p.read_text()).body))
    assert with_getattr == ["l0.calibration"]


@pytest.mark.parametrize("name", LEGACY_PATHS)
def test_the_0_6_paths_only_re_export(name):
    tree = ast.parse((SRC / f"{name}.py").read_text())
    for node in tree.body:
        is_docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        is_all = isinstance(node, ast.Assign) and node.targets[0].id == "__all__"
        assert is_docstring or is_all or isinstance(node, ast.ImportFrom), ast.dump(node)[:80]
    module = importlib.import_module(f"l0.{name}")
    for exported in module.__all__:
        assert getattr(module, exported).__module__.startswith(("l0.nn", "l0.selection",
                                                                "l0._distribution"))
