"""``[ssh]`` settings against a kept connection whose host started with other values (trial Q, 2, 3 and 8).

The session host reads its settings when it starts and lives on while it is
used; these tests check what each command still decides for itself, and that
a bad value is refused by the command that has it, whatever host is running.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.testing.cli import run_cli


def _create(name: str, params: dict[str, Any], **extra: str) -> None:
    api.create(name, "ssh", {**{k: str(v) for k, v in params.items() if v is not None}, **extra})


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (sshd's per-connection processes serve the kept connection)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent:
                found.append(int(entry.name))
                todo.append(int(entry.name))
    return found


def test_ls_refresh_waits_as_long_as_this_commands_refresh_timeout(
        ssh_params: dict[str, Any], sshd: Any, sessions: Path) -> None:
    """Trial Q, 2: the host started with the default 5 s; REPROMAN_SSH_REFRESH_TIMEOUT=1 of a later
    `ls --refresh` was ignored (5 s) while that host lived. The command now sends its own value."""
    _create("h", ssh_params)
    assert run_cli(["execute", "-r", "h", "true"]).returncode == 0  # the kept connection, with the default
    assert sshd.process is not None
    serving = _descendants(sshd.process.pid)
    assert serving, "no sshd process serves the kept connection"
    for pid in serving:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = run_cli(["ls", "--refresh"], env={"REPROMAN_SSH_REFRESH_TIMEOUT": "1"}, timeout=60)
        took = time.monotonic() - started
    finally:
        for pid in serving:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert "does not answer on the open connection (no reply in 1 s)" in result.stdout, result.stdout + result.stderr
    assert took < 4, took


@pytest.mark.parametrize("variable, value, key", [
    ("REPROMAN_SSH_CHANNEL_WAIT", "xyz", "[ssh] channel_wait"),
    ("REPROMAN_SSH_REFRESH_TIMEOUT", "abc", "[ssh] refresh_timeout"),
    ("REPROMAN_SSH_SERVER_ALIVE_INTERVAL", "x", "[ssh] server_alive_interval"),
    ("REPROMAN_SSH_SERVER_ALIVE_COUNT_MAX", "-1", "[ssh] server_alive_count_max"),
])
def test_a_bad_ssh_value_fails_the_command_at_once_even_with_a_kept_connection(
        ssh_params: dict[str, Any], sessions: Path, variable: str, value: str, key: str) -> None:
    """Trial Q, 3: channel_wait=xyz and refresh_timeout=abc were taken silently (a host already running
    never reads them; a new one failed later, as a "CONNECTION ERROR" of one resource). Now the command
    checks them itself, before using any connection: one line, non-zero."""
    _create("h", ssh_params)
    assert run_cli(["execute", "-r", "h", "true"]).returncode == 0
    result = run_cli(["execute", "-r", "h", "echo", "ran"], env={variable: value}, timeout=60)
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "ran" not in result.stdout and "Traceback" not in result.stderr, result.stderr
    assert key in result.stderr and f"got {value!r}" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # `ls --refresh` reports each resource's error in its row (as for [ssh] idle_timeout): the setting, not
    # "CONNECTION ERROR" as if the host were unreachable.
    listed = run_cli(["ls", "--refresh"], env={variable: value}, timeout=60)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("h "))
    assert f"ERROR: {key} must be" in row and "CONNECTION ERROR" not in row, listed.stdout


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (a frozen sshd, a port of something else)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_port_without_a_greeting_takes_one_connect_timeout_as_the_message_says(
        ssh_params: dict[str, Any], sessions: Path, silent_port: int) -> None:
    """Trial Q, 8: `execute` said "no SSH greeting within 10 s" after 20 s: the connect that failed in
    `connect()` was tried again at once by `get_session()`."""
    from reproman.resources.inventory import Inventory

    _create("h", ssh_params)
    with Inventory().edit() as records:  # the host froze after `create`: its port now accepts, silent
        records["h"].update(port=str(silent_port), connect_timeout="3")
    started = time.monotonic()
    result = run_cli(["execute", "-r", "h", "true"], timeout=60)
    took = time.monotonic() - started
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "sent no SSH greeting within 3 s" in result.stderr, result.stderr
    assert took < 5.5, took


def test_a_replacement_host_does_not_garble_the_log_of_the_one_still_finishing(
        ssh_params: dict[str, Any], sessions: Path) -> None:
    """Trial Q, 12: `reproman stop` while a command ran through the host, then a new command: the new host
    truncated the shared log, the old one wrote its last lines at its old offset (NUL bytes before them,
    `grep` called the file binary) and its earlier lines were lost. The log is appended to now."""
    import subprocess
    import sys

    _create("h", ssh_params)
    running = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "h", "sh", "-c",
                                "sleep 3; echo end"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the command runs through the first host
        logs = list(sessions.glob("*.log"))
        assert len(logs) == 1, logs
        first = logs[0].read_bytes()
        assert b"serving" in first, first
        assert run_cli(["stop", "h"]).returncode == 1  # refused for an SSH host, but the connection is retired
        assert run_cli(["execute", "-r", "h", "true"]).returncode == 0  # a new host, same log file
    finally:
        out, err = running.communicate(timeout=60)
    assert (running.returncode, out) == (0, "end\n"), err
    time.sleep(0.5)  # the first host logs "stopped" as it exits
    logged = logs[0].read_bytes()
    assert b"\0" not in logged, logged
    assert logged.startswith(first), logged  # the first host's lines are all still there
    assert logged.count(b"serving") == 2 and b"stopped" in logged[len(first):], logged


@pytest.fixture
def full_control_dir(sessions: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private control directory on a file system with no space left (a small tmpfs, filled)."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a full file system needs root")
    place = sessions / "full"
    place.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs", str(place)], check=True)
    try:
        fill = os.open(place / "fill", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fill, b"\0" * 4096):
                pass
        except OSError:
            pass  # full
        finally:
            os.close(fill)
        monkeypatch.setenv("REPROMAN_SESSIONS_CONTROL_DIR", str(place))
        from reproman.config import reset_config

        reset_config()
        yield place
    finally:
        from reproman.testing.isolation import stop_session_hosts

        stop_session_hosts(place)
        subprocess.run(["umount", "-l", str(place)], check=False)


def test_a_full_control_directory_says_so_and_connects_directly(
        ssh_params: dict[str, Any], sshd: Any, full_control_dir: Path) -> None:
    """Trial Q, 13: with the control directory's file system full, `execute` failed with "it did not start
    listening" and no reason. It now warns why the kept connection cannot start and connects directly, as it
    does for a control directory that is not private."""
    from reproman.resources.inventory import Inventory

    _create("h", ssh_params, persistent="no")
    with Inventory().edit() as records:  # persistent as by default from now on
        records["h"].pop("persistent", None)
    result = run_cli(["execute", "-r", "h", "echo", "direct"], timeout=60)
    assert (result.returncode, result.stdout) == (0, "direct\n"), result.stderr
    assert "No space left on device" in result.stderr and "connecting directly" in result.stderr.lower(), \
        result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_fetch_cut_by_a_server_that_stopped_answering_says_so_not_tar_and_a_full_disk(
        make_session: Any, sshd: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial Q, 7: a fetch whose server froze mid-stream failed with "tar exited with -1" (paramiko's status of
    a channel closed without one) and core's advice to fix "a full disk, a local link in the way"."""
    from reproman.config import reset_config
    from reproman.errors import ResourceConnectionError

    monkeypatch.setenv("REPROMAN_SSH_SERVER_ALIVE_INTERVAL", "1")
    monkeypatch.setenv("REPROMAN_SSH_SERVER_ALIVE_COUNT_MAX", "2")
    reset_config()
    remote = tmp_path / "remote"
    remote.mkdir()
    for i in range(40):
        (remote / str(i)).write_bytes(os.urandom(4_000_000))
    local = tmp_path / "local"
    local.mkdir()
    session = make_session()
    session.execute_command("true")
    assert sshd.process is not None
    frozen: list[int] = []
    done = threading.Event()

    def arrived() -> bool:
        try:
            return any(p.name.isdigit() and p.is_file() and p.stat().st_size for p in local.rglob("*"))
        except OSError:  # a file or directory of the stage went while we looked
            return False

    def freeze_once_data_arrives() -> None:
        while not done.is_set():
            if arrived():
                for pid in _descendants(sshd.process.pid):
                    try:
                        os.kill(pid, signal.SIGSTOP)
                    except ProcessLookupError:
                        continue  # a process of the session that just ended
                    frozen.append(pid)
                return
            time.sleep(0.005)

    freezer = threading.Thread(target=freeze_once_data_arrives, daemon=True)
    freezer.start()
    try:
        with pytest.raises(ResourceConnectionError) as raised:
            session.get(str(remote), local / "got")
    finally:
        done.set()
        freezer.join()
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert frozen, "the fetch ended before the server could be frozen"
    said = str(raised.value)
    assert "fetching files from" in said and "was cut off" in said and "stopped answering" in said, said
    assert "tar exited" not in said, said
    assert not (local / "got").exists()  # nothing half-fetched landed


def test_delete_and_a_failed_create_leave_no_files_in_the_control_directory(
        ssh_params: dict[str, Any], sessions: Path, silent_port: int) -> None:
    """Trial Q, 12: the .lock and .log files of deleted resources and of failed first connections stayed in
    the control directory (22 after one afternoon)."""
    _create("h", ssh_params)
    assert run_cli(["execute", "-r", "h", "true"]).returncode == 0
    assert list(sessions.glob("*.log")), "no host was started"
    deleted = run_cli(["delete", "-y", "h"])
    assert deleted.returncode == 0, deleted.stderr
    assert sorted(p.name for p in sessions.iterdir()) == []
    failed = run_cli(["create", "bad", "-t", "ssh", "-b", "host=127.0.0.1", "-b", f"port={silent_port}",
                      "-b", "connect_timeout=1", "-b", f"user={ssh_params['user']}"], timeout=60)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
    assert sorted(p.name for p in sessions.iterdir()) == []
