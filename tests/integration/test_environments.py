"""Trace an environment, rebuild it on another resource, retrace there, and check it satisfies.

The Debian round trip runs in real containers and installs from Debian's
archive; the venv round trip goes through the ssh resource on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reproman import api
from reproman.resources.manage import get_resource
from reproman.resources.session import Session
from reproman.testing.services import service_missing
from reproman.testing.tracer_contract import TracerInstallContract
from reproman.tracing.debian import DebianTracer
from reproman.tracing.spec import EnvironmentSpec, load_spec


def _entry(spec: EnvironmentSpec, name: str) -> dict:
    return next(d for d in spec.distributions if d["name"] == name)


def test_debian_install_roundtrip_between_containers(make_container: Callable[[], str], tmp_path: Path) -> None:
    source = make_container()
    setup = api.execute("sh", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hello"],
                        resref=source)
    if setup.returncode != 0:
        pytest.fail(f"apt-get in the container failed (Debian's archive must be reachable): {setup.stderr[-500:]}")
    original = tmp_path / "original.yml"
    api.retrace(path=["/usr/bin/hello"], output_file=str(original), resref=source)
    packages = {p["name"] for p in _entry(load_spec(str(original)), "debian")["packages"]}
    assert "hello" in packages

    target = make_container()
    assert api.execute("sh", ["-c", "command -v hello"], resref=target).returncode != 0
    api.install(target, [str(original)])
    assert api.execute("hello", [], resref=target).stdout.startswith("Hello, world!")
    rebuilt = tmp_path / "rebuilt.yml"
    api.retrace(path=["/usr/bin/hello"], output_file=str(rebuilt), resref=target)
    report = api.diff(str(rebuilt), str(original), satisfies=True)
    assert report.equal, report.to_dict()
    cli = subprocess.run([sys.executable, "-m", "reproman", "diff", "--satisfies", str(rebuilt), str(original)],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stdout + cli.stderr


class CountingSession(Session):
    """Delegates to a real session and counts the commands sent (round trips)."""

    def __init__(self, inner: Session) -> None:
        super().__init__()
        self.inner = inner
        self.commands = 0

    def _execute(self, command: str, stdin: bytes | None = None):  # type: ignore[no-untyped-def]
        self.commands += 1
        return self.inner._execute(command, stdin=stdin)

    def _put_file(self, local: Path, remote: str) -> None:
        self.commands += 1
        self.inner._put_file(local, remote)

    def _get_file(self, remote: str, local: Path) -> None:
        self.commands += 1
        self.inner._get_file(remote, local)


def test_retrace_over_ssh_costs_bounded_round_trips(ssh_resource: str) -> None:
    files = sorted(str(p) for p in Path("/usr/lib/python3").rglob("*.py"))[:1000] or sorted(
        str(p) for p in Path("/usr/bin").iterdir())[:1000]
    counts = []
    for n in (len(files) // 10, len(files)):
        session = CountingSession(get_resource(ssh_resource).get_session())
        try:
            spec = api.retrace(path=files[:n], resref=session)
        finally:
            session.inner.close()
        assert spec.distributions or spec.files
        counts.append(session.commands)
    # Ten times the files must not cost (noticeably) more commands.
    assert counts[1] <= counts[0] + 2, counts
    assert counts[1] <= 20, counts


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for the venv's pip")
def test_venv_install_roundtrip_over_ssh(ssh_resource: str, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "six==1.16.0"], capture_output=True, text=True)
    if pip.returncode != 0:
        pytest.fail(f"pip install from PyPI failed: {pip.stderr[-300:]}")
    traced = [str(p) for p in (venv / "lib").rglob("six.py")]
    original = tmp_path / "venv.yml"
    api.retrace(path=traced, output_file=str(original), resref=ssh_resource)
    entry = _entry(load_spec(str(original)), "venv")
    assert any(p["name"] == "six" and p["version"] == "1.16.0" for env in entry["environments"] for p in env["packages"])

    shutil.rmtree(venv)
    api.install(ssh_resource, [str(original)])
    assert (venv / "bin" / "python").exists()
    rebuilt = tmp_path / "rebuilt.yml"
    api.retrace(path=[str(p) for p in (venv / "lib").rglob("six.py")], output_file=str(rebuilt), resref=ssh_resource)
    report = api.diff(str(rebuilt), str(original), satisfies=True)
    assert report.equal, report.to_dict()


class TestDebianInstallContract(TracerInstallContract):
    """The debian tracer's install round trip: this machine's ``bc`` (a rebuilt package, ``+b1``) into a container.

    Installing from Debian's archive needs it reachable, as the round trip above does.
    """

    tracer_class = DebianTracer

    @pytest.fixture
    def installable_paths(self) -> list[str]:
        found = shutil.which("bc")
        if found is None or not shutil.which("dpkg-query"):
            service_missing("needs bc installed from Debian's archive on this machine")
        return [os.path.realpath(str(found))]

    @pytest.fixture
    def install_session(self, make_container: Callable[[], str]) -> Iterator[Session]:
        resource = get_resource(make_container())
        resource.connect()
        session = resource.get_session()
        yield session
        session.close()
