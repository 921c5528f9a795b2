"""Meta-tests over the monorepo: every distribution is complete and discoverable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from reproman import __version__
from reproman.testing.cli import run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p for p in ROOT.glob("reproman-*") if (p / "pyproject.toml").exists())


def test_every_folder_is_a_package() -> None:
    names = {p.name for p in PACKAGES}
    assert names == {"reproman-core", "reproman-backend-docker", "reproman-backend-ssh", "reproman-backend-aws",
                     "reproman-submitters", "reproman-orchestrators-datalad"}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_metadata(package: Path) -> None:
    meta = tomllib.loads((package / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == package.name
    assert project["version"] == __version__, "versions are kept in lockstep with core"
    assert (package / "README.md").read_text().strip()
    module = "reproman" if package.name == "reproman-core" else package.name.replace("-", "_")
    assert (package / "src" / module / "py.typed").exists()
    entry_points = project["entry-points"]["reproman"]
    assert entry_points, "a plugin is found only through the 'reproman' entry-point group"
    for target in entry_points.values():
        assert (package / "src" / Path(*target.split("."))).with_suffix(".py").exists(), target
    if package.name != "reproman-core":
        assert f"reproman-core=={__version__}" in project["dependencies"]
    tests = ROOT / "tests" / ("core" if package.name == "reproman-core" else package.name[len("reproman-"):].replace("-", "_"))
    assert any(tests.glob("test_*.py")), f"{package.name} has no tests in {tests}"


def test_all_installed_distributions_are_discovered_with_components() -> None:
    result = run_cli(["plugins", "--json"])
    assert result.returncode == 0, result.stderr
    rows = {r["distribution"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {p.name for p in PACKAGES}
    assert all(r["components"] and r["error"] is None for r in rows.values())
    assert rows["reproman-submitters"]["components"]["submitter"] == ["condor", "lsf", "pbs", "sge", "slurm"]
