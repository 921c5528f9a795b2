"""Reaching the host: ssh_config, keys, ports, host-key policy, one-line errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman.errors import ConfigError, ResourceConnectionError
from reproman.testing.services import free_port


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_alias_from_ssh_config(make_session: Callable[..., Any], sshd: Any) -> None:
    session = make_session(host="rmtest", port=None, user=None, key_filename=None)
    assert session.execute_command("echo hi").stdout == "hi\n"
    assert session.target == f"rmtest (127.0.0.1:{sshd.port})"


def test_proxyjump_alias(make_session: Callable[..., Any], sshd: Any) -> None:
    session = make_session(host="rmjump", port=None, user=None, key_filename=None)
    assert session.execute_command("echo through").stdout == "through\n"
    assert session._conn.gateway is not None and session._conn.gateway.is_connected


def test_proxyjump_hop_host_key_is_checked(make_session: Callable[..., Any], tmp_path: Path, sshd: Any) -> None:
    """Fabric accepts any key on a jump host; we must not."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    session = make_session(host="rmjump", port=None, user=None, key_filename=None, known_hosts=str(empty))
    with pytest.raises(ResourceConnectionError, match="not in"):
        session.open()


def test_wrong_key(make_session: Callable[..., Any], sshd: Any) -> None:
    session = make_session(key_filename=str(sshd.other_key))
    with pytest.raises(ResourceConnectionError) as info:
        session.open()
    text = _one_line(info.value)
    assert "authentication" in text and f"127.0.0.1:{sshd.port}" in text


def test_wrong_port_is_one_line_naming_host_and_port(make_session: Callable[..., Any]) -> None:
    port = free_port()
    session = make_session(port=port)
    start = time.monotonic()
    with pytest.raises(ResourceConnectionError) as info:
        session.execute_command("true")
    assert f"127.0.0.1:{port}" in _one_line(info.value)
    assert time.monotonic() - start < 5


def test_unknown_hostname(make_session: Callable[..., Any]) -> None:
    with pytest.raises(ResourceConnectionError) as info:
        make_session(host="no-such-host.invalid", port=22).open()
    assert "no-such-host.invalid:22" in _one_line(info.value)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_connect_timeout_covers_a_silent_server(make_session: Callable[..., Any], silent_port: int) -> None:
    session = make_session(port=silent_port, connect_timeout=1)
    start = time.monotonic()
    with pytest.raises(ResourceConnectionError) as info:
        session.open()
    assert time.monotonic() - start < 4
    text = _one_line(info.value)
    assert f"127.0.0.1:{silent_port} accepted the connection but sent no SSH greeting within 1 s" in text


def test_silent_server_through_the_cli_is_one_line_without_traceback(silent_port: int, sshd: Any) -> None:
    from reproman.testing.cli import run_cli

    result = run_cli(["create", "mute", "-t", "ssh", "-b", "host=127.0.0.1", "-b", f"port={silent_port}",
                      "-b", "connect_timeout=1", "-b", f"known_hosts={sshd.known_hosts}"])
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "no SSH greeting" in result.stderr


# -- host keys ------------------------------------------------------------------------
def test_unknown_host_key_refused_by_default(make_session: Callable[..., Any], tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(ResourceConnectionError) as info:
        make_session(known_hosts=str(known)).open()
    text = _one_line(info.value)
    assert "SHA256:" in text and "accept_new_host_key" in text
    assert known.read_text() == ""


def test_unknown_host_key_accepted_with_opt_in_and_recorded(
    make_session: Callable[..., Any], tmp_path: Path, sshd: Any
) -> None:
    known = tmp_path / "sub" / "known_hosts"  # created, with its directory
    assert make_session(known_hosts=str(known), accept_new_host_key=True).execute_command("true").ok
    assert known.read_text().startswith(f"{sshd.known_hosts_name} ssh-ed25519 ")
    # Recorded: later sessions need no opt-in.
    assert make_session(known_hosts=str(known)).execute_command("true").ok


def test_default_known_hosts_is_in_home(make_session: Callable[..., Any], ssh_home: Path) -> None:
    with pytest.raises(ResourceConnectionError, match="known_hosts"):
        make_session(known_hosts=None).open()
    make_session(known_hosts=None, accept_new_host_key=True).open()
    assert (ssh_home / ".ssh" / "known_hosts").is_file()
    make_session(known_hosts=None).open()


def test_user_known_hosts_file_from_ssh_config(make_session: Callable[..., Any], tmp_path: Path, sshd: Any) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host viaconfig\n  HostName 127.0.0.1\n  Port {sshd.port}\n  IdentityFile {sshd.client_key}\n"
        f"  UserKnownHostsFile {sshd.known_hosts}\n"
    )
    session = make_session(host="viaconfig", port=None, key_filename=None, known_hosts=None, ssh_config=str(config))
    assert session.execute_command("true").ok


