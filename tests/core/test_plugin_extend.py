"""Plugins extend core through their records (issue 14): typed job parameters, a resource's default
root directory, secret parameters that come back from the environment, and names declared once.

A toy plugin, written to a temporary module and registered the way an
installed distribution is, declares each of these; jobs really run through
it on this machine.
"""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from reproman import api
from reproman.errors import BackendParameterError, PluginError, UsageError
from reproman.plugins import Parameter, ResourceType, SubmitterType, TracerType, hookimpl
from reproman.plugins.manager import PluginManager, get_plugin_manager
from reproman.resources.inventory import inventory_path
from reproman.resources.manage import get_resource
from reproman.testing.cli import run_cli

TOY = '''
from reproman.jobs.local import LocalSubmitter
from reproman.resources.shell import ShellResource
from reproman.tracing.vcs import GitTracer


class NiceSubmitter(LocalSubmitter):
    """The local submitter, remembering the job parameters it was handed."""

    name = ""  # given by the record when core loads the class
    seen = []

    def submission_script(self, job):
        type(self).seen.append(dict(job.parameters))
        return super().submission_script(job)


class MisnamedSubmitter(LocalSubmitter):
    name = "something-else"


class RootedResource(ShellResource):
    """This machine, with jobs under a root of the backend's choosing."""

    type = ""
    root = "/nonexistent"

    def default_root_directory(self):
        return type(self).root


class TokenResource(ShellResource):
    type = ""


class OtherGit(GitTracer):
    """A subclass registered under a name of its own."""
'''


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The toy implementation module, importable as ``reproman_toy``."""
    site = tmp_path / "toy-site"
    site.mkdir()
    (site / "reproman_toy.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("reproman_toy", None)
    import reproman_toy

    yield reproman_toy
    sys.modules.pop("reproman_toy", None)


NICE = SubmitterType(
    name="nicesub", description="local, with a niceness", factory="reproman_toy:NiceSubmitter",
    job_parameters=("num_processes", Parameter(name="nice", type="int", minimum=0, doc="Scheduling niceness")),
)


def _register(**hooks: list[object]) -> None:
    module = types.ModuleType("toy_hooks")
    for hook_name, records in hooks.items():
        setattr(module, hook_name, hookimpl(lambda records=records: list(records)))  # type: ignore[misc]
    get_plugin_manager().register(module, name="toy", distribution="reproman-toy", version="0.1")


# -- typed job parameters ----------------------------------------------------------------


def test_a_submitters_own_parameter_arrives_converted(toy: types.ModuleType, workdir: Path) -> None:
    _register(reproman_submitters=[NICE])
    toy.NiceSubmitter.seen.clear()
    result = api.run(command="echo ok > out", outputs=["out"], submitter="nicesub",
                     job_parameters=["nice=5"], follow=True)
    assert not isinstance(result, dict) and result.ok
    assert toy.NiceSubmitter.seen == [{"nice": 5}]
    assert result.job.parameters["nice"] == 5
    assert (workdir / "out").read_text() == "ok\n"


def test_a_submitters_own_parameter_is_validated(toy: types.ModuleType, workdir: Path) -> None:
    _register(reproman_submitters=[NICE])
    with pytest.raises(UsageError, match="job parameter 'nice': expected an integer"):
        api.run(command="true", submitter="nicesub", job_parameters=["nice=very"])
    with pytest.raises(UsageError, match="job parameter 'nice': must be at least 0"):
        api.run(command="true", submitter="nicesub", job_parameters={"nice": -1})
    # Another submitter does not take it.
    with pytest.raises(UsageError, match="unknown job parameter 'nice'"):
        api.run(command="true", job_parameters=["nice=5"])


def test_run_list_shows_a_submitters_own_parameter(toy: types.ModuleType) -> None:
    _register(reproman_submitters=[NICE])
    catalogue = api.run(list_="")
    assert isinstance(catalogue, dict)
    rows = [p for p in catalogue["parameters"] if p["name"] == "nice"]
    assert rows == [{"name": "nice", "type": "int", "doc": "Scheduling niceness", "submitters": ["nicesub"]}]
    nicesub = next(s for s in catalogue["submitters"] if s["name"] == "nicesub")
    assert "nice" in nicesub["job_parameters"] and "num_processes" in nicesub["job_parameters"]
    local = next(s for s in catalogue["submitters"] if s["name"] == "local")
    assert "nice" not in local["job_parameters"]


def test_a_bare_unknown_name_still_works_as_text(toy: types.ModuleType, workdir: Path) -> None:
    """The only way before typed parameters: kept, as an undocumented text parameter."""
    _register(reproman_submitters=[SubmitterType(name="oldsub", description="d", factory="reproman_toy:NiceSubmitter",
                                                 job_parameters=("colour",))])
    toy.NiceSubmitter.seen.clear()
    api.run(command="true", submitter="oldsub", job_parameters=["colour=7"], follow=True)
    assert toy.NiceSubmitter.seen == [{"colour": "7"}]
    catalogue = api.run(list_="parameters")
    assert isinstance(catalogue, dict)
    (row,) = [p for p in catalogue["parameters"] if p["name"] == "colour"]
    assert row["type"] == "str" and row["submitters"] == ["oldsub"] and "without a type" in row["doc"]


def test_redeclaring_a_core_parameter_is_refused(toy: types.ModuleType, workdir: Path) -> None:
    _register(reproman_submitters=[SubmitterType(name="badsub", description="d", factory="reproman_toy:NiceSubmitter",
                                                 job_parameters=(Parameter(name="memory", type="int", doc="MB"),))])
    with pytest.raises(PluginError, match="submitter 'badsub' from reproman-toy 0.1: its job parameter 'memory' "
                                          "redeclares one of core's"):
        api.run(command="true", submitter="badsub")
    problems = {r["name"]: r["error"] for r in get_plugin_manager().check() if r["name"]}
    assert "its job parameter 'memory' redeclares one of core's" in problems["badsub"]


# -- a resource's default root directory -------------------------------------------------


def test_a_resource_type_chooses_where_jobs_live(toy: types.ModuleType, workdir: Path, tmp_path: Path) -> None:
    _register(reproman_resource_types=[ResourceType(name="rooted", description="d",
                                                    factory="reproman_toy:RootedResource")])
    toy.RootedResource.root = str(tmp_path / "scratch")
    api.create("box", "rooted")
    result = api.run(command="echo hi > hi", outputs=["hi"], resref="box", follow=True)
    assert not isinstance(result, dict) and result.ok
    assert result.job.root_directory == str(tmp_path / "scratch")
    assert result.job.job_dir.startswith(str(tmp_path / "scratch") + "/")
    assert (tmp_path / "scratch" / ".reproman" / "jobs" / "box").is_dir()
    # The user's root_directory still wins.
    chosen = tmp_path / "mine"
    result = api.run(command="true", resref="box", job_parameters={"root_directory": str(chosen)})
    assert not isinstance(result, dict) and result.job.root_directory == str(chosen)


def test_the_default_root_is_the_home_directory_one(workdir: Path) -> None:
    result = api.run(command="true", follow=True)
    assert not isinstance(result, dict)
    assert result.job.root_directory == os.path.join(os.environ["HOME"], ".reproman", "run-root")


# -- secret parameters -------------------------------------------------------------------

TOKEN = ResourceType(name="token-box", description="d", factory="reproman_toy:TokenResource",
                     parameters=(Parameter(name="token", doc="API token", secret=True, required=True),
                                 Parameter(name="colour", doc="not secret")))
VARIABLE = "REPROMAN_SECRET_TOKEN_BOX_TOKEN"


@pytest.fixture
def token_type(toy: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResourceType]:
    monkeypatch.delenv(VARIABLE, raising=False)
    _register(reproman_resource_types=[TOKEN])
    yield TOKEN


def test_a_secret_comes_back_from_the_environment_only(token_type: ResourceType, workdir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert token_type.secret_variable("token") == VARIABLE
    box = api.create("box", "token-box", ["token=s3cr3t", "colour=red"])
    assert box.token == "s3cr3t"  # type: ignore[attr-defined]
    text = inventory_path().read_text()
    assert "s3cr3t" not in text and "red" in text
    # A later command: the inventory does not have it, the environment may.
    assert get_resource("box").token is None  # type: ignore[attr-defined]
    monkeypatch.setenv(VARIABLE, "from-env")
    assert get_resource("box").token == "from-env"  # type: ignore[attr-defined]
    assert "from-env" not in inventory_path().read_text()
    # Never configuration: REPROMAN_<SECTION>_<KEY> variables are, these are not.
    from reproman.config import get_config, reset_config

    reset_config()
    assert get_config().section("secret") == {}


def test_create_takes_a_secret_from_the_environment(token_type: ResourceType, workdir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendParameterError, match=f"missing required backend parameter.*token \\(or {VARIABLE} "):
        api.create("box", "token-box")
    monkeypatch.setenv(VARIABLE, "s3cr3t")
    box = api.create("box", "token-box")
    assert box.token == "s3cr3t"  # type: ignore[attr-defined]
    assert "s3cr3t" not in inventory_path().read_text()
    # The command line wins over the environment.
    assert api.create("box2", "token-box", ["token=given"]).token == "given"  # type: ignore[attr-defined]


def test_backend_parameters_name_the_secret_variable(token_type: ResourceType) -> None:
    (token, colour) = api.backend_parameters("token-box")["token-box"]
    assert token["secret_variable"] == VARIABLE and colour["secret_variable"] is None


# -- names declared once, in the record ----------------------------------------------------


def test_names_come_from_the_record(toy: types.ModuleType) -> None:
    _register(reproman_submitters=[NICE],
              reproman_resource_types=[ResourceType(name="rooted", description="d",
                                                    factory="reproman_toy:RootedResource")],
              reproman_tracers=[TracerType(name="othergit", description="d", factory="reproman_toy:OtherGit")])
    manager = get_plugin_manager()
    assert manager.submitter("nicesub").load().name == "nicesub"
    assert manager.resource_type("rooted").load().type == "rooted"
    record = next(t for t in manager.tracers() if t.name == "othergit")
    assert record.spec_name == "othergit"  # defaults to the name
    assert record.load().spec_name == "othergit"
    # The parent keeps its own name.
    assert next(t for t in manager.tracers() if t.name == "git").load().spec_name == "git"


def test_a_class_that_names_itself_otherwise_is_refused(toy: types.ModuleType, workdir: Path) -> None:
    _register(reproman_submitters=[SubmitterType(name="misnamed", description="d",
                                                 factory="reproman_toy:MisnamedSubmitter")])
    with pytest.raises(PluginError, match="submitter 'misnamed' from reproman-toy 0.1: its factory "
                                          "'reproman_toy:MisnamedSubmitter' declares name = 'something-else', "
                                          "but the record says 'misnamed'"):
        api.run(command="true", submitter="misnamed")
    problems = {r["name"]: r["error"] for r in get_plugin_manager().check() if r["name"]}
    assert "declares name = 'something-else'" in problems["misnamed"]


def test_every_installed_component_agrees_with_its_class() -> None:
    rows = PluginManager(strict=True).check()
    assert [r["error"] for r in rows if r["error"]] == []


def test_run_list_command_shows_a_plugins_parameter(tmp_path: Path) -> None:
    """``run --list`` through the real command, with the toy installed as a distribution."""
    site = tmp_path / "site"
    dist = site / "reproman_toy-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reproman-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[reproman]\ntoy = reproman_toy_hooks\n")
    (site / "reproman_toy.py").write_text(TOY)
    (site / "reproman_toy_hooks.py").write_text(
        "from reproman.plugins import Parameter, SubmitterType, hookimpl\n"
        "@hookimpl\n"
        "def reproman_submitters():\n"
        "    return [SubmitterType(name='nicesub', description='d', factory='reproman_toy:NiceSubmitter',\n"
        "                          job_parameters=(Parameter(name='nice', type='int', doc='Scheduling niceness'),))]\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    shown = run_cli(["run", "--list", "parameters"], env=env)
    assert shown.returncode == 0, shown.stderr
    line = next(ln for ln in shown.stdout.splitlines() if ln.strip().startswith("nice "))
    assert "int" in line and "nicesub" in line and "Scheduling niceness" in line
    listed = json.loads(run_cli(["run", "--list", "parameters", "--json"], env=env).stdout)
    assert {"name": "nice", "type": "int", "doc": "Scheduling niceness", "submitters": ["nicesub"]} in listed["parameters"]
