"""Re-trial D: a killed fetch, fetches racing each other, and commands that are not UTF-8.

Each test starts from what a researcher does: a real YODA dataset (real
DataLad and git-annex), jobs on the local shell resource, the ``reproman``
command line killed with SIGKILL or run twice at once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from datalad_testlib import ORCHESTRATORS, body, run_job

from reproman_orchestrators_datalad import testing as yoda

#: A command with the byte 0xFF in it, as the shell would pass it to ``reproman run``.
NON_UTF8_COMMAND = b"printf 'caf\xff' > outputs/bytes.txt"


def _cli(*args: str | bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, capture_output=True, timeout=300)


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_a_command_that_is_not_utf8_is_refused_before_it_runs(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    """Re-trial finding 4: never a commit message with the byte altered; one line, nothing run, nothing recorded."""
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs")}
    ran = _cli("run", "--orchestrator", orchestrator, "--jp", f"root_directory={root}", "-o", "outputs/bytes.txt",
               "--follow", NON_UTF8_COMMAND, cwd=yoda_ds)
    err = ran.stderr.decode("utf-8", "backslashreplace")
    assert ran.returncode != 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "command holds bytes that are not valid UTF-8 (0xff at character 12" in lines[0], err
    assert "nothing was submitted" in lines[0] and "Traceback" not in err, err
    assert "printf" in err  # the hint: how to write the byte so it is recorded faithfully
    assert not (yoda_ds / "outputs" / "bytes.txt").exists()
    assert not (root / ".reproman" / "jobs").exists() or not any((root / ".reproman" / "jobs").iterdir())
    assert _cli("jobs", "--all", cwd=yoda_ds).returncode == 0
    assert b"bytes.txt" not in _cli("jobs", "--all", cwd=yoda_ds).stdout
    assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads
    yoda.assert_clean(yoda_ds)


def test_the_printf_form_of_the_bytes_is_recorded_as_typed_and_reruns(yoda_ds: Path, root: Path) -> None:
    """What the refusal's hint says works: the command as typed in the record, the byte in the output."""
    command = "printf 'caf\\377' > outputs/bytes.txt"
    result = run_job(root, "datalad-local-run", command, outputs=["outputs/bytes.txt"])
    assert result.status.ok
    assert (yoda_ds / "outputs" / "bytes.txt").read_bytes() == b"caf\xff"
    assert '"cmd": "printf \'caf\\\\377\' > outputs/bytes.txt"' in body(yoda_ds), body(yoda_ds)
    yoda.datalad(yoda_ds, "rerun")
    assert (yoda_ds / "outputs" / "bytes.txt").read_bytes() == b"caf\xff"
    yoda.assert_clean(yoda_ds)
