"""The built-in ``local`` submitter against the submitter contract suite, on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from reproman.testing.submitter_contract import SubmitterContract


class TestLocalSubmitterContract(SubmitterContract):
    # local runs num_processes subjobs at once and has no scheduler to split for or launch in.
    supports_throttle = False
    supports_split = False
    supports_launcher = False
    # Its id is the launcher's process id, printed by the shell it starts it from.
    parses_scheduler_output = False
    submission_id_pattern = r"[1-9][0-9]*"
    invalid_parameters = {
        "reproman_contract_no_such_parameter": "1",
        "num_processes": "0",
        "memory": "4G",  # a scheduler directive the local submitter cannot honour
    }
    max_scheduler_commands = 1

    @pytest.fixture
    def submitter(self) -> str:
        return "local"


def test_find_submitted_reads_the_launchers_own_record(tmp_path: Path) -> None:
    """A run killed while handing a job to the launcher (over SSH, where core cannot look at the files itself):
    the launcher's ``submission-id`` on the resource says it started; without one, nobody can tell yet."""
    from reproman.jobs.local import LocalSubmitter
    from reproman.jobs.spec import JobSpec, Subjob
    from reproman.resources.shell import ShellSession

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    job = JobSpec(jobid="20240101-000000-abcdef", command="true", resource_name="local", resource_type="ssh",
                  submitter="local", orchestrator="plain", subjobs=[Subjob(command="true")],
                  root_directory=str(tmp_path), working_directory=str(tmp_path / "w"), job_dir=str(job_dir))
    submitter = LocalSubmitter(ShellSession())
    assert submitter.find_submitted(job) is None  # not started yet, or still starting
    (job_dir / "submission-id").write_text("4719\n")
    assert submitter.find_submitted(job) == "4719"
