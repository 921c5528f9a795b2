"""Session hosts, backend-neutral: the whole session contract through a host serving the shell session.

The ssh backend's tests cover logins, two-factor prompts and SIGINT to the
CLI against a real sshd; these show that any registered session type can be
hosted, and test the parts that need no server.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reproman.errors import CommandError, ConfigError, OutputConflictError, SessionError
from reproman.resources import persistent, wire
from reproman.testing.session_contract import FullSessionContract


@pytest.fixture
def control(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from reproman.config import reset_config

    path = Path(tempfile.mkdtemp(prefix="rm-ctl-", dir="/tmp"))
    monkeypatch.setenv("REPROMAN_SESSIONS_CONTROL_DIR", str(path))
    reset_config()
    yield path
    persistent.shutdown_all(path)
    for pid_file in path.glob("*.pid"):
        pid_file.unlink()
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class TestHostedShellSession(FullSessionContract):
    """Every promise of the contract holds when the session lives in a host process."""

    listed_paths = 3_000

    @pytest.fixture
    def session(self, control: Path) -> Iterator[persistent.PersistentSession]:
        session = persistent.attach("shell", {}, label="hosted shell")
        assert session is not None
        with session.open():
            yield session

    @pytest.fixture
    def remote_tmp(self, tmp_path: Path) -> str:
        path = tmp_path / "remote"
        path.mkdir()
        return str(path)


def test_one_host_serves_every_session_with_the_same_parameters(control: Path) -> None:
    first = persistent.attach("shell", {}, label="a")
    second = persistent.attach("shell", {}, label="b")
    assert first is not None and second is not None
    pids = {s.execute_command("echo $PPID", check=True).stdout for s in (first, second)}
    assert len(list(control.glob("*.sock"))) == 1
    assert len({p.read_text() for p in control.glob("*.pid")}) == 1
    assert pids  # commands ran
    assert persistent.shutdown("shell", {}) is True
    assert persistent.shutdown("shell", {}) is False
    assert not list(control.glob("*.sock"))


def test_errors_keep_their_class_message_and_hint(control: Path, tmp_path: Path) -> None:
    session = persistent.attach("shell", {})
    assert session is not None
    with pytest.raises(CommandError) as info:
        session.execute_command("echo nope >&2; exit 3", check=True)
    assert info.value.returncode == 3  # raised here, from the host's exit status
    (tmp_path / "out").mkdir()
    (tmp_path / "src").write_text("x")
    with pytest.raises(OutputConflictError) as conflict:
        session.get_many([(str(tmp_path / "src"), tmp_path / "out")])
    assert "is a directory here" in str(conflict.value)
    with pytest.raises(SessionError, match="no such file"):
        session.get(str(tmp_path / "absent"), str(tmp_path / "x"))


def test_wire_errors_round_trip() -> None:
    exc = ConfigError("bad thing", hint="Fix it.")
    back = wire.decode_error(wire.encode_error(exc))
    assert type(back) is ConfigError and str(back) == str(exc)
    odd = wire.decode_error(wire.encode_error(ValueError("boom")))
    assert type(odd) is SessionError and "ValueError: boom" in str(odd)
    # An exception without words of its own is said plainly (trial N, 1: "EOFError: EOFError").
    assert str(wire.decode_error(wire.encode_error(EOFError()))) == "the connection closed"
    assert str(wire.decode_error(wire.encode_error(KeyError()))) == "unexpected KeyError"
    spoofed = wire.decode_error({"type": "SystemExit", "message": "x"})
    assert type(spoofed) is SessionError


def test_host_exits_when_idle(control: Path) -> None:
    session = persistent.attach("shell", {}, idle=1.0)
    assert session is not None
    session.execute_command("true")
    deadline = time.monotonic() + 15
    while list(control.glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(control.glob("*.sock"))


def test_stale_socket_is_replaced(control: Path) -> None:
    endpoint = persistent.Endpoint.for_session(control, "shell", {})
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(endpoint.socket_path))  # bound, never listening: what a killed host leaves
    stale.close()
    session = persistent.PersistentSession(endpoint)
    assert session.execute_command("echo fresh").stdout == "fresh\n"


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o701])
def test_control_directory_must_be_private(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "ctl"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(ConfigError, match=f"its mode is {mode:o}, not 700"):
        persistent.check_private(path)
    path.chmod(0o700)
    persistent.check_private(path)


def test_attach_falls_back_when_the_directory_is_not_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    from reproman.config import reset_config

    path = tmp_path / "ctl"
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    monkeypatch.setenv("REPROMAN_SESSIONS_CONTROL_DIR", str(path))
    reset_config()
    assert persistent.attach("shell", {}) is None
    assert "not using" in caplog.text and os.listdir(path) == []


def test_config_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from reproman.config import reset_config

    assert persistent.enabled("x") is True and persistent.idle_seconds("x") == persistent.DEFAULT_IDLE
    monkeypatch.setenv("REPROMAN_X_PERSISTENT", "no")
    monkeypatch.setenv("REPROMAN_X_IDLE_TIMEOUT", "30")
    reset_config()
    assert persistent.enabled("x") is False and persistent.enabled("x", True) is True
    assert persistent.idle_seconds("x") == 30
    monkeypatch.setenv("REPROMAN_X_IDLE_TIMEOUT", "soon")
    reset_config()
    with pytest.raises(ConfigError, match=r"idle_timeout must be a finite number of seconds, more than zero; got .soon."):
        persistent.idle_seconds("x")


def test_a_host_that_cannot_start_is_one_line(control: Path) -> None:
    from reproman.errors import ResourceError

    # attach() starts the host (so that a control directory that cannot hold one is found while a direct
    # connection is still possible): a host that cannot start for another reason fails it.
    with pytest.raises(ResourceError) as info:
        persistent.attach("no-such-session-type", {}, label="broken")
    text = str(info.value)
    assert "\n" not in text and "cannot start the persistent connection process for broken" in text
    assert "no-such-session-type" in text


def test_a_control_directory_too_deep_for_a_socket_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    from reproman.config import reset_config

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("REPROMAN_SESSIONS_CONTROL_DIR", str(deep))
    reset_config()
    assert persistent.attach("shell", {}) is None
    assert "too long for a Unix socket" in caplog.text


def test_a_host_killed_inside_a_reply_is_the_clear_one_line_error(tmp_path: Path) -> None:
    """A host killed while it wrote a frame (fault injected: a real kill cannot hit mid-frame on demand)."""
    import threading

    ours, theirs = socket.socketpair()

    class OneConnection:
        label = "SSH resource 's1'"
        log_path = tmp_path / "host.log"

        def connect(self) -> socket.socket:
            return ours

        def stop_hung(self) -> None:  # pragma: no cover - the host answers here
            raise AssertionError("the host took the request")

    def host() -> None:
        reader = theirs.makefile("rb")
        wire.receive(reader)
        wire.send(theirs, wire.ACCEPTED)
        wire.send(theirs, wire.STDOUT, b"half a line\n")
        theirs.sendall(wire._HEADER.pack(wire.STDOUT, 100) + b"cut")  # then killed
        theirs.close()

    thread = threading.Thread(target=host)
    thread.start()
    session = persistent.PersistentSession(OneConnection(), interactive=False)  # type: ignore[arg-type]
    with pytest.raises(SessionError) as caught:
        session._execute("sleep 5; echo done")
    thread.join(5)
    message = str(caught.value)
    assert "ended during execute; a command it ran may or may not have completed" in message
    assert "broken reply" not in message and "\n" not in message
