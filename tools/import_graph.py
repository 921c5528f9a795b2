#!/usr/bin/env python3
"""Print the module graph of ReproMan's packages and the import cycles in it.

    python tools/import_graph.py                 # every package: modules, their imports, cycles
    python tools/import_graph.py --cycles        # only the cycles (exit 1 when there are any)
    python tools/import_graph.py reproman        # one package (import name or folder)
    python tools/import_graph.py --runtime-only  # leave out imports under ``if TYPE_CHECKING:``

Imports are read with :mod:`ast`, never executed, so the tool runs on a bare
Python (standard library only) and sees every import: at module level, inside
functions (the lazy imports that keep start-up fast, and that hide cycles from
a plain ``import`` test) and under ``if TYPE_CHECKING:``. Each edge is marked
with where it was found (``module``, ``function``, ``typing``).

A cycle is a strongly connected component of more than one module: every
module in it reaches every other. They are reported whatever the kind of
their edges, because a cycle made of lazy imports is still two modules that
cannot be understood, tested or moved apart. ``from package import name``
counts as importing the submodule when ``name`` is one, else the package.
Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``;
those implicit edges are not drawn (an ``__init__`` that imports eagerly
shows its own edges), so a package may keep a lazy facade in its
``__init__`` that names its own submodules.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("module", "function", "typing")


@dataclass
class Module:
    name: str
    path: Path
    package: str
    is_package: bool
    #: imported module -> the kinds of statement that import it
    imports: dict[str, set[str]] = field(default_factory=dict)


def discover(root: Path = ROOT) -> dict[str, Path]:
    """Top-level import packages of the monorepo, by import name: ``<folder>/src/<package>``."""
    found: dict[str, Path] = {}
    for src in sorted(root.glob("*/src")):
        for package in sorted(src.iterdir()):
            if (package / "__init__.py").is_file():
                found[package.name] = package
    return found


def module_name(package_dir: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def load_modules(packages: dict[str, Path]) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for package, directory in packages.items():
        for path in sorted(directory.rglob("*.py")):
            name, is_package = module_name(directory, path)
            modules[name] = Module(name=name, path=path, package=package, is_package=is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement with where it sits: ``module``, ``function`` or ``typing``."""

    def visit(node: ast.AST, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, kind
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(child, "typing" if kind == "typing" else "function")
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), "typing")
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), kind)
            else:
                yield from visit(child, kind)

    yield from visit(tree, "module")


def _resolve(module: Module, node: ast.Import | ast.ImportFrom, known: dict[str, Module]) -> Iterable[str]:
    """The first-party modules one import statement loads."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield from _known_prefix(alias.name, known)
        return
    base = node.module or ""
    if node.level:
        anchor = module.name.split(".")
        if not module.is_package:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        if candidate in known:
            yield candidate
        else:
            yield from _known_prefix(base, known)


def _known_prefix(name: str, known: dict[str, Module]) -> Iterable[str]:
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            yield candidate
            return
        parts.pop()


def build_graph(modules: dict[str, Module], kinds: Iterable[str] = KINDS) -> dict[str, Module]:
    wanted = set(kinds)
    for module in modules.values():
        tree = ast.parse(module.path.read_bytes(), filename=str(module.path))
        for node, kind in _import_nodes(tree):
            if kind not in wanted:
                continue
            for target in _resolve(module, node, modules):
                if target != module.name:
                    module.imports.setdefault(target, set()).add(kind)
    return modules


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strongconnect(start: str) -> None:
        # Iterative, so a deep graph cannot hit the recursion limit.
        nonlocal counter
        work = [(start, iter(sorted(modules[start].imports)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in modules:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(modules[child].imports))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for name in sorted(modules):
        if name not in index:
            strongconnect(name)
    return sorted(found, key=lambda c: (-len(c), c))


def _edge(modules: dict[str, Module], source: str, target: str) -> str:
    return f"{source} -> {target} ({', '.join(k for k in KINDS if k in modules[source].imports[target])})"


def describe_cycle(modules: dict[str, Module], component: list[str]) -> list[str]:
    """The import edges that hold one cycle together."""
    members = set(component)
    return [
        _edge(modules, source, target)
        for source in component
        for target in sorted(modules[source].imports)
        if target in members
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", help="import names or folders (default: every package)")
    parser.add_argument("--cycles", action="store_true", help="print only the cycles")
    parser.add_argument("--runtime-only", action="store_true", help="ignore imports under 'if TYPE_CHECKING:'")
    parser.add_argument("--json", action="store_true", help="the graph and cycles as JSON")
    parser.add_argument("--root", type=Path, default=ROOT, help="the monorepo (default: this tool's)")
    args = parser.parse_args(argv)

    every = discover(args.root)
    selected = {}
    for wanted in args.packages or list(every):
        key = wanted.replace("-", "_").rstrip("/").split("/")[0]
        key = {"reproman_core": "reproman"}.get(key, key)
        if key not in every:
            print(f"import_graph: unknown package {wanted!r}; known: {', '.join(every)}", file=sys.stderr)
            return 2
        selected[key] = every[key]

    kinds = [k for k in KINDS if not (args.runtime_only and k == "typing")]
    # Imports between packages (a plugin's on core) are drawn too; only the selected packages are listed.
    modules = build_graph(load_modules(every), kinds)
    shown = {name: m for name, m in modules.items() if m.package in selected}
    found = [c for c in cycles(modules) if any(m in shown for m in c)]

    if args.json:
        json.dump(
            {
                "modules": {n: {t: sorted(k) for t, k in sorted(m.imports.items())} for n, m in sorted(shown.items())},
                "cycles": [{"modules": c, "edges": describe_cycle(modules, c)} for c in found],
            },
            sys.stdout,
            indent=1,
        )
        print()
        return 1 if found else 0

    if not args.cycles:
        for package in selected:
            members = [m for m in shown.values() if m.package == package]
            print(f"== {package}: {len(members)} modules, "
                  f"{sum(len(m.imports) for m in members)} first-party imports")
            for module in sorted(members, key=lambda m: m.name):
                targets = sorted(module.imports)
                print(f"{module.name}" + (f" -> {', '.join(targets)}" if targets else ""))
            print()
    if not found:
        print(f"No import cycles in {', '.join(selected)}.")
        return 0
    print(f"{len(found)} import cycle(s):")
    for number, component in enumerate(found, 1):
        print(f"{number}. {' <-> '.join(component)}")
        for line in describe_cycle(modules, component):
            print(f"     {line}")
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # piped into head: the reader has what it wanted
        sys.stderr.close()
        sys.exit(1)
