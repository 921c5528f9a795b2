"""One SSH login per resource, shared by every ReproMan process: the session host, against a real sshd.

Each test has its own control directory (the autouse ``sessions`` fixture)
and the shared sshd counts logins in its log, so "one authentication" is
measured on the server, not assumed from the client.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.plugins import CommandResult
from reproman.resources import persistent
from reproman.testing.cli import run_cli


def _create(name: str, ssh_params: dict[str, Any], **extra: str) -> None:
    api.create(name, "ssh", {**{k: str(v) for k, v in ssh_params.items() if v is not None}, **extra})


def _hosts(directory: Path) -> list[int]:
    from reproman_backend_ssh.testing import host_pids

    return host_pids(directory)


def _wait(condition: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie child of this process is gone too (its exit is only unreported).
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


# -- one login --------------------------------------------------------------------------
def test_cli_calls_share_one_login(ssh_params: dict[str, Any], sshd: Any, sessions: Path) -> None:
    _create("h", ssh_params)
    logins = sshd.authentications()
    for i in range(3):
        result = run_cli(["execute", "-r", "h", "sh", "-c", f"echo {i}"])
        assert (result.returncode, result.stdout) == (0, f"{i}\n"), result.stderr
    assert sshd.authentications() == logins  # create logged in; the three commands did not
    assert len(_hosts(sessions)) == 1
    assert oct(os.stat(sessions).st_mode & 0o777) == "0o700"
    (sock,) = sessions.glob("*.sock")
    assert os.stat(sock).st_mode & 0o077 == 0  # only its owner may connect


def test_without_persistence_every_call_logs_in(ssh_params: dict[str, Any], sshd: Any, sessions: Path) -> None:
    _create("h", ssh_params, persistent="no")
    logins = sshd.authentications()
    for _ in range(2):
        assert run_cli(["execute", "-r", "h", "true"]).returncode == 0
    assert sshd.authentications() == logins + 2
    assert _hosts(sessions) == [] and not list(sessions.glob("*.sock"))


def test_config_key_turns_persistence_off(ssh_params: dict[str, Any], sshd: Any, sessions: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROMAN_SSH_PERSISTENT", "no")
    from reproman.config import reset_config

    reset_config()
    _create("h", ssh_params)
    assert run_cli(["execute", "-r", "h", "true"]).returncode == 0
    assert _hosts(sessions) == []


def test_concurrent_first_calls_start_one_host(ssh_params: dict[str, Any], sshd: Any, sessions: Path) -> None:
    _create("h", ssh_params)
    persistent.shutdown_all(sessions)
    assert _wait(lambda: not _hosts(sessions))
    logins = sshd.authentications()
    procs = [subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "h", "echo", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert [out for out, _err in outputs] == [f"{i}\n" for i in range(4)]
    assert len(_hosts(sessions)) == 1
    assert sshd.authentications() == logins + 1


def test_commands_run_side_by_side_through_one_host(ssh_params: dict[str, Any], sessions: Path) -> None:
    """A long command in one process does not hold up another process's command."""
    _create("h", ssh_params)
    slow = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "h", "sleep", "5"])
    try:
        time.sleep(0.5)
        start = time.monotonic()
        assert run_cli(["execute", "-r", "h", "echo", "quick"]).stdout == "quick\n"
        assert time.monotonic() - start < 4
    finally:
        slow.wait(timeout=60)
    assert slow.returncode == 0 and len(_hosts(sessions)) == 1