def test_mismatched_host_key_always_fails(make_session: Callable[..., Any], tmp_path: Path, sshd: Any) -> None:
    from reproman_backend_ssh.testing import make_ed25519_key

    other = make_ed25519_key(tmp_path / "impostor").split()
    known = tmp_path / "known_hosts"
    known.write_text(f"{sshd.known_hosts_name} {other[0]} {other[1]}\n")
    for accept in (False, True):
        with pytest.raises(ResourceConnectionError) as info:
            make_session(known_hosts=str(known), accept_new_host_key=accept).open()
        assert "does NOT match" in _one_line(info.value)
    assert len(known.read_text().splitlines()) == 1


def test_missing_ssh_config_file(make_session: Callable[..., Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        make_session(ssh_config=str(tmp_path / "absent")).open()


def test_nothing_is_asked_that_the_server_would_not_accept(
    make_session: Callable[..., Any], sshd: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key-only server: a wrong key fails in one line naming what the server accepts, without a prompt."""
    asked: list[str] = []

    def fake_getpass(prompt: str) -> str:
        asked.append(prompt)
        return "x"

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    for interactive in (False, True):
        with pytest.raises(ResourceConnectionError) as info:
            make_session(key_filename=str(sshd.other_key), interactive=interactive).open()
        text = _one_line(info.value)
        assert "authentication" in text and "accepts publickey" in text and str(sshd.other_key) in text
    assert asked == []


def test_missing_key_file_is_named(make_session: Callable[..., Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make_session(key_filename=str(tmp_path / "id_absent")).open()
    text = _one_line(info.value)
    assert f"SSH key file {tmp_path / 'id_absent'} does not exist" in text and "cannot reach" not in text


def test_public_key_file_is_refused_with_the_private_one_named(
    make_session: Callable[..., Any], sshd: Any
) -> None:
    with pytest.raises(ConfigError) as info:
        make_session(key_filename=f"{sshd.client_key}.pub").open()
    text = _one_line(info.value)
    assert "is a public key" in text and f"key_filename={sshd.client_key}." in text


def test_encrypted_key_without_a_terminal(make_session: Callable[..., Any], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = tmp_path / "locked"
    path.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(ConfigError, match="encrypted and there is no terminal") as info:
        make_session(key_filename=str(path), interactive=False).open()
    _one_line(info.value)


def test_passphrase_is_asked_once_and_kept_for_reconnecting(
    make_session: Callable[..., Any], sshd: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(sshd.client_key.read_bytes(), password=None)
    locked = tmp_path / "locked"
    locked.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                         serialization.BestAvailableEncryption(b"open sesame")))
    locked.chmod(0o600)
    asked: list[str] = []

    def fake_getpass(prompt: str) -> str:
        asked.append(prompt)
        return "open sesame"

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    session = make_session(key_filename=str(locked), interactive=True)
    assert session.execute_command("echo in").stdout == "in\n"
    session._conn.transport.close()
    assert session.execute_command("echo again").stdout == "again\n"  # reconnected, not asked again
    assert asked == [f"Passphrase for key {locked}: "]
