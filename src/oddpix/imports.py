"""What a piece of code really depends on, read from the source: the oddpix modules it imports.

:func:`closure` is the transitive closure of the intra-package imports (module-level and inside
functions) of some modules and scripts, as paths relative to the workspace. The walk does not go
through ``oddpix.config``: that module turns params values into objects, and the values themselves are
a stage's DVC params (config.py and the modules it imports for *validation* would otherwise make every
stage depend on every section's module). Imports made by name at run time (``importlib``) are not
followed: that is how the stage table reaches each stage's step without depending on all of them.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable

SRC = Path(__file__).resolve().parents[1]  # the folder holding the oddpix package
NOT_FOLLOWED = {"oddpix.config"}


def module_path(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def _absolute(node: ast.ImportFrom, name: str | None, path: Path) -> str:
    if not node.level:
        return node.module or ""
    base = _package(name, path).split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, name: str | None) -> set[str]:
    """The oddpix modules ``path`` imports (``name``: its dotted name, None for a script)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("oddpix")}
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(node, name, path)
            if mod.startswith("oddpix"):
                found.add(mod)
                found |= {f"{mod}.{a.name}" for a in node.names if module_path(f"{mod}.{a.name}")}
    return {m for m in found if module_path(m)}


def _trivial(path: Path) -> bool:
    """A package __init__ with nothing but a docstring and constants."""
    tree = ast.parse(path.read_text())
    return all(isinstance(n, (ast.Expr, ast.Assign)) for n in tree.body)


def closure(modules: Iterable[str], scripts: Iterable[Path] = ()) -> set[Path]:
    """The source files of ``modules`` and ``scripts`` and of every oddpix module they import, transitively
    (a package's ``__init__`` only when it holds code)."""
    todo = set(modules)
    for script in scripts:
        todo |= imports_of(script, None)
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        parts = mod.split(".")
        todo |= {".".join(parts[:i]) for i in range(1, len(parts))}  # importing a.b.c runs a and a.b too
        if mod not in NOT_FOLLOWED:
            todo |= imports_of(module_path(mod), mod) - seen
    paths = {module_path(m) for m in seen}
    return {p for p in paths if not (p.name == "__init__.py" and _trivial(p))} | set(scripts)
