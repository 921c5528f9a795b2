"""``diff`` and ``diff --satisfies`` for every distribution type, through the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.errors import SpecError
from reproman.tracing.diff import diff_specs, generic_compare, generic_satisfies
from reproman.tracing.spec import EnvironmentSpec


def deb(*pkgs: tuple[str, str]) -> dict[str, Any]:
    return {"name": "debian", "packages": [{"name": n, "version": v, "architecture": "amd64"} for n, v in pkgs]}


def write(path: Path, *entries: dict[str, Any], files: tuple[str, ...] = ()) -> str:
    EnvironmentSpec(distributions=list(entries), files=list(files)).write(path)
    return str(path)


@pytest.fixture
def specs(tmp_path: Path) -> dict[str, str]:
    """An original environment, a rebuilt one with newer packages, and one missing things."""
    docker = {"name": "docker", "images": [{"id": "sha256:aaa", "repo_tags": ["busybox:latest"]}]}
    rpm: dict[str, Any] = {"name": "redhat", "packages": [{"name": "bash", "version": "5.1", "release": "2", "architecture": "x86_64"}]}
    return {
        "orig": write(tmp_path / "orig.yml", deb(("bash", "5.2-1"), ("libc6", "2.36-9")), docker, rpm,
                      files=("/data/in.csv",)),
        "same": write(tmp_path / "same.yml", deb(("bash", "5.2-1"), ("libc6", "2.36-9")), docker, rpm,
                      files=("/data/in.csv",)),
        "newer": write(tmp_path / "newer.yml", deb(("bash", "5.2-3"), ("libc6", "2.36-9+deb12u1"), ("vim", "9.0")),
                       docker, {**rpm, "packages": [{**rpm["packages"][0], "release": "7"}]},
                       {"name": "debian", "packages": [{"name": "extra", "version": "1", "files": ["/data/in.csv"]}]}),
        "older": write(tmp_path / "older.yml", deb(("bash", "5.1-1")), files=("/other",)),
    }


def test_equal_specs(specs: dict[str, str]) -> None:
    report = api.diff(specs["orig"], specs["same"])
    assert report.equal and report.render() == ""
    assert api.diff(specs["orig"], specs["same"], satisfies=True).equal


def test_diff_reports_every_type(specs: dict[str, str]) -> None:
    report = api.diff(specs["orig"], specs["newer"])
    assert not report.equal
    by_type = {c.name: c for c in report.comparisons}
    assert set(by_type) == {"debian", "docker", "redhat"}
    assert by_type["docker"].equal
    assert {d.key for d in by_type["debian"].differences} == {"bash:amd64", "libc6:amd64", "vim:amd64", "extra"}
    assert [(d.left, d.right) for d in by_type["redhat"].differences] == [("5.1-2", "5.1-7")]
    assert report.left_only == ["/data/in.csv"] and report.right_only == []
    text = report.render()
    assert "Debian package bash:amd64:\n< 5.2-1\n---\n> 5.2-3\n" in text
    assert "Debian packages:\n> extra 1\n> vim:amd64 9.0\n" in text
    assert "Files:\n< /data/in.csv\n" in text


def test_satisfies_follows_the_old_tool(specs: dict[str, str]) -> None:
    """``diff --satisfies A B``: does environment A satisfy the needs of environment B?"""
    report = api.diff(specs["newer"], specs["orig"], satisfies=True)
    assert report.equal, report.render()  # newer versions satisfy; the file is in a package of A
    report = api.diff(specs["older"], specs["orig"], satisfies=True)
    assert not report.equal
    unsatisfied = {c.name: [(d.key, d.detail) for d in c.differences] for c in report.comparisons if not c.equal}
    assert unsatisfied == {
        "debian": [("bash:amd64", "have 5.1-1, older"), ("libc6:amd64", "not installed")],
        "docker": [("busybox:latest", "image missing")],
        "redhat": [("bash.x86_64", "not installed")],
    }
    assert report.right_only == ["/data/in.csv"]
    assert "> bash:amd64 5.2-1 (have 5.1-1, older)" in report.render()


def test_generic_fallback_for_types_without_their_own() -> None:
    left = EnvironmentSpec(distributions=[
        {"name": "singularity", "images": [{"id": "img1", "version": "1"}]},
        {"name": "neurodebian", "packages": [{"name": "afni", "version": "16.2", "architecture": "amd64"}]},
    ])
    right = EnvironmentSpec(distributions=[
        {"name": "singularity", "images": [{"id": "img1", "version": "2"}]},
        {"name": "neurodebian", "packages": [{"name": "afni", "version": "16.3", "architecture": "amd64"}]},
    ])
    report = diff_specs(left, right)
    assert {c.name: [(d.left, d.right) for d in c.differences] for c in report.comparisons} == {
        "singularity": [("1", "2")], "neurodebian": [("16.2", "16.3")]}
    # neurodebian is compared with Debian version order: 16.3 satisfies 16.2.
    sat = diff_specs(right, left, satisfies=True)
    assert {c.name: c.equal for c in sat.comparisons} == {"singularity": False, "neurodebian": True}


def test_generic_helpers_keys() -> None:
    git_left = {"name": "x", "packages": [{"path": "/src/a", "hexsha": "1"}, {"path": "/src/b", "hexsha": "2"}]}
    git_right = {"name": "x", "packages": [{"path": "/src/a", "hexsha": "1"}, {"path": "/src/b", "hexsha": "3"}]}
    comp = generic_compare("x", git_left, git_right)
    assert [(d.key, d.left, d.right) for d in comp.differences] == [("/src/b", "2", "3")]
    assert not generic_satisfies("x", git_right, git_left).equal
    assert generic_satisfies("x", {"packages": [{"path": "/src/a"}]}, git_left).equal is False  # value differs
    assert generic_satisfies("x", git_left, git_left).equal


def test_every_registered_type_can_be_diffed() -> None:
    """Each tracer type's entries go through diff and --satisfies without error.

    Entries here have the package layout of debian/redhat/docker; other types
    (conda environments, venvs...) are only required not to fail on them.
    """
    from reproman.plugins.manager import get_plugin_manager

    for record in get_plugin_manager().tracers():
        name = record.spec_name or record.name
        entry = {"name": name, "packages": [{"name": "p", "version": "1"}], "images": [{"id": "i"}]}
        left = EnvironmentSpec(distributions=[entry])
        right = EnvironmentSpec(distributions=[{"name": name}])
        assert diff_specs(left, left).equal, name
        assert diff_specs(left, left, satisfies=True).equal, name
        diff_specs(left, right)
        diff_specs(right, left, satisfies=True)
        if name in ("debian", "redhat", "docker"):
            assert not diff_specs(left, right).equal, name
            assert diff_specs(left, right, satisfies=True).equal, name
            assert not diff_specs(right, left, satisfies=True).equal, name


def test_bad_spec_is_an_error(tmp_path: Path, specs: dict[str, str]) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 0.0.1\ndistributions: [\n")
    with pytest.raises(SpecError, match=f"{bad}:3"):
        api.diff(specs["orig"], str(bad))


# -- CLI exit codes ---------------------------------------------------------------
def reproman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], capture_output=True, text=True)


def test_cli_exit_codes(specs: dict[str, str], tmp_path: Path) -> None:
    same = reproman("diff", specs["orig"], specs["same"])
    assert (same.returncode, same.stdout) == (0, "")
    different = reproman("diff", specs["orig"], specs["newer"])
    assert different.returncode == 3 and "< 5.2-1" in different.stdout
    assert reproman("diff", "--satisfies", specs["newer"], specs["orig"]).returncode == 0
    unsatisfied = reproman("diff", "-s", specs["older"], specs["orig"])
    assert unsatisfied.returncode == 3 and "not installed" in unsatisfied.stdout
    missing = reproman("diff", specs["orig"], str(tmp_path / "nope.yml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr and missing.stdout == ""


def test_cli_json(specs: dict[str, str]) -> None:
    run = reproman("diff", "--json", specs["orig"], specs["older"])
    assert run.returncode == 3
    data = json.loads(run.stdout)
    assert data["method"] == "diff" and data["equal"] is False
    debian = next(d for d in data["distributions"] if d["name"] == "debian")
    assert {"key": "bash:amd64", "left": "5.2-1", "right": "5.1-1"} in debian["packages"]
    assert data["files"] == {"left_only": ["/data/in.csv"], "right_only": ["/other"]}
    equal = json.loads(reproman("diff", "--json", specs["orig"], specs["same"]).stdout)
    assert equal["equal"] is True and equal["distributions"] == []
