"""What the CLI prints of users' values: nothing a terminal would act on, suggestions one can type,
outcomes in the same words in every view (trial O, findings 7, 8, 11, 12, 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman import api
from reproman.cli.main import main
from reproman.jobs.outcome import failure_words
from reproman.jobs.registry import Registry

#: A window-title sequence (OSC ... BEL) and a full terminal reset (ESC c), as batch values.
TITLE = "a\x1b]0;PWNED\x07x"
RESET = "b\x1bcz"


def reproman(*args: str | bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a terminal would get it: raw bytes, nothing decoded."""
    return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, capture_output=True, timeout=120)


def assert_no_control_bytes(data: bytes) -> None:
    """Nothing but text and line ends: no ESC, BEL, CR... that a terminal would act on."""
    bad = sorted({chr(b) for b in data if b < 0x20 and b not in (0x0A,)} | {chr(b) for b in data if b == 0x7F})
    assert not bad, (bad, data)


def only_job() -> str:
    (entry,) = Registry().entries()
    return entry.jobid


def test_control_characters_in_values_reach_no_terminal(workdir: Path) -> None:
    """The failure lines, ``jobs --status``, the ``jobs --log`` header, the listing, a fetch again and a
    warning naming an output all show ESC and BEL escaped, as the error messages do."""
    command = f"exit 4 # {RESET}"
    proc = reproman("run", "--follow", "--bp", f"v={TITLE},{RESET}", "sh", "-c", command, cwd=workdir)
    assert proc.returncode == 1, proc.stderr
    assert_no_control_bytes(proc.stdout + proc.stderr)
    err = proc.stderr.decode()
    assert "subjob v=a\\x1b]0;PWNED\\x07x failed (exit code 4)" in err, err
    assert "subjob v=b\\x1bcz failed (exit code 4)" in err, err
    jobid = only_job()
    for args in (["jobs", "--status", jobid], ["jobs", "--log", jobid, "0"], ["jobs", "--log", jobid, "1"],
                 ["jobs"], ["jobs", jobid]):
        proc = reproman(*args, cwd=workdir)
        assert proc.returncode in (0, 1), (args, proc.stderr)
        assert_no_control_bytes(proc.stdout + proc.stderr)
    status = reproman("jobs", "--status", jobid, cwd=workdir).stdout.decode()
    assert "  v=a\\x1b]0;PWNED\\x07x: failed (exit code 4)" in status, status
    assert "exit 4 # b\\x1bcz" in status, status  # the COMMAND column
    log = reproman("jobs", "--log", jobid, "1", cwd=workdir).stdout.decode()
    assert "==> stdout of subjob v=b\\x1bcz (" in log, log
    warned = reproman("run", "--follow", "-o", "never\x1bc.txt", "true", cwd=workdir)  # a logged warning
    assert_no_control_bytes(warned.stdout + warned.stderr)
    assert b"output never\\x1bc.txt was not produced" in warned.stderr, warned.stderr


