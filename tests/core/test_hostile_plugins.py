"""A plugin whose record names a missing class (issue 13, case 7): plugins --check and create say so in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hostile_helpers import assert_one_line_error

from reproman.testing.cli import run_cli

HOOKS = '''
from reproman.plugins import hookimpl
from reproman.plugins.records import Parameter, ResourceType, SubmitterType

@hookimpl
def reproman_resource_types():
    return [
        ResourceType(name="typo", description="factory with a typo",
                     factory="reproman.resources.shell:ShellResourse"),
        ResourceType(name="nomodule", description="factory in a module that is not there",
                     factory="reproman_not_installed.resource:Thing"),
        ResourceType(name="notaresource", description="factory that is not a Resource",
                     factory="reproman.jobs.local:LocalSubmitter"),
        ResourceType(name="badparam", description="a parameter of an unknown type",
                     factory="reproman.resources.shell:ShellResource",
                     parameters=(Parameter(name="n", doc="", type="integer"),)),
    ]

@hookimpl
def reproman_submitters():
    return [SubmitterType(name="oddsub", description="unknown job parameter",
                          factory="reproman.jobs.local:LocalSubmitter", job_parameters=("colour",))]
'''


def _plugin(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    dist = site / "reproman_typo-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reproman-typo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[reproman]\ntypo = reproman_typo_hooks\n")
    (site / "reproman_typo_hooks.py").write_text(HOOKS)
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_check_reports_each_broken_component_in_one_line(tmp_path: Path) -> None:
    env = _plugin(tmp_path)
    result = run_cli(["plugins", "--check"], env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 5, lines
    assert all(line.startswith("reproman: error: ") and "reproman-typo 0.1" in line for line in lines)
    joined = "\n".join(lines)
    assert "resource type 'typo' from reproman-typo 0.1: cannot import its factory " \
           "'reproman.resources.shell:ShellResourse': AttributeError" in joined
    assert "'nomodule'" in joined and "ModuleNotFoundError" in joined
    assert "'notaresource'" in joined and "is not a subclass of reproman.resources.base:Resource" in joined
    assert "parameter 'n' has unknown type 'integer'" in joined
    assert "submitter 'oddsub'" in joined and "'colour' are not known to core" in joined
    assert "5 problems" in result.stdout

    rows = json.loads(run_cli(["plugins", "--check", "--json"], env=env).stdout)
    assert {r["name"] for r in rows if r["error"]} == {"typo", "nomodule", "notaresource", "badparam", "oddsub"}
    assert any(r["name"] == "shell" and r["error"] is None for r in rows)


def test_create_with_a_broken_factory_gives_the_same_line(tmp_path: Path) -> None:
    env = _plugin(tmp_path)
    checked = run_cli(["plugins", "--check"], env=env).stderr.splitlines()
    for name in ("typo", "nomodule", "notaresource"):
        line = assert_one_line_error(run_cli(["create", "x", "-t", name], env=env), code=1)
        expected = next(c for c in checked if f"'{name}'" in c)
        assert line.startswith(expected), (line, expected)
        assert "plugins --check" in line


def test_check_passes_on_the_installed_plugins() -> None:
    result = run_cli(["plugins", "--check"])
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "all load" in result.stdout
