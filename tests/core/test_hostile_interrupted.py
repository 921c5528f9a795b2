"""`reproman run` killed with SIGKILL mid-submission (issue 13 re-trial): the job's end is told, final, deletable.

The re-trial killed `reproman run` about 0.13 s in, after the record was
written and before the submission completed: `reproman jobs` read "1
pending" forever. To kill it at exactly those moments, the run process
sends itself a real SIGKILL from inside the step it is interrupted in
(staging the job directory, or handing the job to the local submitter);
everything after that is the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli

#: Patches one step of the real CLI to SIGKILL its own process, then runs `reproman run ...`.
_KILLED_RUN = """
import os, signal, sys
import {module} as target
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
setattr(target.{owner}, {name!r}, killed) if {owner!r} else setattr(target, {name!r}, killed)
from reproman.cli.main import main
sys.exit(main(sys.argv[1:]))
"""

STEPS = {
    # The job directory is being written to the resource: the submitter was never called.
    "staging": ("reproman.resources.session", "Session", "put_many", "never submitted"),
    # Handing the job to the submitter: whether it was taken cannot be known.
    "submitting": ("reproman.jobs.local", "LocalSubmitter", "submit", "submission interrupted"),
}


def _killed_run(step: str, *args: str) -> subprocess.CompletedProcess[str]:
    module, owner, name, _words = STEPS[step]
    code = _KILLED_RUN.format(module=module, owner=owner, name=name)
    return subprocess.run([sys.executable, "-c", code, "run", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_run_killed_mid_submission_is_final_and_deletable(workdir: Path, step: str) -> None:
    killed = _killed_run(step, "--bp", "i=1,2", "sh", "-c", "echo {p[i]} > out{p[i]}.txt")
    assert killed.returncode == -9, killed.stderr
    [job] = Registry().entries()
    jobid = job.jobid
    words = STEPS[step][3]

    listed = run_cli(["jobs", "--json"])
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["outcome"] == "submission failed" and "pending" not in listed.stdout, row

    shown = run_cli(["jobs", "--status", jobid, "--json"])
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    subjobs = row["subjobs_status"]["subjobs"]
    assert [s["state"] for s in subjobs] == ["failed", "failed"], subjobs
    assert all(s["detail"].startswith(words) for s in subjobs), subjobs
    assert row["subjobs_status"]["finished"] is True

    # Asking again changes nothing: the verdict is recorded, not guessed anew.
    again = run_cli(["jobs", "--status", jobid, "--json"])
    assert json.loads(again.stdout)[0]["subjobs_status"] == row["subjobs_status"]

    for argv in (["jobs", jobid], ["jobs", "--follow", jobid]):
        line = assert_one_line_error(run_cli(argv), code=1)
        assert f"job {jobid}: {words}" in line, line

    job_dir = Path(Registry().load(jobid).job_dir)
    if step == "submitting":  # the copy on the resource does not carry which local process submitted it
        assert "submitting" not in (job_dir / "spec.yaml").read_text()
    deleted = run_cli(["jobs", "--delete", jobid])
    assert deleted.returncode == 0, deleted.stderr
    assert not Registry().entries()
    assert not job_dir.exists(), "what was staged for it is freed"
    assert not list(workdir.glob("out*.txt")), "nothing ran"


def test_a_run_killed_right_after_the_launcher_started_is_followed_and_fetched(workdir: Path) -> None:
    """Killed after the local submitter started the job, before the record said so: the job is not lost."""
    code = (
        "import os, signal, sys\n"
        "from reproman.jobs.local import LocalSubmitter\n"
        "real = LocalSubmitter.submit\n"
        "def submit_then_die(self, job, script):\n"
        "    real(self, job, script)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "LocalSubmitter.submit = submit_then_die\n"
        "from reproman.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    killed = subprocess.run([sys.executable, "-c", code, "run", "--bp", "i=1,2", "-o", "out{p[i]}.txt",
                             "sh", "-c", "echo {p[i]} > out{p[i]}.txt"], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    [job] = Registry().entries()
    fetched = run_cli(["jobs", "--follow", job.jobid])
    assert fetched.returncode == 0, fetched.stderr
    assert (workdir / "out1.txt").read_text() == "1\n" and (workdir / "out2.txt").read_text() == "2\n"
    record = Registry().load(job.jobid)
    assert record.status == "fetched" and record.submission_id


def test_a_submission_still_under_way_is_not_settled(workdir: Path) -> None:
    """A record whose submitting process is alive (another terminal's `run`, slow to submit) stays as it is."""
    from reproman.jobs import interrupted
    from reproman.jobs.spec import JobSpec, Subjob

    job = JobSpec(jobid="20260101-000000-abcd", command="true", resource_name="local", resource_type="shell",
                  submitter="local", orchestrator="plain", subjobs=[Subjob(command="true")],
                  local_directory=str(workdir), root_directory=str(workdir / "nowhere"),
                  job_dir=str(workdir / "nowhere" / ".reproman" / "jobs" / "local" / "20260101-000000-abcd"))
    interrupted.mark(job, interrupted.SUBMITTING)  # this test's own process: alive
    registry = Registry()
    registry.save(job)
    assert interrupted.settle([registry.load(job.jobid)], registry) == []
    assert registry.load(job.jobid).status == "registered"
    # The same record from another machine (a shared home) is not this machine's to judge either.
    job.extra[interrupted.KEY].update(host="some-other-host", pid=2**22 + 1)
    registry.save(job)
    assert interrupted.settle([registry.load(job.jobid)], registry) == []
