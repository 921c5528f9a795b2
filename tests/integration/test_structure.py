"""The shape of the code base (issue 14): no import cycles, plugins on the plugin API, one logging namespace.

These read the sources of every distribution in the repository (with
:mod:`ast`, as ``tools/import_graph.py`` does), so they see imports inside
functions and under ``if TYPE_CHECKING:`` too, and run where every package
is installed.
"""

from __future__ import annotations

import ast
import importlib
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "import_graph.py"
PLUGIN_PACKAGES = {
    "reproman_backend_ssh": ROOT / "reproman-backend-ssh" / "src" / "reproman_backend_ssh",
    "reproman_backend_docker": ROOT / "reproman-backend-docker" / "src" / "reproman_backend_docker",
    "reproman_backend_aws": ROOT / "reproman-backend-aws" / "src" / "reproman_backend_aws",
    "reproman_submitters": ROOT / "reproman-submitters" / "src" / "reproman_submitters",
    "reproman_orchestrators_datalad": ROOT / "reproman-orchestrators-datalad" / "src" / "reproman_orchestrators_datalad",
}
ALL_PACKAGES = {"reproman": ROOT / "reproman-core" / "src" / "reproman", **PLUGIN_PACKAGES}

#: Cycles tolerated for a while (the test fails once one is gone, so that its entry goes too). None today.
KNOWN_CYCLES: list[list[str]] = []


def _graph(*args: str, root: Path = ROOT) -> tuple[int, dict[str, object]]:
    done = subprocess.run([sys.executable, str(TOOL), "--json", "--root", str(root), *args],
                          capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_no_package_has_an_import_cycle() -> None:
    code, graph = _graph()
    cycles = [c["modules"] for c in graph["cycles"]]  # type: ignore[index]
    unexpected = [c for c in cycles if c not in KNOWN_CYCLES]
    assert unexpected == [], "\n".join(" <-> ".join(c) for c in unexpected)
    assert [c for c in KNOWN_CYCLES if c not in cycles] == [], "a known cycle is gone: remove it from KNOWN_CYCLES"


def test_nothing_imports_the_api_back() -> None:
    """``reproman.api`` is the front: only the CLI calls it, command modules never do."""
    _, graph = _graph("reproman")
    users = [name for name, imports in graph["modules"].items()  # type: ignore[union-attr]
             if "reproman.api" in imports and not name.startswith("reproman.cli")]
    assert users == []


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "pkg-a" / "src" / "pkga" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_tool_sees_cycles_made_of_lazy_and_typing_imports(tmp_path: Path) -> None:
    _package(tmp_path, {
        "__init__.py": "",
        "front.py": "from pkga import back\n",
        "back.py": "def later():\n    from pkga.front import x\n",
        "types_a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkga.types_b import B\n",
        "types_b.py": "from . import types_a\n",
        "alone.py": "import pkga.front\n",
    })
    code, graph = _graph(root=tmp_path)
    assert code == 1
    assert [c["modules"] for c in graph["cycles"]] == [  # type: ignore[index]
        ["pkga.back", "pkga.front"], ["pkga.types_a", "pkga.types_b"]]
    edges = [e for c in graph["cycles"] for e in c["edges"]]  # type: ignore[index]
    assert "pkga.back -> pkga.front (function)" in edges and "pkga.types_a -> pkga.types_b (typing)" in edges
    shown = subprocess.run([sys.executable, str(TOOL), "--root", str(tmp_path)], capture_output=True, text=True)
    assert shown.returncode == 1 and "2 import cycle(s):" in shown.stdout
    assert "pkga.alone -> pkga.front" in shown.stdout


def test_the_tool_passes_a_package_without_cycles(tmp_path: Path) -> None:
    _package(tmp_path, {"__init__.py": "", "a.py": "from pkga import b\n", "b.py": "import os\n"})
    shown = subprocess.run([sys.executable, str(TOOL), "--cycles", "--root", str(tmp_path)],
                           capture_output=True, text=True)
    assert shown.returncode == 0 and "No import cycles in pkga." in shown.stdout


# -- plugins import core through reproman.plugins only ------------------------------------------


def _modules(directory: Path) -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(directory.rglob("*.py")):
        parts = path.relative_to(directory.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_bytes(), filename=str(path))


def _imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module an import statement names, wherever the statement is."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def test_plugin_packages_import_core_only_through_the_plugin_api() -> None:
    """``reproman.plugins`` for everything; ``reproman.testing`` too in a package's own ``testing`` module."""
    offending = []
    for directory in PLUGIN_PACKAGES.values():
        for name, path, tree in _modules(directory):
            testing = name.split(".")[-1] == "testing"
            for line, module in _imported(tree):
                if module != "reproman" and not module.startswith("reproman."):
                    continue
                if module == "reproman.plugins" or (testing and (module == "reproman.testing"
                                                                 or module.startswith("reproman.testing."))):
                    continue
                offending.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert offending == []


def test_the_plugin_api_check_catches_an_internal_import(tmp_path: Path) -> None:
    """The check above is not vacuous: it flags what plugins used to do."""
    tree = ast.parse("def f():\n    from reproman.jobs.status import JobStatus\nfrom reproman.plugins import Session\n")
    assert [m for _, m in _imported(tree) if m != "reproman.plugins"] == ["reproman.jobs.status"]


# -- one logging namespace -------------------------------------------------------------------------


def _logger_calls(tree: ast.AST) -> Iterator[tuple[int, ast.expr | None]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "getLogger")
            or (isinstance(node.func, ast.Name) and node.func.id == "getLogger")
        ):
            yield node.lineno, node.args[0] if node.args else None