# -- the host's life --------------------------------------------------------------------
def test_host_exits_after_the_idle_time(ssh_params: dict[str, Any], sessions: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROMAN_SSH_IDLE_TIMEOUT", "2")
    from reproman.config import reset_config

    reset_config()
    _create("h", ssh_params)
    assert run_cli(["execute", "-r", "h", "true"]).returncode == 0
    (pid,) = _hosts(sessions)
    used = time.monotonic()
    assert _wait(lambda: _gone(pid), timeout=20)
    assert time.monotonic() - used >= 1.5
    assert not list(sessions.glob("*.sock")) and not list(sessions.glob("*.pid"))


def test_delete_ends_the_host(ssh_params: dict[str, Any], sessions: Path) -> None:
    _create("h", ssh_params)
    (pid,) = _hosts(sessions)
    result = run_cli(["delete", "-y", "h"])
    assert result.returncode == 0, result.stderr
    assert _wait(lambda: _gone(pid))
    assert not list(sessions.glob("*.sock"))


def test_stop_closes_the_persistent_connection(ssh_params: dict[str, Any], sessions: Path) -> None:
    _create("h", ssh_params)
    (pid,) = _hosts(sessions)
    result = run_cli(["stop", "h"])
    assert result.returncode == 1 and "cannot be stopped" in result.stderr
    assert "persistent connection was closed" in result.stderr and result.stderr.count("\n") == 1
    assert _wait(lambda: _gone(pid))
    assert run_cli(["execute", "-r", "h", "echo", "again"]).stdout == "again\n"  # a new one starts


def test_stop_lets_a_command_running_through_the_connection_finish(ssh_params: dict[str, Any],
                                                                   sessions: Path) -> None:
    """``stop`` in one terminal while ``execute`` runs in another: the command ends normally, then the host exits."""
    _create("h", ssh_params)
    (pid,) = _hosts(sessions)
    seconds = 4
    tag = f"{seconds}.000{int.from_bytes(os.urandom(2), 'big') % 9000 + 1000}"  # sleeps 4 s, findable by its argument
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "h", "sh", "-c",
                             f"sleep {tag} & wait; echo finished"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: len(_remote_sleeps(tag)) == 1, timeout=30), proc.poll()
        started = time.monotonic()
        stopped = run_cli(["stop", "h"])
        assert time.monotonic() - started < seconds - 1  # stop does not wait for the command
        assert stopped.returncode == 1 and "persistent connection was closed" in stopped.stderr
        assert not _gone(pid) and proc.poll() is None
        # Meanwhile a new command gets a new connection.
        assert run_cli(["execute", "-r", "h", "echo", "meanwhile"]).stdout == "meanwhile\n"
        out, err = proc.communicate(timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out, err) == (0, "finished\n", "")
    assert _wait(lambda: _gone(pid))
    assert not _remote_sleeps(tag)


