"""The ``ssh`` resource type: registration, lifecycle, and the API/CLI flows users run."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from typing import Any

import pytest

from reproman import api
from reproman.errors import ResourceConnectionError, ResourceError
from reproman.testing.cli import run_cli
from reproman.testing.services import free_port


def _b(params: dict[str, Any]) -> list[str]:
    """Backend parameters as ``-b KEY=VALUE`` strings, as the CLI passes them."""
    return [f"{k}={v}" for k, v in params.items() if v is not None]


def test_registration_is_cheap_and_complete() -> None:
    code = (
        "import sys; from reproman.plugins.manager import get_plugin_manager as g; m = g(); "
        "r = m.resource_type('ssh'); s = m.session_type('ssh'); "
        "assert r.factory == 'reproman_backend_ssh.resource:SSHResource', r.factory; "
        "assert s.factory == 'reproman_backend_ssh.session:SSHSession', s.factory; "
        "assert r.parameter('host').required; "
        "assert r.parameter('accept_new_host_key').default is False; "
        "assert not [n for n in sys.modules if n.split('.')[0] in ('fabric', 'paramiko', 'invoke')], 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_factories_load() -> None:
    from reproman.plugins.manager import get_plugin_manager
    from reproman_backend_ssh.resource import SSHResource
    from reproman_backend_ssh.session import SSHSession

    manager = get_plugin_manager()
    assert manager.resource_type("ssh").load() is SSHResource
    assert manager.session_type("ssh").load() is SSHSession


def test_create_execute_ls_delete_through_api(ssh_params: dict[str, Any]) -> None:
    resource = api.create("myhost", "ssh", _b(ssh_params))
    assert resource.status == "ONLINE" and resource.id
    (row,) = [r for r in api.ls(verbose=True) if r["name"] == "myhost"]
    assert row["host"] == "127.0.0.1" and row["port"] == ssh_params["port"] and row["status"] == "ONLINE"
    result = api.execute("sh", ["-c", "echo out; echo err >&2; exit 5"], resref="myhost")
    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 5)
    assert api.ls("myhost", refresh=True)[0]["status"] == "ONLINE"
    with pytest.raises(ResourceError, match="cannot be started"):
        api.start("myhost")
    with pytest.raises(ResourceError, match="cannot be stopped"):
        api.stop("myhost")
    assert api.delete("myhost", skip_confirmation=True) == "myhost"
    assert [r["name"] for r in api.ls()] == ["local"]


def test_create_unreachable_records_nothing(ssh_params: dict[str, Any]) -> None:
    port = free_port()
    with pytest.raises(ResourceConnectionError) as info:
        api.create("gone", "ssh", _b({**ssh_params, "port": port}))
    assert f"127.0.0.1:{port}" in str(info.value) and "\n" not in str(info.value)
    assert [r["name"] for r in api.ls()] == ["local"]


def test_ls_refresh_reports_connection_error(ssh_params: dict[str, Any], sshd: Any) -> None:
    api.create("flaky", "ssh", _b(ssh_params))
    from reproman.resources.inventory import Inventory

    port = free_port()
    with Inventory().edit() as records:
        records["flaky"]["port"] = port
    # The status shown says why (trial N, 2); the inventory keeps the bare status.
    status = api.ls("flaky", refresh=True)[0]["status"]
    assert status == f"CONNECTION ERROR: cannot reach SSH host 127.0.0.1:{port}: Connection refused", status
    assert Inventory().load()["flaky"]["status"] == "CONNECTION ERROR"


def test_connect_never_raises_and_session_is_reused(ssh_params: dict[str, Any]) -> None:
    from reproman_backend_ssh.resource import SSHResource

    bad = SSHResource("bad", **{**ssh_params, "port": free_port()})
    bad.connect()
    assert bad.status == "CONNECTION ERROR"
    good = SSHResource("good", **ssh_params)
    good.connect()
    assert good.status == "ONLINE"
    opened = good._session
    session = good.get_session()
    try:
        assert session is opened
        assert session.execute_command("echo hi").stdout == "hi\n"
    finally:
        session.close()


def test_cli_create_and_execute(ssh_params: dict[str, Any]) -> None:
    args = ["create", "myhost", "-t", "ssh"]
    for item in _b(ssh_params):
        args += ["-b", item]
    created = run_cli(args)
    assert created.returncode == 0, created.stderr
    result = run_cli(["execute", "-r", "myhost", "sh", "-c", "printf '%s' \"$1\"; exit 4", "x", "a b $HOME"])
    assert (result.returncode, result.stdout) == (4, "a b $HOME"), result.stderr
    started = run_cli(["start", "myhost"])
    assert started.returncode == 1 and "cannot be started" in started.stderr and started.stderr.count("\n") == 1


def test_cli_unreachable_is_one_line(ssh_params: dict[str, Any]) -> None:
    port = free_port()
    args = ["create", "nohost", "-t", "ssh"]
    for item in _b({**ssh_params, "port": port}):
        args += ["-b", item]
    result = run_cli(args)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in result.stderr


def _run_in_pty(argv: list[str], keys: bytes, timeout: float = 30) -> tuple[int, bytes]:
    """Run ``argv`` on a new pseudo-terminal with ``keys`` typed ahead; return exit status and output."""
    pid, master = pty.fork()
    if pid == 0:  # child: becomes the program, its stdin/stdout the pty
        try:
            os.execvpe(argv[0], argv, os.environ)
        finally:
            os._exit(127)
    os.write(master, keys)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def test_cli_login_gives_a_pty_shell_and_its_exit_status(ssh_params: dict[str, Any]) -> None:
    api.create("loginhost", "ssh", _b(ssh_params))
    code, output = _run_in_pty(
        [sys.executable, "-m", "reproman", "login", "loginhost"], b"tty; exit 6\n"
    )
    assert code == 6, output
    assert b"/dev/pts/" in output
