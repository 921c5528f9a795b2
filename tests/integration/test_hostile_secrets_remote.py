"""Secrets (issue 13, case 1) on ssh and docker resources: job directories private there and in the fetched copy."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from reproman import api
from reproman.testing.cli import run_cli

SECRET = "s3cret-remote-0815"


@pytest.mark.parametrize("kind", ["ssh", "docker"])
def test_job_files_are_private_on_the_resource(workdir: Path, tmp_path: Path, request: pytest.FixtureRequest,
                                               kind: str) -> None:
    if kind == "ssh":
        name, root = request.getfixturevalue("ssh_resource"), str(tmp_path / "remote root")
    else:
        name, root = request.getfixturevalue("make_container")(), "/tmp/reproman-root"
    result = api.run(command="echo $TOKEN > out.txt", resref=name, outputs=["out.txt"],
                     job_parameters={"root_directory": root, "env": {"TOKEN": SECRET}}, follow=True,
                     keep_remote=True)
    assert result.status.ok  # type: ignore[attr-defined]
    assert (workdir / "out.txt").read_text() == f"{SECRET}\n"
    job = result.job  # type: ignore[attr-defined]

    jobdir = shlex.quote(job.job_dir)
    listed = api.execute("sh", ["-c", f"cd {jobdir} && stat -c '%a %n' . * && {{ grep -c {SECRET} runscript spec.yaml || true; }} && "
                                      f"stat -c '%a' {shlex.quote(job.working_directory)}/out.txt"], resref=name)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    modes = dict(reversed(line.split(" ", 1)) for line in lines if " " in line)
    assert modes.pop(".") == "700"
    assert {"runscript", "spec.yaml", "submit", "stdout.0", "stderr.0", "status.0"} <= set(modes)
    assert modes.pop("env") == "700"  # the node's environment record, a directory
    assert set(modes.values()) == {"600"}, modes
    # The value travelled in the private secrets file, which the fetch removed; the files that stay never held it.
    assert "runscript:0" in lines and "spec.yaml:0" in lines
    assert "secrets.env" not in modes
    assert lines[-1] == "644"  # the command's own output keeps the usual umask

    fetched = workdir / ".reproman" / "jobs" / name / job.jobid
    assert stat.S_IMODE(fetched.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in fetched.iterdir() if not p.is_dir()} == {0o600}
    assert {stat.S_IMODE(p.stat().st_mode) for p in fetched.iterdir() if p.is_dir()} <= {0o700}
    shown = run_cli(["jobs", "--show", job.jobid])
    assert SECRET not in shown.stdout and "TOKEN: '<not stored: looks like a secret>'" in shown.stdout
