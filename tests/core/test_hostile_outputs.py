"""Outputs a fetch would never write are refused at submission, with the true reason (issue 13 re-trial).

The re-trial ran `reproman run -o .reproman/x ...`: it was accepted, ran,
and the fetch then refused it, saying it led there "through a symbolic
link" (there was none). Nothing may run whose results cannot come back.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error, checksums

from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli


def _nothing_submitted(home: Path) -> None:
    assert not Registry().entries()
    assert not list(home.glob(".reproman/run-root/*/*")), "no job directory may exist"


@pytest.mark.parametrize("output, where", [
    (".reproman/x", ".reproman"),
    ("./.reproman", ".reproman"),
    ("results/.reproman/jobs/local/x/spec.yaml", ".reproman"),
    (".git/hooks/post-checkout", ".git"),
    ("sub/.git", ".git"),
])
def test_outputs_inside_records_or_git_are_refused_at_submission(workdir: Path, output: str, where: str) -> None:
    subprocess.run(["git", "init", "-q", str(workdir)], check=True)
    before = checksums(workdir)
    line = assert_one_line_error(run_cli(["run", "-o", output, "sh", "-c", "echo job > out.txt"]), code=2)
    assert f"is inside a {where} directory, which a fetch never writes" in line, line
    assert "symbolic link" not in line
    _nothing_submitted(workdir.parent / "home")
    assert checksums(workdir) == before


def test_a_batch_output_rendered_into_records_is_refused(workdir: Path) -> None:
    line = assert_one_line_error(run_cli(["run", "--bp", "d=results,.reproman", "-o", "{p[d]}/x", "true"]), code=2)
    assert "output '.reproman/x' is inside a .reproman directory" in line, line
    _nothing_submitted(workdir.parent / "home")


def test_an_output_through_a_link_into_records_names_the_link(workdir: Path) -> None:
    (workdir / ".reproman").mkdir()
    (workdir / "records").symlink_to(".reproman")
    line = assert_one_line_error(run_cli(["run", "-o", "records/x", "true"]), code=2)
    assert f"output 'records/x' leads into {workdir / '.reproman' / 'x'} through a symbolic link" in line, line
    _nothing_submitted(workdir.parent / "home")


def test_the_fetch_names_the_true_reason_for_a_job_submitted_before(workdir: Path) -> None:
    """A job registered by an earlier version with `-o .reproman/x`: the fetch's refusal says why, truly."""
    from reproman.errors import OutputConflictError
    from reproman.resources.landing import plan

    staged = workdir.parent / "staged"
    staged.mkdir()
    (staged / "x").write_text("job\n")
    with pytest.raises(OutputConflictError, match=r"\.reproman/x is inside a \.reproman directory, which a fetch never wr"):
        plan([(staged / "x", workdir / ".reproman" / "x")], root=workdir)