def test_killed_host_is_replaced(ssh_params: dict[str, Any], sshd: Any, sessions: Path) -> None:
    _create("h", ssh_params)
    (pid,) = _hosts(sessions)
    os.kill(pid, signal.SIGKILL)
    assert _wait(lambda: _gone(pid))
    assert list(sessions.glob("*.sock"))  # a stale socket is left behind
    logins = sshd.authentications()
    result = run_cli(["execute", "-r", "h", "echo", "back"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "back\n", "")
    (new,) = _hosts(sessions)
    assert new != pid and sshd.authentications() == logins + 1


def test_hung_host_is_replaced(ssh_params: dict[str, Any], sessions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that takes no request (here: stopped with SIGSTOP) is killed and replaced."""
    _create("h", ssh_params)
    (pid,) = _hosts(sessions)
    os.kill(pid, signal.SIGSTOP)
    monkeypatch.setattr(persistent, "ACCEPT_TIMEOUT", 1.0)
    try:
        result = api.execute("echo", ["fresh"], resref="h")
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
    assert isinstance(result, CommandResult) and result.stdout == "fresh\n"
    assert _wait(lambda: _gone(pid))
    assert len(_hosts(sessions)) == 1


def _cmdline(pid: int) -> str:
    """A process's command line, or "" once it is gone (other tests' processes come and go under sshd)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the per-connection sshd processes and the shells they serve)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_a_server_that_stops_answering_fails_the_command_instead_of_hanging(
        ssh_params: dict[str, Any], sshd: Any, sessions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial M: a frozen host (SIGSTOP here; a dead route or a stopped VM alike) kept the connection open and
    `execute`, `jobs --status` waited forever without a word. The kept connection asks the server for a reply
    every [ssh] server_alive_interval seconds and gives up after server_alive_count_max unanswered ones:
    the command fails in one line, and the next one connects again."""
    monkeypatch.setenv("REPROMAN_SSH_SERVER_ALIVE_INTERVAL", "1")
    monkeypatch.setenv("REPROMAN_SSH_SERVER_ALIVE_COUNT_MAX", "2")
    from reproman.config import reset_config

    reset_config()
    _create("h", ssh_params)
    assert run_cli(["execute", "-r", "h", "true"]).returncode == 0
    assert sshd.process is not None
    frozen = _descendants(sshd.process.pid)
    assert frozen, "no sshd process serves the kept connection"
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = run_cli(["execute", "-r", "h", "echo", "hi"], timeout=60)
        took = time.monotonic() - started
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "stopped answering (no reply in 2 s)" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert took < 20, took
    again = run_cli(["execute", "-r", "h", "echo", "back"], timeout=60)
    assert (again.returncode, again.stdout) == (0, "back\n"), again.stderr


def _reads(pids: list[int]) -> int:
    """Bytes the processes have read so far (``rchar``): a keep-alive request reaching sshd shows here."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/io").read_text().split("rchar:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total


def _freeze(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)


def _thaw(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def _keep_alive_settings(monkeypatch: pytest.MonkeyPatch, interval: float, count: int) -> None:
    monkeypatch.setenv("REPROMAN_SSH_SERVER_ALIVE_INTERVAL", str(interval))
    monkeypatch.setenv("REPROMAN_SSH_SERVER_ALIVE_COUNT_MAX", str(count))
    from reproman.config import reset_config

    reset_config()


def test_a_frozen_server_is_given_up_as_the_settings_say_and_the_message_says_how_long(
        ssh_params: dict[str, Any], sshd: Any, sessions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial N, 4: with the defaults a frozen server was given up after 56 s while the message said 45 s.
    The deadline now runs from the server's last answer (interval x count after it), and the message says
    the silence there really was. The freeze here comes right after the server answered a keep-alive
    request, the moment when a deadline counted from a later request overshoots the most."""
    _keep_alive_settings(monkeypatch, 2, 3)
    _create("h", ssh_params)
    assert run_cli(["execute", "-r", "h", "true"]).returncode == 0
    assert sshd.process is not None
    serving = _descendants(sshd.process.pid)
    assert serving, "no sshd process serves the kept connection"
    time.sleep(0.5)  # the command's own traffic is over: what sshd reads next is a keep-alive request
    before = _reads(serving)
    assert _wait(lambda: _reads(serving) != before, timeout=10), "no keep-alive request reached the server"
    _freeze(serving)
    frozen_at = time.monotonic()
    try:
        result = run_cli(["execute", "-r", "h", "echo", "hi"], timeout=60)
        took = time.monotonic() - frozen_at
    finally:
        _thaw(serving)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    said = re.search(r"stopped answering \(no reply in (\d+) s\)", result.stderr)
    assert said, result.stderr
    silence = int(said.group(1))
    assert 6 <= silence <= 7, result.stderr  # interval x count, from the last answer
    # Counted from the freeze (just after the last answer), it took what the message says, not more.
    assert took <= silence + 1.0, (took, result.stderr)


def test_ls_refresh_of_a_frozen_host_is_not_online(ssh_params: dict[str, Any], sshd: Any, sessions: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial N, 2: `ls --refresh` said ONLINE for a host whose kept connection was frozen: it asked only the
    session host. Now the server must answer within [ssh] refresh_timeout seconds; `ls` alone stays local."""
    _keep_alive_settings(monkeypatch, 60, 3)  # the keep-alive must not end the connection first
    monkeypatch.setenv("REPROMAN_SSH_REFRESH_TIMEOUT", "2")
    from reproman.config import reset_config

    reset_config()
    _create("h", ssh_params)
    fresh = run_cli(["ls", "--refresh", "h"])
    assert fresh.returncode == 0 and "ONLINE" in fresh.stdout, fresh.stdout + fresh.stderr
    assert sshd.process is not None
    serving = _descendants(sshd.process.pid)
    assert serving
    _freeze(serving)
    try:
        started = time.monotonic()
        refreshed = run_cli(["ls", "--refresh", "h"], timeout=60)
        took = time.monotonic() - started
        started = time.monotonic()
        listed = run_cli(["ls", "h"], timeout=60)
        local_took = time.monotonic() - started
    finally:
        _thaw(serving)
    row = " ".join(line for line in refreshed.stdout.splitlines() if line.startswith("h "))
    assert "ONLINE" not in row and "CONNECTION ERROR" in row, refreshed.stdout + refreshed.stderr
    assert "does not answer" in " ".join(refreshed.stdout.split()), refreshed.stdout
    assert took < 2 + 5, took  # the bounded wait, plus start-up
    assert "Traceback" not in refreshed.stderr
    assert listed.returncode == 0 and local_took < 5, (local_took, listed.stdout)
    again = run_cli(["ls", "--refresh", "h"])
    assert "ONLINE" in again.stdout, again.stdout  # the same kept connection answers again after the thaw


def test_ctrl_c_while_the_server_is_frozen_says_the_command_may_still_run(
        ssh_params: dict[str, Any], sshd: Any, sessions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial M: Ctrl-C of an `execute` whose server froze said "the command was stopped on the resource"
    after a warning that it could not be. Now: bounded by the keepalive, and one true line.
    Trial N, 1: the wait after Ctrl-C was silent, and its reason was `EOFError: EOFError` (the host's log
    said `aside failed: ` with nothing after it). Now the wait and the way out are said at once, and the
    reason is the keep-alive's finding."""
    _keep_alive_settings(monkeypatch, 2, 2)
    _create("h", ssh_params)
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "h", "sleep", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert sshd.process is not None
    assert _wait(lambda: any("sleep" in _cmdline(p) for p in _descendants(sshd.process.pid)))
    frozen = _descendants(sshd.process.pid)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "was stopped on the resource" not in err, err
    assert "the command may still run on the resource (it could not be stopped:" in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "stopping the command on SSH resource 'h'; press Ctrl-C again to give up" in lines[0], err
    assert re.search(r"could not be stopped: connection to \S+ stopped answering \(no reply in \d+ s\)\)$",
                     lines[1]), err
    assert "EOFError" not in err, err
    logged = "".join(log.read_text(errors="replace") for log in sessions.glob("*.log"))
    assert "aside failed: connection to" in logged and not re.search(r"failed: *$", logged, re.MULTILINE), logged


@pytest.mark.parametrize("damage", ["mode", "owner", "symlink"])
def test_unsafe_control_directory_is_refused(ssh_params: dict[str, Any], sshd: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    """Another user's, a group-readable or a linked directory is never used; commands connect directly."""
    _create("h", ssh_params, persistent="no")
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    control = tmp_path / "control"
    if damage == "symlink":
        control.symlink_to(real)
        reason = "symbolic link"
    else:
        control.mkdir(mode=0o700)
        if damage == "mode":
            control.chmod(0o755)
            reason = "mode is 755"
        else:
            if os.geteuid() != 0:
                pytest.skip("giving a directory to another user needs root")
            os.chown(control, 65534, 65534)
            reason = "belongs to uid 65534"
    before = os.lstat(control)
    from reproman.resources.inventory import Inventory

    with Inventory().edit() as records:
        records["h"]["persistent"] = True
    logins = sshd.authentications()
    monkeypatch.setenv("REPROMAN_SESSIONS_CONTROL_DIR", str(control))
    result = run_cli(["execute", "-r", "h", "echo", "direct"])
    assert (result.returncode, result.stdout) == (0, "direct\n"), result.stderr
    assert f"not using {control} for persistent connections" in result.stderr and reason in result.stderr
    # What fixes it depends on what is wrong: chmod would follow a link, and cannot fix another's directory.
    fix = {"symlink": "Remove the link", "mode": f"Run 'chmod 700 {control}'", "owner": "Ask its owner"}[damage]
    assert fix in result.stderr and (damage == "mode" or "chmod" not in result.stderr), result.stderr
    assert result.stderr.count("\n") == 1
    assert sshd.authentications() == logins + 1  # a direct login
    after = os.lstat(control)
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)
    assert os.listdir(real) == [] and (damage == "symlink" or os.listdir(control) == [])


def test_control_directory_with_a_missing_parent_says_what_to_do(ssh_params: dict[str, Any], sshd: Any,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial N, 8: this warning had no hint and another style than the other control_dir warnings."""
    _create("h", ssh_params, persistent="no")
    from reproman.resources.inventory import Inventory

    with Inventory().edit() as records:
        records["h"]["persistent"] = True
    control = tmp_path / "nope" / "sub"
    monkeypatch.setenv("REPROMAN_SESSIONS_CONTROL_DIR", str(control))
    result = run_cli(["execute", "-r", "h", "echo", "direct"])
    assert (result.returncode, result.stdout) == (0, "direct\n"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert (f"not using {control} for persistent connections: its parent directory {control.parent} does not "
            f"exist. Create it (mkdir -p {control.parent}), or set [sessions] control_dir to a private directory "
            "of yours. Connecting directly.") in result.stderr, result.stderr
    assert not control.parent.exists()


# -- interrupts -------------------------------------------------------------------------
def _remote_sleeps(tag: str) -> list[str]:
    """``sleep TAG?`` processes on the 'remote' host (this machine, behind the loopback sshd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) >= 2 and os.path.basename(argv[0]) == b"sleep" and argv[1].startswith(tag.encode()):
                found.append(f"{entry.name}: {b' '.join(argv).decode(errors='replace')}")
    return found


@pytest.mark.parametrize("persist", ["yes", "no"])
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_cli_execute_leaves_no_remote_process(ssh_params: dict[str, Any], sessions: Path,
                                                        persist: str, signum: int, code: int) -> None:
    _create("h", ssh_params, persistent=persist)
    tag = f"{int.from_bytes(os.urandom(2), 'big') % 9000 + 1000}"
    command = f"sleep {tag}1 & sleep {tag}2 & sleep {tag}3; wait"
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "h", "sh", "-c", command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: len(_remote_sleeps(tag)) == 3, timeout=30), proc.poll()
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "stopped on the resource" in err and "Traceback" not in err
    assert _wait(lambda: not _remote_sleeps(tag), timeout=10), _remote_sleeps(tag)
    assert run_cli(["execute", "-r", "h", "echo", "usable"]).stdout == "usable\n"


def test_ctrl_c_stopping_at_once_is_one_line(ssh_params: dict[str, Any], sessions: Path) -> None:
    """The 'press Ctrl-C again' notice is for a stop that makes the user wait; a prompt stop says only that."""
    _create("h", ssh_params)
    tag = f"{int.from_bytes(os.urandom(2), 'big') % 9000 + 1000}"
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "h", "sleep", f"{tag}1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: len(_remote_sleeps(tag)) == 1, timeout=30), proc.poll()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, err) == (130, "reproman: interrupted; the command was stopped on the resource\n")


def test_kill_9_of_cli_execute_leaves_no_remote_process(ssh_params: dict[str, Any], sessions: Path) -> None:
    """A CLI killed without a chance to clean up: the persistent host notices and stops the command."""
    _create("h", ssh_params, persistent="yes")
    tag = f"{int.from_bytes(os.urandom(2), 'big') % 9000 + 1000}"
    command = f"sleep {tag}1 & sleep {tag}2; wait"
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "h", "sh", "-c", command],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait(lambda: len(_remote_sleeps(tag)) == 2, timeout=30), proc.poll()
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _wait(lambda: not _remote_sleeps(tag), timeout=15), _remote_sleeps(tag)
    assert run_cli(["execute", "-r", "h", "echo", "usable"]).stdout == "usable\n"


# -- keyboard-interactive (two-factor) ---------------------------------------------------
@pytest.fixture(scope="module")
def two_factor_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An sshd wanting a key AND a keyboard-interactive code (PAM): a two-factor login node."""
    from reproman_backend_ssh.testing import running_sshd

    yield from running_sshd(tmp_path_factory.mktemp("sshd-2fa"), keyboard_code="314159")


def _spawn(args: list[str]) -> Any:
    import pexpect

    return pexpect.spawn(sys.executable, ["-m", "reproman", *args], env=dict(os.environ), encoding="utf-8",
                         timeout=60)


def test_two_factor_code_is_asked_once_on_the_terminal(two_factor_sshd: Any, sessions: Path) -> None:
    import pexpect

    params = two_factor_sshd.session_params()
    args = ["create", "mfa", "-t", "ssh"] + [a for k, v in params.items() for a in ("-b", f"{k}={v}")]
    create = _spawn(args)
    # The PAM module's question, relayed from the host to this terminal, naming where it comes from (trial M, 4).
    create.expect(rf"\({params['user']}@127\.0\.0\.1:{params['port']}\) Password: ")
    create.sendline("314159")
    create.expect(pexpect.EOF)
    create.close()
    assert create.exitstatus == 0, create.before
    for word in ("one", "two"):
        run = _spawn(["execute", "-r", "mfa", "echo", word])
        index = run.expect(["Password: ", pexpect.EOF])
        run.close()
        assert index == 1, "asked again"
        assert run.exitstatus == 0 and word in run.before
    log = two_factor_sshd.log.read_text()
    assert log.count("Accepted keyboard-interactive/pam for") == 1
    assert two_factor_sshd.authentications() == 1


def test_a_wrong_code_is_said_to_be_refused(two_factor_sshd: Any, sessions: Path) -> None:
    """Trial M: a wrong password or code failed with advice to check the user and key file."""
    import pexpect

    params = two_factor_sshd.session_params()
    create = _spawn(["create", "mfa", "-t", "ssh"] + [a for k, v in params.items() for a in ("-b", f"{k}={v}")])
    for _ in range(5):
        if create.expect([r"Password: ", pexpect.EOF]) == 1:
            break
        create.sendline("000000")
    create.close()
    said = create.before.strip().splitlines()
    assert create.exitstatus == 1, said
    assert "failed" in said[-1] and "The password or code typed was refused" in said[-1], said
    assert "key_filename" not in said[-1], said


def _connections(pid: int, port: int) -> int:
    """ESTABLISHED TCP connections that process ``pid`` holds to ``port`` (its sockets, found in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[3] == "01" and remote_port == port and fields[9] in inodes:
                count += 1
    return count


def test_refused_and_interrupted_prompts_leave_no_connection_open(two_factor_sshd: Any, sessions: Path) -> None:
    """Trial N, 3: every wrong code (or Ctrl-C at the prompt) left an unauthenticated TCP connection open in
    the session host, counting against the server's MaxStartups until LoginGraceTime.
    Trial N, 6: Ctrl-C at the prompt said "the command was stopped on the resource" though nothing ran."""
    import pexpect

    params = two_factor_sshd.session_params()
    logins = two_factor_sshd.authentications()
    create = _spawn(["create", "mfa", "-t", "ssh"] + [a for k, v in params.items() for a in ("-b", f"{k}={v}")])
    create.expect("Password: ")
    create.sendline("314159")
    create.expect(pexpect.EOF)
    create.close()
    assert create.exitstatus == 0, create.before
    assert run_cli(["stop", "mfa"]).returncode == 1  # closes the kept connection: the next command logs in anew
    assert _wait(lambda: not _hosts(sessions))
    for _ in range(3):
        run = _spawn(["execute", "-r", "mfa", "echo", "never"])
        while run.expect(["Password: ", pexpect.EOF]) == 0:
            run.sendline("000000")
        run.close()
        assert run.exitstatus == 1 and "refused" in run.before and "never" not in run.before, run.before
    run = _spawn(["execute", "-r", "mfa", "echo", "never"])
    run.expect("Password: ")
    run.sendintr()
    run.expect(pexpect.EOF)
    run.close()
    said = run.before.strip().splitlines()
    assert run.signalstatus is None and run.exitstatus == 130, said
    assert said[-1] == "reproman: interrupted while connecting to the resource; the command was not started", said
    assert "Traceback" not in run.before
    (host,) = _hosts(sessions)
    port = int(params["port"])
    assert _wait(lambda: _connections(host, port) == 0, timeout=5), _connections(host, port)
    assert two_factor_sshd.authentications() == logins + 1  # the create's login only


def test_two_factor_without_a_terminal_is_one_line(two_factor_sshd: Any, sessions: Path) -> None:
    params = two_factor_sshd.session_params()
    args = ["create", "mfa2", "-t", "ssh"] + [a for k, v in params.items() for a in ("-b", f"{k}={v}")]
    result = run_cli(args)
    assert result.returncode == 1
    assert "needs a password or a code" in result.stderr and result.stderr.count("\n") == 1
    # The host started for it does not stay: it exits once it has told the client (a moment after the CLI).
    assert _wait(lambda: not _hosts(sessions), 10.0), _hosts(sessions)


def test_a_command_served_by_the_host_never_loads_paramiko(ssh_params: dict[str, Any], sessions: Path) -> None:
    """The client side stays light: paramiko and Fabric are imported by the host only."""
    _create("h", ssh_params)
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "reproman", "execute", "-r", "h", "true"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "reproman" in imported and not imported & {"paramiko", "fabric", "invoke", "cryptography"}


def test_a_missing_key_file_starts_no_host(ssh_params: dict[str, Any], sessions: Path, tmp_path: Path) -> None:
    result = run_cli(["create", "nokey", "-t", "ssh", "-b", "host=127.0.0.1", "-b", f"port={ssh_params['port']}",
                      "-b", f"key_filename={tmp_path / 'id_missing'}"])
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert f"SSH key file {tmp_path / 'id_missing'} does not exist" in result.stderr
    assert not list(sessions.glob("*.sock")) and not _hosts(sessions)
