"""``reproman execute`` as a user runs it: exact bytes out, and Ctrl-C/SIGTERM leave nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _reproman(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], capture_output=True, timeout=120, **kwargs)  # type: ignore[call-overload,no-any-return]


def test_non_utf8_bytes_are_written_unchanged() -> None:
    proc = _reproman("execute", "printf", "a\\377b\\000c\\n")
    assert proc.returncode == 0
    assert proc.stdout == b"a\xffb\x00c\n"


def test_binary_stdout_is_byte_exact(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    data = os.urandom(200_000)
    blob.write_bytes(data)
    proc = _reproman("execute", "cat", str(blob))
    assert proc.returncode == 0 and len(proc.stdout) == 200_000 and proc.stdout == data


def test_stderr_bytes_and_exit_code_pass_through() -> None:
    proc = _reproman("execute", "sh", "-c", "printf '\\377' >&2; exit 7")
    assert proc.returncode == 7 and proc.stderr == b"\xff"


def _alive(pattern: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path("/proc", entry, "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if cmdline.strip() == pattern.encode():  # the sleep itself, not a shell or reproman naming it
            found.append(entry)
    return found


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_remote_process_group(sig: int, code: int) -> None:
    tag = f"{os.getpid() % 1000}{sig}77"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reproman", "execute", "sh", "-c", f"sleep 9{tag} & sleep 8{tag}; wait"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while len(_alive(f"sleep 9{tag}") + _alive(f"sleep 8{tag}")) < 2:
        assert time.monotonic() < deadline, "the command did not start"
        time.sleep(0.1)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err.decode()
    assert b"stopped on the resource" in err and b"Traceback" not in err
    assert _alive(f"sleep 9{tag}") == [] and _alive(f"sleep 8{tag}") == []


def _wait_until(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_kill_9_of_the_cli_stops_the_command() -> None:
    """``kill -9`` of ``reproman execute``: nothing can clean up in the CLI, yet the command must not run on
    (before: ``sleep`` ran to its end, reparented to init)."""
    tag = f"{os.getpid() % 1000}{os.urandom(1)[0]}99"
    sleeps = (f"sleep 9{tag}", f"sleep 8{tag}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reproman", "execute", "sh", "-c", f"{sleeps[0]} & {sleeps[1]}; wait"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_until(lambda: all(_alive(s) for s in sleeps), 30), "the command did not start"
        proc.kill()
        proc.wait(timeout=30)
        assert _wait_until(lambda: not any(_alive(s) for s in sleeps), 15), "the command runs on"
    finally:
        for pid in [p for s in sleeps for p in _alive(s)]:  # ours: the tag is this test's
            os.kill(int(pid), signal.SIGKILL)


def test_ctrl_c_reaches_the_command_as_sigint_not_as_the_watchs_hangup(tmp_path: Path) -> None:
    """The kill -9 watch must not pre-empt Ctrl-C: the command's INT handler runs (it may clean up)."""
    said, ready = tmp_path / "signal", tmp_path / "ready"
    script = (f"trap 'echo INT > {said}; exit 5' INT; trap 'echo HUP > {said}; exit 6' HUP; "
              f": > {ready}; sleep 60 & wait")
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _wait_until(ready.exists, 30), "the command did not start"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert said.read_text() == "INT\n"


def test_outputs_outside_the_working_directory_are_refused_before_running(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "ran"
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = _reproman("run", "--follow", "-o", str(tmp_path / "x.txt"), "touch", str(marker), cwd=work, env=env)
    assert proc.returncode == 2
    assert b"is outside" in proc.stderr and proc.stderr.count(b"\n") == 1
    assert not marker.exists()
    proc = _reproman("run", "-o", "../y.txt", "touch", str(marker), cwd=work, env=env)
    assert proc.returncode == 2 and not marker.exists()
