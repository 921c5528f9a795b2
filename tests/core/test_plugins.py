"""The plugin system: discovery through entry points, errors, and a real third-party plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from reproman.errors import DuplicateComponentError, PluginError, UnknownComponentError
from reproman.plugins import hookimpl, hookspecs
from reproman.plugins.manager import PluginManager
from reproman.plugins.records import Parameter, ResourceType, SubmitterType
from reproman.testing.cli import run_cli


def _module(name: str, **hooks: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, records in hooks.items():
        setattr(module, hook_name, hookimpl(lambda records=records: list(records)))  # type: ignore[misc]
    return module


def test_builtins_register_through_hooks() -> None:
    manager = PluginManager(strict=True)
    assert manager.resource_type("shell").distribution == "reproman-core"
    assert manager.submitter("local").factory == "reproman.jobs.local:LocalSubmitter"
    assert manager.orchestrator("plain").name == "plain"
    rows = {r["plugin"]: r for r in manager.describe()}
    assert rows["builtin"]["components"]["resource type"] == ["shell"]


def test_every_hookspec_is_documented_with_an_example() -> None:
    specs = [n for n in dir(hookspecs.ReproManHookSpecs) if n.startswith("reproman_")]
    assert {"reproman_resource_types", "reproman_session_types", "reproman_submitters",
            "reproman_orchestrators", "reproman_tracers"} <= set(specs)
    for name in specs:
        doc = getattr(hookspecs.ReproManHookSpecs, name).__doc__ or ""
        assert "Called" in doc and "Example" in doc and "return" in doc.lower(), name


def test_duplicate_component_names_both_distributions() -> None:
    manager = PluginManager(strict=True)
    clash = ResourceType(name="shell", description="clash", factory="x:Y")
    manager.register(_module("clash", reproman_resource_types=[clash]), name="clash",
                     distribution="reproman-clash", version="9.9")
    with pytest.raises(DuplicateComponentError) as info:
        manager.resource_type("shell")
    message = str(info.value)
    assert "reproman-core" in message and "reproman-clash 9.9" in message


def test_unknown_component_names_available_and_provider() -> None:
    manager = PluginManager(strict=True, disabled=["backend-docker"])
    with pytest.raises(UnknownComponentError) as info:
        manager.resource_type("docker-container")
    assert "Available:" in str(info.value) and "shell" in str(info.value)
    assert "Install reproman-backend-docker" in str(info.value)
    with pytest.raises(UnknownComponentError, match="Did you mean 'local'"):
        manager.submitter("locale")


def test_wrong_record_type_is_a_plugin_error() -> None:
    manager = PluginManager(strict=True)
    wrong = SubmitterType(name="odd", description="d", factory="x:Y")
    manager.register(_module("odd", reproman_resource_types=[wrong]), name="odd", distribution="odd", version="1")
    with pytest.raises(PluginError, match="returned a SubmitterType; it must return ResourceType records"):
        manager.components("resource type")


# -- a real third-party distribution, installed into a temporary path ----------

PLUGIN_PYPROJECT = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "reproman-toy"
version = "1.2.3"
dependencies = []

[project.entry-points.reproman]
toy = "reproman_toy.hooks"

[tool.hatch.build.targets.wheel]
packages = ["reproman_toy"]
"""

PLUGIN_HOOKS = '''
from reproman.plugins import hookimpl
from reproman.plugins.records import Parameter, ResourceType

@hookimpl
def reproman_resource_types():
    return [ResourceType(
        name="toy",
        description="A shell resource with a required size, from a third party",
        factory="reproman_toy.resource:ToyResource",
        parameters=(
            Parameter(name="size", doc="How big the toy is", type="int", required=True),
            Parameter(name="colour", doc="Its colour", default="red", choices=("red", "blue")),
            Parameter(name="token", doc="A secret that must never be stored", secret=True),
        ),
    )]
'''

PLUGIN_RESOURCE = '''
from reproman.resources.shell import ShellResource

class ToyResource(ShellResource):
    type = "toy"

    def create(self):
        attributes = super().create()
        attributes["id"] = "toy-" + str(self.size)
        return attributes
'''


