"""An output directory holding files that are unlocked in ``HEAD`` and whose content the clone lacks.

The clone on the resource gets the content of inputs only, so such a file
is a pointer file there. The job does not touch it, yet core's checksum of
the output directory covered the pointer text, and the fetched dataset (with
the content) read as a transfer mismatch: a false alarm that also kept the
job's files on the resource. Now the untouched pointer files get no
checksum, as the locked files of an output directory (symbolic links
there) never did; a pointer file the command overwrote is its output and
is checked like any other.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from datalad_testlib import clean, git, run_job, sh

from reproman.jobs.registry import Registry


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run"])
def test_untouched_unlocked_file_without_content_in_the_clone_is_no_mismatch(
    dataset: Path, root: Path, orchestrator: str, caplog: pytest.LogCaptureFixture
) -> None:
    (dataset / "res").mkdir()
    (dataset / "res" / "kept.txt").write_text("the user's content\n")
    (dataset / "res" / "redone.txt").write_text("old content\n")
    sh(dataset, "datalad", "save", "-m", "two results", "res")
    sh(dataset, "git", "annex", "unlock", "res/kept.txt", "res/redone.txt")
    sh(dataset, "git", "commit", "-q", "-m", "keep them unlocked")
    assert git(dataset, "ls-tree", "HEAD", "res/kept.txt").startswith("100644"), "unlocked in HEAD"
    with caplog.at_level(logging.INFO, logger="reproman"):
        result = run_job(root, orchestrator, "echo redone > res/redone.txt && echo new > res/new.txt",
                         outputs=["res"])
    assert result.status.ok
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "does not match the checksum" in m or "stay on the resource" in m], said
    job = Registry().load(result.job.jobid)
    assert job.extra["verified"]["mismatched"] == []
    # What the command wrote is checked; the untouched pointer file has no checksum (it was not produced).
    assert sorted(job.checksums) == ["res/new.txt", "res/redone.txt"], job.checksums
    assert job.extra["verified"]["matched"] == 2
    assert job.extra.get("remote_released"), "nothing kept on the resource"
    assert (dataset / "res" / "kept.txt").read_text() == "the user's content\n"
    assert (dataset / "res" / "redone.txt").read_text() == "redone\n"
    assert (dataset / "res" / "new.txt").read_text() == "new\n"
    assert clean(dataset), git(dataset, "status", "--porcelain")
