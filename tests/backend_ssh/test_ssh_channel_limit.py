"""More commands at once than the server's MaxSessions: they wait for a free channel, against a real sshd.

The shared test server allows 64 channels per connection; this module
starts one allowing 3 (OpenSSH's default is 10), so a handful of concurrent
commands through one connection (one session, or one kept connection shared
by several CLI processes) passes the limit.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from reproman import api
from reproman.config import reset_config
from reproman.errors import SessionError

LIMIT = 3


@pytest.fixture(scope="module")
def small_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from reproman_backend_ssh.testing import running_sshd

    yield from running_sshd(tmp_path_factory.mktemp("sshd-3"), max_sessions=LIMIT)


@pytest.fixture
def small_session(small_sshd: Any) -> Iterator[Any]:
    from reproman_backend_ssh.session import SSHSession

    session = SSHSession(**small_sshd.session_params())
    yield session
    session.close()


def _run_all(session: Any, commands: list[str]) -> list[Any]:
    results: list[Any] = [None] * len(commands)

    def one(i: int) -> None:
        try:
            results[i] = session.execute_command(commands[i])
        except Exception as exc:  # kept to be asserted on
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(commands))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_commands_past_max_sessions_wait_for_a_channel_and_run_limit_at_a_time(small_session: Any) -> None:
    """Trial Q, 1: the waiting commands ran one at a time (a shell given back sat idle while they polled)."""
    small_session.execute_command("true")  # connected before the threads race for channels
    started = time.monotonic()
    results = _run_all(small_session, [f"sleep 1; echo {i}" for i in range(3 * LIMIT)])
    elapsed = time.monotonic() - started
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(3 * LIMIT)]
    # Never more than LIMIT at once (the server saw to that): three rounds of 1 s, not 1 + 6 one by one.
    assert 3 * 1.0 - 0.05 <= elapsed < 5.5, elapsed


def test_a_wait_that_runs_out_is_one_line(small_session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROMAN_SSH_CHANNEL_WAIT", "0.5")
    reset_config()
    try:
        small_session.execute_command("true")
        holders = threading.Thread(target=_run_all, args=(small_session, ["sleep 4"] * LIMIT))
        holders.start()
        deadline = time.monotonic() + 10
        while small_session._gate.held(small_session._transport()) < LIMIT and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(SessionError) as caught:
            small_session.execute_command("echo late")
        waited = time.monotonic() - started
        holders.join(30)
    finally:
        reset_config()
    said = str(caught.value)
    assert "\n" not in said and "refused another session channel" in said and "waited 0.5 s" in said, said
    assert 0.4 <= waited < 3.5


def test_cli_processes_sharing_a_kept_connection_all_run(small_sshd: Any, sessions: Any) -> None:
    params = {k: str(v) for k, v in small_sshd.session_params().items() if v is not None}
    logins = small_sshd.authentications()
    api.create("few", "ssh", params)
    procs = [subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "few", "sh", "-c",
                               f"sleep 0.5; echo {i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2 * LIMIT + 1)]
    outcomes = [(p.wait(120), *p.communicate()) for p in procs]
    assert [(code, out) for code, out, _err in outcomes] == [(0, f"{i}\n") for i in range(2 * LIMIT + 1)], \
        [err for _c, _o, err in outcomes]
    assert small_sshd.authentications() == logins + 1  # one kept connection served them all


def test_the_host_log_says_the_limit_once_not_a_refusal_per_retry(small_sshd: Any, sessions: Any) -> None:
    """Trial Q, 12: while commands waited for a channel, paramiko logged "Secsh channel N open FAILED" at
    ERROR level for every retry (up to two a second per waiting command) into the session host's log."""
    params = {k: str(v) for k, v in small_sshd.session_params().items() if v is not None}
    api.create("few", "ssh", params)
    procs = [subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", "few", "sh", "-c",
                               f"sleep 1.5; echo {i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2 * LIMIT)]
    outcomes = [(p.wait(120), *p.communicate()) for p in procs]
    assert [code for code, _out, _err in outcomes] == [0] * (2 * LIMIT), [err for _c, _o, err in outcomes]
    logged = "".join(path.read_text() for path in sessions.glob("*.log"))
    assert "no more than" in logged, logged  # the gate did wait: the limit was reached, and said once
    assert "open FAILED" not in logged, logged
