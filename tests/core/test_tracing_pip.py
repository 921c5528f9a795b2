"""The system pip tracer on a real site-packages tree, and the version comparator."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_tracing_pip_helpers import CountingSession, make_venv, make_wheel, pip_into

from reproman.resources.shell import ShellSession
from reproman.tracing.pip import PipTracer, compare_versions, pip_requirements


def _prefix_with_site(root: Path) -> tuple[Path, Path]:
    """A Unix installation prefix ``root`` whose site-packages holds two real pip installs."""
    site = root / "lib" / "python3.11" / "site-packages"
    wheels = root.parent / "wheels"
    for wheel in (make_wheel(wheels, "sysone", "4.0"), make_wheel(wheels, "systwo", "0.9")):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--disable-pip-version-check", "--target", str(site), str(wheel)], check=True)
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python3.11"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return site, python


def test_system_site_packages(tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path)) / "usr-local"
    site, python = _prefix_with_site(root)
    files = [str(site / "sysone" / "__init__.py"), str(site / "unowned.py"), "/nonexistent/x.py"]
    session = CountingSession()
    result = PipTracer(session).identify(files)
    assert len(session.commands) == 1
    (entry,) = result.distributions
    assert entry["name"] == "pip"
    (env,) = entry["environments"]
    assert env == {
        "path": str(site),
        "python_version": "3.11",
        "python": str(python),
        "packages": [{"name": "sysone", "version": "4.0", "location": str(site), "files": ["sysone/__init__.py"]}],
    }
    assert result.claimed == frozenset(files[:1])


def test_no_site_packages_costs_no_command(tmp_path: Path) -> None:
    session = CountingSession()
    assert PipTracer(session).identify([str(tmp_path / "a.txt")]).distributions == []
    assert session.commands == []


def test_venv_site_packages_are_not_system(tmp_path: Path) -> None:
    env = make_venv(Path(os.path.realpath(tmp_path)) / "env")
    pip_into(env / "bin" / "python", str(make_wheel(tmp_path / "w", "inner", "1.0")))
    site = next((env / "lib").glob("python*/site-packages"))
    result = PipTracer(ShellSession()).identify([str(site / "inner" / "__init__.py")])
    assert result.distributions == [] and not result.claimed


@pytest.mark.parametrize(("older", "newer"), [
    ("1.0", "1.0.1"), ("1.0a1", "1.0"), ("1.0.dev1", "1.0a1"), ("1.0a2", "1.0b1"), ("1.0rc1", "1.0"),
    ("1.0", "1.0.post1"), ("1.9", "1.10"), ("1.0", "1!0.5"), ("2.0", "2.0+local"), ("0.9", "1.0beta"),
    ("1.0b1", "1.0.0"),
])
def test_version_order(older: str, newer: str) -> None:
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.0.0"), ("1.0", "1"), ("v2.1", "2.1"), ("1.0-1", "1.0.post1")])
def test_version_equal(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0


def test_editable_packages_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI's main() (run by other tests) stops "reproman" logs propagating to caplog's handler.
    monkeypatch.setattr(logging.getLogger("reproman"), "propagate", True)
    reqs = pip_requirements([{"name": "a", "version": "1"}, {"name": "dev", "version": "0.1", "editable": True,
                                                             "location": "/src/dev"}], "here")
    assert reqs == ["a==1"]
    assert "skipping editable package dev" in caplog.text


def test_satisfies() -> None:
    req = {"name": "pip", "environments": [{"path": "/s", "python_version": "3.11",
                                            "packages": [{"name": "six", "version": "1.16.0"}]}]}
    ok = {"name": "pip", "environments": [{"path": "/other", "python_version": "3.11",
                                           "packages": [{"name": "six", "version": "1.17.0"}]}]}
    assert PipTracer.satisfies(req, ok).equal
    assert not PipTracer.satisfies(ok, req).equal
    assert not PipTracer.compare(req, ok).equal