@pytest.fixture(scope="module")
def toy_plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the toy distribution as a wheel and install it into its own path."""
    src = tmp_path_factory.mktemp("toy-src")
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "reproman_toy").mkdir()
    (src / "reproman_toy" / "__init__.py").write_text("")
    (src / "reproman_toy" / "hooks.py").write_text(PLUGIN_HOOKS)
    (src / "reproman_toy" / "resource.py").write_text(PLUGIN_RESOURCE)
    target = tmp_path_factory.mktemp("toy-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(src)],
        check=True, capture_output=True, text=True,
    )
    assert list(target.glob("reproman_toy-1.2.3.dist-info"))
    return target


def _with(path: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}


def test_third_party_plugin_appears_everywhere(toy_plugin_path: Path) -> None:
    env = _with(toy_plugin_path)
    listing = run_cli(["plugins", "--json"], env=env)
    assert listing.returncode == 0, listing.stderr
    toy = next(r for r in json.loads(listing.stdout) if r["plugin"] == "toy")
    assert (toy["distribution"], toy["version"]) == ("reproman-toy", "1.2.3")
    assert toy["components"] == {"resource type": ["toy"]}

    params = run_cli(["backend-parameters", "toy"], env=env)
    assert params.returncode == 0, params.stderr
    assert "size (int, required)" in params.stdout and "colour (str, default: red, one of red|blue)" in params.stdout

    missing = run_cli(["create", "t1", "-t", "toy"], env=env)
    assert missing.returncode == 2 and "missing required backend parameter" in missing.stderr
    assert "Traceback" not in missing.stderr
    typo = run_cli(["create", "t1", "-t", "toy", "-b", "sise=3"], env=env)
    assert typo.returncode == 2 and "Did you mean 'size'?" in typo.stderr
    bad_type = run_cli(["create", "t1", "-t", "toy", "-b", "size=big"], env=env)
    assert bad_type.returncode == 2 and "size" in bad_type.stderr

    created = run_cli(["create", "t1", "-t", "toy", "-b", "size=3", "-b", "token=s3cret", "--json"], env=env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["id"] == "toy-3"
    from reproman.resources.inventory import inventory_path

    stored = inventory_path().read_text()
    from reproman.resources.inventory import Inventory

    record = Inventory().load()["t1"]
    assert "s3cret" not in stored and record["size"] == 3 and record["colour"] == "red"
    ran = run_cli(["execute", "-r", "t1", "sh", "-c", "exit 4"], env=env)
    assert ran.returncode == 4


def test_broken_plugin_is_skipped_or_fatal(tmp_path: Path, toy_plugin_path: Path) -> None:
    broken = tmp_path / "site"
    broken.mkdir()
    dist = broken / "reproman_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reproman-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[reproman]\nbroken = reproman_broken_hooks\n")
    (broken / "reproman_broken_hooks.py").write_text("raise ImportError('needs a library that is not installed')\n")
    env = _with(broken)
    lenient = run_cli(["plugins"], env={**env, "REPROMAN_PLUGINS_STRICT": "0"})
    assert lenient.returncode == 0
    assert "reproman-broken" in lenient.stdout and "FAILED" in lenient.stdout
    assert "plugin 'broken' from reproman-broken 0.1 failed to load" in lenient.stderr
    strict = run_cli(["plugins"], env={**env, "REPROMAN_PLUGINS_STRICT": "1"})
    assert strict.returncode == 1 and "needs a library" in strict.stderr and "Traceback" not in strict.stderr
    disabled = run_cli(["plugins"], env={**env, "REPROMAN_PLUGINS_STRICT": "1", "REPROMAN_PLUGINS_DISABLE": "broken"})
    assert disabled.returncode == 0 and "reproman-broken" not in disabled.stdout


def test_parameter_conversion() -> None:
    assert Parameter(name="n", doc="", type="int").convert("5") == 5
    assert Parameter(name="b", doc="", type="bool").convert("yes") is True
    assert Parameter(name="l", doc="", type="list").convert("a, b") == ["a", "b"]
    assert Parameter(name="l", doc="", type="list").convert(r"--gres=gpu:1\,mps:10,--x") == ["--gres=gpu:1,mps:10", "--x"]
    assert Parameter(name="l", doc="", type="list").convert(["from yaml, kept"]) == ["from yaml, kept"]
    with pytest.raises(ValueError):
        Parameter(name="c", doc="", choices=("x",)).convert("y")


def test_plugin_listing_does_not_import_heavy_sdks() -> None:
    code = textwrap.dedent(
        """
        import sys
        from reproman import api
        api.plugins(); api.backend_parameters()
        heavy = [m for m in ("docker", "boto3", "botocore", "fabric", "paramiko", "datalad") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