def test_log_suggests_a_subjob_that_can_be_typed(workdir: Path) -> None:
    """A value that is not UTF-8 is shown as its bytes (``\\xff``), and the suggestion is the index,
    which works, not the value it could not find."""
    value = os.fsdecode(b"\xff\xfebin")
    proc = reproman("run", "--follow", "--bp", os.fsencode(f"v={value},other"), "true", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    jobid = only_job()
    line = assert_one_line_error(subprocess.run(
        [sys.executable, "-m", "reproman", "jobs", "--log", jobid, "v=nothing"], cwd=workdir, capture_output=True,
        text=True, timeout=60), code=2)
    assert line.endswith("E.g. 0."), line
    header = reproman("jobs", "--log", jobid, "0", cwd=workdir)
    assert header.returncode == 0, header.stderr
    assert b"==> stdout of subjob v=\\xff\\xfebin (" in header.stdout, header.stdout
    assert b"\xff" not in header.stdout and b"udc" not in header.stdout, header.stdout


def test_log_suggests_keys_that_can_be_typed_as_words(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A value with a space is suggested quoted, so that the shell keeps it one word."""
    assert main(["run", "--follow", "--bp", "v=a b,c", "true"]) == 0
    jobid = capsys.readouterr().out.strip()
    assert main(["jobs", "--log", jobid, "v=x"]) == 2
    assert capsys.readouterr().err.strip().endswith("E.g. 'v=a b'.")
    assert main(["jobs", "--log", jobid, "v=a b"]) == 0


@pytest.mark.parametrize("words", [["--bp", "i=1,1,2"], ["--bp", "i=1", "--bp", "i=2,1"], ["--bp", "f=a.txt,*.txt"]])
def test_repeated_batch_values_are_refused(workdir: Path, words: list[str]) -> None:
    """Two subjobs named alike would share their name, their outputs and every message about them."""
    (workdir / "a.txt").write_text("a")
    proc = subprocess.run([sys.executable, "-m", "reproman", "run", *words, "-o", "out", "touch", "ran"],
                          cwd=workdir, capture_output=True, text=True, timeout=60)
    line = assert_one_line_error(proc, code=2)
    value = "a.txt" if "f=" in words[1] else "1"
    assert f"value '{value}' is given more than once" in line and "--bp run=1..3" in line, line
    assert not Registry().entries() and not (workdir / "ran").exists()


def test_repeated_batch_spec_records_are_refused(workdir: Path) -> None:
    (workdir / "bs.yaml").write_text("- {i: 1, s: x}\n- {i: 2, s: x}\n- {s: x, i: '1'}\n")
    proc = subprocess.run([sys.executable, "-m", "reproman", "run", "--bs", "bs.yaml", "touch", "ran"],
                          cwd=workdir, capture_output=True, text=True, timeout=60)
    line = assert_one_line_error(proc, code=2)
    assert "records 1 and 3 are the same (s=x i=1)" in line, line
    assert not Registry().entries()


def test_log_of_subjobs_with_the_same_parameters_suggests_the_index(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A job recorded before repeated values were refused: the index is the only way to tell them apart."""
    assert main(["run", "--follow", "--bp", "i=1,2", "true"]) == 0
    jobid = capsys.readouterr().out.strip()
    registry = Registry()
    job = registry.load(jobid)
    job.subjobs[1].p = {"i": "1"}
    registry.save(job)
    assert main(["jobs", "--log", jobid, "i=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("Give the index of one instead: 0, 1."), err
    assert "more KEY=VALUE" not in err
    assert main(["jobs", "--log", jobid, "1"]) == 0


def test_outcomes_read_the_same_in_every_view(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Killed by a signal: named. Cancelled: the same words in --status and in the fetch."""
    assert main(["run", "--follow", "--bp", "i=1,2", "sh", "-c",
                 "if [ {p[i]} = 1 ]; then kill -TERM $$; fi; kill -KILL $$"]) == 1
    out, err = capsys.readouterr()
    jobid = out.strip()
    assert "subjob i=1 failed (killed by SIGTERM, exit code 143)" in err, err
    assert "subjob i=2 failed (killed by SIGKILL, exit code 137)" in err, err
    assert main(["jobs", "--status", jobid]) == 0
    status = capsys.readouterr().out
    assert "  i=1: failed (killed by SIGTERM, exit code 143)" in status, status

    job = api.run(command="sleep 30", batch_parameters=["i=1,2"]).job  # type: ignore[union-attr]
    api.jobs(job.jobid, action="cancel")
    assert main(["jobs", "--follow", job.jobid]) == 1
    fetched = [line.strip() for line in capsys.readouterr().err.splitlines() if "subjob i=" in line]
    assert main(["jobs", "--status", job.jobid]) == 0
    listed = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("  i=")]
    assert len(fetched) == len(listed) == 2, (fetched, listed)
    for fetch_line, status_line in zip(fetched, listed):
        words = status_line.split(": failed ", 1)[1]
        assert words == "(cancelled with 'reproman jobs --cancel')", status_line
        assert f"failed {words};" in fetch_line, (fetch_line, status_line)


def test_lost_subjobs_say_how_once_and_which_never_started(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One subjob's ``kill -9 0`` takes its launcher and worker with it (a SIGTERM no longer does: see
    test_jobs_states): the others never started."""
    code = main(["run", "--follow", "--jp", "num_processes=1", "--bp", "i=1,2", "sh", "-c",
                 "if [ {p[i]} = 1 ]; then kill -9 0; fi; sleep 0.1"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "subjob i=1 failed (lost: its launcher was killed and none of its processes remain); stderr: " in err, err
    assert ("subjob i=2 failed (lost: it never started; its launcher was killed and none of its processes remain); "
            "no stderr\n") in err, err
    assert "((" not in err and "ended without writing" not in err, err


def test_a_subjob_that_outlived_its_killed_launcher_is_not_said_to_be_killed(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Trial Q, 11: kill -9 of the launcher and its worker alone; the running subjob's command went on to its
    end (its output arrived whole), yet it read "its launcher and every process it started were killed"."""
    # Every other process of the job's group (its launcher, worker and subshell) is killed; this one goes on.
    script = ('pg=$(ps -o pgid= -p $$ | tr -d " "); for p in $(pgrep -g "$pg"); do '
              '[ "$p" = $$ ] || kill -9 "$p"; done; sleep 0.3; echo whole > out.txt')
    code = main(["run", "--follow", "--jp", "num_processes=1", "-o", "out.txt", "sh", "-c", script])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "(lost: its launcher was killed and none of its processes remain)" in err, err
    assert "every process it started were killed" not in err, err
    assert (workdir / "out.txt").read_text() == "whole\n"


def test_failure_words() -> None:
    assert failure_words("lost (ended without writing its status)", None,
                         "its launcher finished without it writing a final status") == \
        "lost: its launcher finished without it writing a final status"
    assert failure_words("non-zero exit", 143, None) == "killed by SIGTERM, exit code 143"
    assert failure_words("non-zero exit", 3, None) == "exit code 3"
    assert failure_words("walltime exceeded", None, "DUE TO TIME LIMIT") == "walltime exceeded, DUE TO TIME LIMIT"
    assert failure_words("cancelled", None, "cancelled with 'reproman jobs --cancel'") == \
        "cancelled with 'reproman jobs --cancel'"


@pytest.mark.parametrize("action", ["stop", "stop-if-success", "delete", "delete-if-success"])
def test_follow_action_the_local_resource_cannot_take_is_refused_first(workdir: Path, action: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "reproman", "run", "--follow", action, "touch", "ran"],
                          cwd=workdir, capture_output=True, text=True, timeout=60)
    line = assert_one_line_error(proc, code=2)
    verb = action.partition("-")[0]
    assert line.startswith(f"reproman: error: --follow {action}: "), line
    assert ("cannot be stopped" if verb == "stop" else "cannot be deleted") in line, line
    assert "Use --follow without an action" in line, line
    assert not Registry().entries() and not (workdir / "ran").exists()