def test_every_package_logs_under_the_reproman_logger() -> None:
    """The CLI configures ``reproman`` (``-l debug``): a logger outside it is never shown.

    A package's loggers are ``reproman`` or below it; core's ``__name__`` is
    (its modules are ``reproman.*``), a plugin's is not (``reproman_submitters.slurm``).
    Another library's logger may be named to configure it (``paramiko``).
    """
    wrong = []
    for package, directory in ALL_PACKAGES.items():
        for _, path, tree in _modules(directory):
            for line, arg in _logger_calls(tree):
                where = f"{path.relative_to(ROOT)}:{line}"
                if isinstance(arg, ast.Name) and arg.id == "__name__":
                    if package != "reproman":
                        wrong.append(f"{where}: getLogger(__name__) names {package}.*")
                elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    name = arg.value
                    ours = name.split(".")[0] in ALL_PACKAGES
                    if ours and name != "reproman" and not name.startswith("reproman."):
                        wrong.append(f"{where}: {name!r}")
                else:
                    wrong.append(f"{where}: a logger name that is not a literal cannot be checked")
    assert wrong == []


def test_loggers_created_at_import_are_all_under_reproman() -> None:
    """Every plugin module imported: no logger outside ``reproman`` appears for our packages."""
    for directory in PLUGIN_PACKAGES.values():
        for name, _, _ in _modules(directory):
            importlib.import_module(name)
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in PLUGIN_PACKAGES]
    assert names == []
    module_loggers = [
        (module.__name__, value.name)
        for module in list(sys.modules.values())
        if module is not None and getattr(module, "__name__", "").split(".")[0] in ALL_PACKAGES
        for value in vars(module).values()
        if isinstance(value, logging.Logger)
    ]
    assert module_loggers and all(name == "reproman" or name.startswith("reproman.") for _, name in module_loggers), \
        module_loggers


def test_a_plugin_message_reaches_the_cli_handler(caplog: pytest.LogCaptureFixture) -> None:
    """What a submitter logs is seen by a handler on ``reproman`` (the one the CLI installs)."""
    from reproman_submitters import common

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.name)

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("reproman")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        common.lgr.debug("probe")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert seen == ["reproman.submitters.common"]
