"""The curated, typed plugin API (``reproman.plugins``) and the typed front of ``reproman.api`` (issue 14).

Plugins import everything from ``reproman.plugins``: the names must all
resolve, carry documentation, cost nothing until used, and be the objects
core itself uses. ``reproman.api`` returns documented types, importable from
it, and its functions forward to command modules without drifting from them.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import reproman.api as api
import reproman.plugins as plugins

FACADE = Path(plugins.__file__)


def _type_checking_imports() -> dict[str, str]:
    """What the ``if TYPE_CHECKING:`` block of ``reproman.plugins`` tells type checkers: name -> module:attr."""
    tree = ast.parse(FACADE.read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    found = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names:
            found[alias.asname or alias.name] = f"{node.module}:{alias.name}"
    return found


def test_every_exported_name_resolves_to_cores_own_object() -> None:
    exported = plugins._EXPORTS  # type: ignore[attr-defined]
    assert set(plugins.__all__) == {"hookimpl", "hookspec", *exported}
    for name, target in exported.items():
        module, _, attribute = target.partition(":")
        __import__(module)
        assert getattr(plugins, name) is getattr(sys.modules[module], attribute), name


def test_type_checkers_see_exactly_what_runs() -> None:
    """The ``TYPE_CHECKING`` imports (for mypy) and the lazy table (at run time) name the same objects."""
    assert _type_checking_imports() == plugins._EXPORTS  # type: ignore[attr-defined]


def test_every_exported_name_is_documented() -> None:
    undocumented = []
    for name in plugins.__all__:
        value = getattr(plugins, name)
        if isinstance(value, (str, int, float, frozenset, tuple)) or typing.get_origin(value) is not None:
            continue  # constants and type aliases: documented in the module docstring
        if not (inspect.getdoc(value) or "").strip():
            undocumented.append(name)
        if name not in (plugins.__doc__ or ""):
            undocumented.append(f"{name} (not in the module docstring)")
    assert undocumented == []


def test_constants_are_named_in_the_module_docstring() -> None:
    doc = plugins.__doc__ or ""
    for name in plugins.__all__:
        assert name in doc or name in ("hookspec",), name


def test_import_is_light() -> None:
    """A plugin's hooks module importing ``reproman.plugins`` loads no job, resource or tracing code."""
    code = ("import sys, reproman.plugins; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('reproman', 'attr', 'yaml', 'rich')))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == ["reproman", "reproman.plugins", "reproman.plugins.markers"]
    code = ("import sys; from reproman.plugins import ResourceType, Parameter, hookimpl; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('reproman'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == ["reproman", "reproman.plugins", "reproman.plugins.markers", "reproman.plugins.records"]


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        plugins.Nope  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImportError):
        from reproman.plugins import Nope  # type: ignore[attr-defined]  # noqa: F401


def test_job_is_a_jobspec_in_every_contract() -> None:
    """``job`` was ``Any`` in the submitter and orchestrator contracts; it is a JobSpec everywhere."""
    checked = 0
    for cls in (plugins.Submitter, plugins.Orchestrator):
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            for arg in ("job", "jobs"):
                annotation = member.__annotations__.get(arg)
                if annotation is not None:
                    checked += 1
                    assert "JobSpec" in annotation, (cls.__name__, name, annotation)
    assert checked >= 6


# -- reproman.api -----------------------------------------------------------------------------

#: Each API function and the command module function it forwards to.
FORWARDS = {
    "backend_parameters": "reproman.resources.commands:backend_parameters",
    "create": "reproman.resources.commands:create",
    "delete": "reproman.resources.commands:delete",
    "start": "reproman.resources.commands:start",
    "stop": "reproman.resources.commands:stop",
    "login": "reproman.resources.commands:login",
    "execute": "reproman.resources.commands:execute",
    "ls": "reproman.resources.commands:ls",
    "run": "reproman.jobs.commands:run",
    "jobs": "reproman.jobs.commands:jobs",
    "rerun": "reproman.jobs.rerun:rerun",
    "retrace": "reproman.tracing.commands:retrace",
    "diff": "reproman.tracing.commands:diff",
    "install": "reproman.tracing.install:install",
}


def _target(path: str) -> typing.Callable[..., object]:
    module, _, name = path.partition(":")
    __import__(module)
    return getattr(sys.modules[module], name)  # type: ignore[no-any-return]


def test_the_api_and_its_command_modules_do_not_drift() -> None:
    """Every API parameter exists in the command function, with the same default."""
    assert set(FORWARDS) == set(api.__all__) - {"plugins"}
    for name, target in FORWARDS.items():
        front = inspect.signature(getattr(api, name)).parameters
        back = inspect.signature(_target(target)).parameters
        for param in front.values():
            assert param.name in back, (name, param.name)
            other = back[param.name]
            if param.default is not inspect.Parameter.empty and other.default is not inspect.Parameter.empty:
                assert param.default == other.default or (param.default is None and other.default == ()), (
                    name, param.name, param.default, other.default)


def test_api_functions_return_documented_exported_types() -> None:
    namespace = {name: getattr(api, name) for name in api._TYPES}  # type: ignore[attr-defined]
    namespace.update(Any=typing.Any, Callable=typing.Callable)
    for name in api.__all__:
        func = getattr(api, name)
        returned = inspect.signature(func).return_annotation
        assert isinstance(returned, str) and "Any" not in returned.replace("dict[str, Any]", ""), (name, returned)
        typing.get_type_hints(func, globalns={**vars(api), **namespace})  # every name resolves
        assert (func.__doc__ or "").strip(), name


def test_result_types_are_importable_from_the_api() -> None:
    from reproman.api import EnvironmentSpec, JobDiff, RerunResult, RunResult  # noqa: F401
    from reproman.jobs.commands import RunResult as Original

    assert api.RunResult is Original
    with pytest.raises(AttributeError):
        api.NotAType  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_api_imports_no_command_module() -> None:
    code = "import sys, reproman.api; print(' '.join(sorted(m for m in sys.modules if m.startswith('reproman'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == ["reproman", "reproman.api"]
