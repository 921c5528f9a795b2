"""``install`` end to end on the local shell resource: trace, delete, install, retrace, satisfies.

pip installs from a local wheel directory (``PIP_FIND_LINKS`` + ``PIP_NO_INDEX``,
which the shell session passes on), so the test needs no network. The Debian
installer's real test runs in a Debian container at integration level; its
pure parts (pins, madison parsing, snapshot sources) are checked here.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from test_tracing_git import commit, git
from test_tracing_pip_helpers import make_venv, make_wheel, pip_into

from reproman import api
from reproman.errors import SpecError, TracingError
from reproman.resources.shell import ShellSession
from reproman.tracing.install import (
    debian_pin,
    install_specs,
    parse_madison,
    snapshot_archive,
    snapshot_source_lines,
)
from reproman.tracing.retrace import trace_paths


@pytest.fixture
def offline_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinya", "1.0", {"tinya/__init__.py": "A = 1\n"})
    make_wheel(wheels, "tinyb", "2.0", {"tinyb/__init__.py": "B = 2\n"})
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return wheels


def test_trace_delete_install_retrace_satisfies(tmp_path: Path, offline_pip: Path) -> None:
    base = Path(os.path.realpath(tmp_path))
    env = base / "env"
    make_venv(env)  # without pip (fast); install adds pip, which the retrace then also finds
    pip_into(env / "bin" / "python", "tinya==1.0", "tinyb==2.0")
    bare = base / "upstream.git"
    git(base, "init", "-q", "--bare", "-b", "main", str(bare))
    work = base / "work"
    git(base, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-b", "main")
    commit(work, "analysis.py", "print(1)\n")
    git(work, "push", "-q", "-u", "origin", "main")
    commit(work, "later.py", "x\n")  # pushed later: the recorded commit must come from the remote
    git(work, "push", "-q", "origin", "main")
    git(work, "checkout", "-q", "-B", "main", "HEAD~1")

    site = next((env / "lib").glob("python*/site-packages"))
    paths = [str(site / "tinya" / "__init__.py"), str(site / "tinyb" / "__init__.py"), str(work / "analysis.py")]
    session = ShellSession()
    original = trace_paths(session, paths)
    assert {d["name"] for d in original.distributions} >= {"venv", "git"}
    spec_file = base / "env.yml"
    original.write(spec_file)

    shutil.rmtree(env)
    shutil.rmtree(work)
    results = api.install("local", [str(spec_file)])
    assert {r.distribution: r.status for r in results} == {"venv": "installed", "git": "installed",
                                                            **{d["name"]: "installed" for d in original.distributions}}

    assert (site / "tinyb" / "__init__.py").read_text() == "B = 2\n"
    git_entry = original.get_distribution("git")
    assert git_entry is not None
    assert git(work, "rev-parse", "HEAD") == git_entry["packages"][0]["hexsha"]
    again = trace_paths(session, paths)
    again_file = base / "again.yml"
    again.write(again_file)
    # diff --satisfies A B: does A (the rebuilt environment) satisfy B's (the original's) needs?
    report = api.diff(str(again_file), str(spec_file), satisfies=True)
    assert report.equal, report


def test_install_into_existing_clone_and_venv_is_idempotent(tmp_path: Path, offline_pip: Path) -> None:
    base = Path(os.path.realpath(tmp_path))
    env = base / "env"
    entry = {"name": "venv", "environments": [{"path": str(env), "python_version": "{}.{}.{}".format(*sys.version_info[:3]),
                                               "packages": [{"name": "tinya", "version": "1.0", "local": True},
                                                            {"name": "devthing", "version": "0.1", "local": True,
                                                             "editable": True, "location": "/src/devthing"}]}]}
    from reproman.tracing.venv import VenvTracer

    for _ in range(2):
        VenvTracer.install(ShellSession(), entry)
    assert (next((env / "lib").glob("python*/site-packages")) / "tinya" / "__init__.py").exists()


def test_missing_package_is_reported(tmp_path: Path, offline_pip: Path) -> None:
    from reproman.tracing.venv import VenvTracer

    entry = {"name": "venv", "environments": [{"path": str(tmp_path / "env"), "packages": [
        {"name": "tinya", "version": "1.0"}, {"name": "nowhere-pkg", "version": "9.9"}]}]}
    with pytest.raises(TracingError, match="nowhere-pkg==9.9"):
        VenvTracer.install(ShellSession(), entry)
    assert (next((tmp_path / "env" / "lib").glob("python*/site-packages")) / "tinya").is_dir()


def test_specs_are_checked_before_anything_is_installed(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(f"version: 0.0.1\ndistributions:\n- name: venv\n  environments:\n"
                    f"  - path: {tmp_path / 'never'}\n    packages: []\n")
    unknown = tmp_path / "unknown.yml"
    unknown.write_text("version: 0.0.1\ndistributions:\n- name: flatpak\n  packages: []\n")
    with pytest.raises(TracingError, match="flatpak"):
        install_specs(ShellSession(), [str(good), str(unknown)])
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 0.0.1\ndistributions: [\n")
    with pytest.raises(SpecError, match="bad.yml"):
        install_specs(ShellSession(), [str(good), str(bad)])
    assert not (tmp_path / "never").exists()


def test_cli_install(tmp_path: Path, offline_pip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reproman.cli.main import main

    spec = tmp_path / "s.yml"
    spec.write_text(f"version: 0.0.1\ndistributions:\n- name: venv\n  environments:\n"
                    f"  - path: {tmp_path / 'cli-env'}\n    packages:\n    - name: tinyb\n      version: '2.0'\n")
    assert main(["install", "local", str(spec)]) == 0
    assert "installed: venv" in capsys.readouterr().err
    assert next((tmp_path / "cli-env" / "lib").glob("python*/site-packages/tinyb")).is_dir()


# -- Debian: the parts that need no container ------------------------------------------

DEBIAN_ENTRY: dict[str, Any] = {
    "name": "debian",
    "apt_sources": [
        {"name": "apt_Debian_stable_main_0", "component": "main", "archive": "stable", "codename": "bookworm",
         "origin": "Debian", "label": "Debian", "site": "deb.debian.org",
         "archive_uri": "http://deb.debian.org/debian", "date": "2023-06-10 08:55:01+00:00"},
        {"name": "apt_Debian-Security_stable-security_main_0", "component": "main", "archive": "stable-security",
         "codename": "bookworm-security", "origin": "Debian", "label": "Debian-Security",
         "site": "security.debian.org", "date": "2023-07-01 12:00:00+00:00"},
        {"name": "apt_NeuroDebian_x_main_0", "origin": "NeuroDebian", "codename": "bookworm",
         "date": "2023-07-01 12:00:00+00:00"},
    ],
    "packages": [
        {"name": "hello", "version": "2.10-3", "architecture": "amd64",
         "versions": {"2.10-3": ["apt_Debian_stable_main_0"]}},
        {"name": "libssl3", "version": "3.0.9-1", "architecture": "i386",
         "versions": {"3.0.9-1": ["apt_Debian-Security_stable-security_main_0"]}},
    ],
}


def test_snapshot_sources_for_missing_versions() -> None:
    lines = snapshot_source_lines(DEBIAN_ENTRY, DEBIAN_ENTRY["packages"][:1])
    assert lines == [
        "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/20230610T085501Z/ bookworm main",
        "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/20230611T085501Z/ bookworm main",
    ]
    security = snapshot_source_lines(DEBIAN_ENTRY, DEBIAN_ENTRY["packages"][1:])
    assert security[0] == ("deb [check-valid-until=no] http://snapshot.debian.org/archive/debian-security/"
                           "20230701T120000Z/ bookworm-security main")
    assert snapshot_archive(DEBIAN_ENTRY["apt_sources"][2]) is None


def test_pins_and_madison() -> None:
    assert debian_pin(DEBIAN_ENTRY["packages"][0], "amd64") == "hello=2.10-3"
    assert debian_pin(DEBIAN_ENTRY["packages"][1], "amd64") == "libssl3:i386=3.0.9-1"
    assert debian_pin({"name": "tzdata", "version": "2024a-0", "architecture": "all"}, "amd64") == "tzdata=2024a-0"
    out = (" hello | 2.10-3 | http://deb.debian.org/debian bookworm/main amd64 Packages\n"
           " hello | 2.10-3 | http://deb.debian.org/debian bookworm/main Sources\n"
           "  bash | 5.2.15-2+b7 | http://deb.debian.org/debian bookworm/main amd64 Packages\n")
    assert parse_madison(out) == {"hello": {"2.10-3"}, "bash": {"5.2.15-2+b7"}}


def test_debian_install_needs_dpkg(tmp_path: Path) -> None:
    """A resource without dpkg: a PATH holding only the shell and ``id``."""
    from reproman.tracing.install import install_debian

    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "id"):
        (bare / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    session = ShellSession()
    session.set_envvar("PATH", str(bare))
    with pytest.raises(TracingError, match="no dpkg"):
        install_debian(session, DEBIAN_ENTRY)


def test_cli_install_failure_is_said_once(tmp_path: Path, offline_pip: Path) -> None:
    """Re-trial: a failed install printed its error twice (logged as it happened, then raised)."""
    from hostile_helpers import assert_one_line_error

    from reproman.testing.cli import run_cli

    spec = tmp_path / "s.yml"
    spec.write_text(f"version: 0.0.1\ndistributions:\n- name: venv\n  environments:\n"
                    f"  - path: {tmp_path / 'cli-env'}\n    packages:\n    - name: nowhere-pkg\n      version: '9.9'\n")
    line = assert_one_line_error(run_cli(["install", "local", str(spec)]), code=1)
    assert line.startswith("reproman: error: install failed for venv") and "nowhere-pkg==9.9" in line, line
    assert "No matching distribution found for nowhere-pkg==9.9" in line, "pip's reason is in the one line"
