"""The svn tracer on a real repository (svnadmin create) and working copies."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_tracing_pip_helpers import CountingSession

from reproman.resources.shell import ShellSession
from reproman.tracing.vcs import SvnTracer

pytestmark = pytest.mark.skipif(not shutil.which("svnadmin"), reason="subversion is not installed")


def svn(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["svn", "--non-interactive", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[str, Path]:
    """(repository URL, working copy of trunk at revision 2)."""
    base = Path(os.path.realpath(tmp_path))
    subprocess.run(["svnadmin", "create", str(base / "repo")], check=True)
    url = f"file://{base / 'repo'}"
    svn("mkdir", "-q", "-m", "layout", f"{url}/trunk")
    wc = base / "wc"
    svn("checkout", "-q", f"{url}/trunk", str(wc))
    (wc / "sub").mkdir()
    (wc / "sub" / "x.py").write_text("x\n")
    (wc / "y.py").write_text("y\n")
    svn("add", "-q", "sub", "y.py", cwd=wc)
    svn("commit", "-q", "-m", "files", cwd=wc)
    svn("update", "-q", cwd=wc)
    return url, wc


def test_trace_working_copy(checkout: tuple[str, Path]) -> None:
    url, wc = checkout
    (wc / "stray.txt").write_text("s")
    files = [str(wc / "sub" / "x.py"), str(wc / "y.py"), str(wc / "stray.txt"), str(wc / "sub")]
    session = CountingSession()
    result = SvnTracer(session).identify(files)
    assert len(session.commands) == 1
    assert result.claimed == frozenset([files[0], files[1], files[3]])
    (entry,) = result.distributions
    assert entry["name"] == "svn"
    (repo,) = entry["packages"]
    uuid = subprocess.run(["svnlook", "uuid", url[len("file://"):]], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert repo == {"path": str(wc), "files": ["sub/x.py", "y.py"], "revision": 2, "url": f"{url}/trunk",
                    "root_url": url, "relative_url": "^/trunk", "uuid": uuid}


def test_dirty(checkout: tuple[str, Path]) -> None:
    _url, wc = checkout
    (wc / "y.py").write_text("changed\n")
    (repo,) = SvnTracer(ShellSession()).identify([str(wc / "y.py")]).distributions[0]["packages"]
    assert repo["dirty"] is True


def _entry(rev: int, uuid: str = "u1", **extra: object) -> dict:
    return {"name": "svn", "packages": [{"path": "/wc", "revision": rev, "uuid": uuid, "url": "file:///r/trunk",
                                         "relative_url": "^/trunk", **extra}]}


def test_compare_and_satisfies() -> None:
    assert SvnTracer.compare(_entry(2), _entry(2)).equal
    assert [(d.left, d.right) for d in SvnTracer.compare(_entry(2), _entry(3)).differences] == [("2", "3")]
    assert SvnTracer.satisfies(_entry(2), _entry(3)).equal
    assert [d.detail for d in SvnTracer.satisfies(_entry(3), _entry(2)).differences] == ["older revision"]
    assert "different repository" in SvnTracer.satisfies(_entry(2), _entry(3, uuid="u2")).differences[0].detail
    assert not SvnTracer.satisfies(_entry(2), _entry(2, dirty=True)).equal


def test_install_checks_out_recorded_revision(checkout: tuple[str, Path], tmp_path: Path) -> None:
    url, wc = checkout
    (wc / "y.py").write_text("y2\n")
    svn("commit", "-q", "-m", "r3", cwd=wc)
    target = Path(os.path.realpath(tmp_path)) / "restored"
    SvnTracer.install(ShellSession(), {"name": "svn", "packages": [
        {"path": str(target), "url": f"{url}/trunk", "revision": 2}]})
    assert (target / "y.py").read_text() == "y\n"
    (repo,) = SvnTracer(ShellSession()).identify([str(target / "y.py")]).distributions[0]["packages"]
    assert repo["revision"] == 2
