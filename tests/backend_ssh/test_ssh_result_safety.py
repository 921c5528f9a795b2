"""The result-safety suite on an ``ssh`` resource (real sshd) with the plain orchestrator.

``batch_outputs = 1000``: a 1,000-subjob batch whose every subjob writes
its own output is fetched over ssh in one transfer (it once failed with
"Argument list too long" at 500).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.testing.result_safety import ResultSafetyContract


class TestSSHPlainResults(ResultSafetyContract):
    batch_outputs = 1000

    @pytest.fixture
    def resref(self, ssh_params: dict[str, Any]) -> str:
        name = f"ssh-{uuid.uuid4().hex[:6]}"
        api.create(name, "ssh", {k: str(v) for k, v in ssh_params.items() if v is not None})
        return name


def test_a_rerun_replaces_what_a_failed_subjob_left_over_ssh(ssh_params: dict[str, Any], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed subjob's new file is no user's file over ssh either (the files arrive by tar, with their times).

    Subjob i=2 leaves a partial o/2 and fails; once the flag exists, ``rerun --failed`` succeeds and its
    result replaces that file, instead of going aside as if the partial one were the user's.
    """
    from reproman.jobs.commands import RunResult

    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    name = f"ssh-{uuid.uuid4().hex[:6]}"
    api.create(name, "ssh", {k: str(v) for k, v in ssh_params.items() if v is not None})
    flag = tmp_path / "fixed"  # the sshd is this machine's: the command sees it by its absolute path
    first = api.run(["sh", "-c", f"mkdir -p o; echo partial > o/{{p[i]}}; test {{p[i]}} = 1 || test -e {flag} || "
                                 "exit 1; echo good > o/{p[i]}"],
                    resref=name, batch_parameters=["i=1,2"], outputs=["o/{p[i]}"], follow=True)
    assert isinstance(first, RunResult) and first.status is not None and not first.status.ok
    assert (project / "o" / "2").read_text() == "partial\n"
    flag.touch()
    rerun = api.rerun(first.job.jobid, failed=True, follow=True)
    assert rerun.status is not None and rerun.status.ok
    assert (project / "o" / "2").read_text() == "good\n"
    assert "kept" not in rerun.job.extra
