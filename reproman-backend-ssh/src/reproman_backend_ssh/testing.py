"""A throwaway sshd on 127.0.0.1, and a private place for session hosts, for tests and benchmarks.

The tests of this package, its benchmark and other packages' tests (the AWS
backend, datalad-pair over SSH) need a real SSH server without touching the
machine's own sshd, ``~/.ssh`` or ``/etc/ssh``. :class:`LocalSSHD` makes a
host key, a client key, an ``authorized_keys``, a ``known_hosts`` and an
``ssh_config`` in a directory of its own, runs ``/usr/sbin/sshd -D`` on a
free loopback port with a config that points at those files, and stops it
again. Keys are generated with ``cryptography`` (a paramiko dependency) so
``ssh-keygen`` is not needed. Its log counts authentications
(:meth:`LocalSSHD.authentications`), which is how tests prove that a
persistent connection logged in once.

With ``keyboard_code`` it asks for a key *and* a keyboard-interactive code
(OpenSSH's ``AuthenticationMethods publickey,keyboard-interactive``, the
shape of a two-factor login node). That needs PAM: the server runs under a
name of its own (sshd uses its program name as the PAM service) with a PAM
file in ``/etc/pam.d`` that accepts exactly that code, so it needs root;
the file is removed when the server stops.

:func:`private_sessions` gives a test its own control directory for
session hosts and stops every host it started.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> str | None:
    """Absolute path of sshd (it refuses to run from a relative path), or None."""
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sshd")
    return os.path.abspath(found) if found else None


def make_ed25519_key(path: Path) -> str:
    """Write an unencrypted OpenSSH ed25519 private key; return its public line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = public.decode() + " reproman-test"
    Path(str(path) + ".pub").write_text(line + "\n")
    return line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalSSHD:
    """An sshd for one user (the current one) with key-only login, in ``directory``.

    Attributes a test uses: ``host`` and ``port``; ``user``; ``client_key``
    (authorized) and ``other_key`` (not authorized); ``known_hosts`` (holds
    the real host key); ``ssh_config`` with the aliases ``rmtest`` (direct)
    and ``rmjump`` (the same server reached through ``ProxyJump rmtest``).
    """

    host = "127.0.0.1"

    def __init__(self, directory: str | os.PathLike[str], sshd: str | None = None, *,
                 keyboard_code: str | None = None, max_sessions: int = 64) -> None:
        self.dir = Path(directory)
        #: sshd's MaxSessions: channels per connection (OpenSSH's own default is 10).
        self.max_sessions = max_sessions
        self.sshd = sshd or find_sshd()
        if self.sshd is None:
            raise FileNotFoundError("sshd not found (install openssh-server, see tools/ci/sshd.sh)")
        self.keyboard_code = keyboard_code
        self.pam_service: str | None = None
        self.port = _free_port()
        self.user = getpass.getuser()
        self.client_key = self.dir / "client_key"
        self.other_key = self.dir / "other_key"
        self.host_key = self.dir / "host_key"
        self.known_hosts = self.dir / "known_hosts"
        self.ssh_config = self.dir / "ssh_config"
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self.process: subprocess.Popen[bytes] | None = None

    # -- files --------------------------------------------------------------
    def _write_files(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        host_public = make_ed25519_key(self.host_key)
        client_public = make_ed25519_key(self.client_key)
        make_ed25519_key(self.other_key)
        (self.dir / "authorized_keys").write_text(client_public + "\n")
        self.known_hosts.write_text(f"{self.known_hosts_name} {host_public}\n")
        two_factor = self.keyboard_code is not None
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.host}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "StrictModes no",
                    # sshd refuses keyboard-interactive for root unless root may log in without a key.
                    f"PermitRootLogin {'yes' if two_factor else 'prohibit-password'}",
                    "PasswordAuthentication no",
                    f"KbdInteractiveAuthentication {'yes' if two_factor else 'no'}",
                    f"UsePAM {'yes' if two_factor else 'no'}",
                    *(["AuthenticationMethods publickey,keyboard-interactive"] if two_factor else []),
                    "PubkeyAuthentication yes",
                    "AllowTcpForwarding yes",
                    f"MaxSessions {self.max_sessions}",
                    "MaxStartups 64",
                    "PrintMotd no",
                    "Subsystem sftp internal-sftp",
                    # INFO logs one "Accepted ..." line per authentication: tests count them.
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        self.ssh_config.write_text(
            "\n".join(
                [
                    "Host rmtest",
                    f"    HostName {self.host}",
                    f"    Port {self.port}",
                    f"    User {self.user}",
                    f"    IdentityFile {self.client_key}",
                    "    IdentitiesOnly yes",
                    "",
                    "Host rmjump",
                    f"    HostName {self.host}",
                    f"    Port {self.port}",
                    f"    User {self.user}",
                    f"    IdentityFile {self.client_key}",
                    "    IdentitiesOnly yes",
                    "    ProxyJump rmtest",
                    "",
                ]
            )
        )

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this server (``[host]:port`` off port 22)."""
        return f"[{self.host}]:{self.port}"

    def session_params(self) -> dict[str, object]:
        """Keyword arguments for :class:`SSHSession` / backend parameters reaching this server."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "key_filename": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "ssh_config": str(self.ssh_config),
        }

    def authentications(self) -> int:
        """How many logins the server accepted so far (one per authenticated connection)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return 0
        return len(re.findall(r"^Accepted \S+ for ", text, flags=re.MULTILINE))

    def _install_pam(self) -> str:
        """A program name and PAM service accepting ``keyboard_code``; the path sshd must run as."""
        if os.geteuid() != 0 or not os.access("/etc/pam.d", os.W_OK):
            raise RuntimeError("a keyboard-interactive test server needs root (it writes a PAM file to /etc/pam.d)")
        service = f"reproman-test-sshd-{os.urandom(4).hex()}"
        check = self.dir / "check-code"
        check.write_text(f"#!/bin/sh\ncode=$(tr -d '\\000')\n[ \"$code\" = '{self.keyboard_code}' ]\n")
        check.chmod(0o755)
        Path(f"/etc/pam.d/{service}").write_text(
            f"auth required pam_exec.so expose_authtok quiet {check}\n"
            # pam_exec sets no credentials: without this sshd drops the session after the code was accepted.
            "auth required pam_permit.so\n"
            "account required pam_permit.so\nsession required pam_permit.so\npassword required pam_deny.so\n"
        )
        self.pam_service = service
        program = self.dir / service
        program.unlink(missing_ok=True)
        program.symlink_to(str(self.sshd))
        return str(program)

    # -- process --------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> LocalSSHD:
        """Run sshd and wait until it accepts connections."""
        self._write_files()
        # sshd insists on its privilege-separation directory existing.
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        program = self._install_pam() if self.keyboard_code is not None else str(self.sshd)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [program, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.process.returncode}: {self.log.read_text().strip()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on {self.host}:{self.port} within {timeout} s")

    def stop(self) -> None:
        """Stop the listener and every connection it forked (one process group); remove the PAM file."""
        if self.process is not None:
            from reproman.testing.services import stop_process_group

            stop_process_group(self.process, timeout=5)
            self.process = None
        if self.pam_service is not None:
            Path(f"/etc/pam.d/{self.pam_service}").unlink(missing_ok=True)
            self.pam_service = None

    def connection_pids(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of the listener)."""
        if self.process is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name is in parentheses and may hold spaces: split after it.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid:
                pids.append(int(entry.name))
        return pids

    def __enter__(self) -> LocalSSHD:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_sshd(directory: str | os.PathLike[str], **options: Any) -> Iterator[LocalSSHD]:
    """Body of a pytest fixture: a started :class:`LocalSSHD`, stopped afterwards.

    A missing or unstartable sshd skips the test on a developer machine and
    fails it under CI (``reproman.testing.services.service_missing``)::

        @pytest.fixture(scope="session")
        def sshd(tmp_path_factory):
            yield from running_sshd(tmp_path_factory.mktemp("sshd"))
    """
    from reproman.testing.services import service_missing

    if find_sshd() is None:
        service_missing("sshd not installed (tools/ci/sshd.sh installs openssh-server)")
    server = LocalSSHD(directory, **options)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        server.stop()
        service_missing(f"could not start sshd: {exc}")
    try:
        yield server
    finally:
        server.stop()


def private_sessions(monkeypatch: Any) -> Iterator[Path]:
    """Body of a pytest fixture: session hosts of one test in a directory of their own, all stopped after it.

    The directory is short (``/tmp/rm-ctl-*``: a Unix socket path must stay
    under 108 bytes) and private, set as ``[sessions] control_dir``::

        @pytest.fixture(autouse=True)
        def sessions(monkeypatch):
            yield from private_sessions(monkeypatch)
    """
    from reproman.testing.isolation import reset_configuration, stop_session_hosts

    path = Path(tempfile.mkdtemp(prefix="rm-ctl-", dir="/tmp"))
    monkeypatch.setenv("REPROMAN_SESSIONS_CONTROL_DIR", str(path))
    reset_configuration()
    try:
        yield path
    finally:
        stop_session_hosts(path)
        deadline = time.monotonic() + 10
        while host_pids(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(path, ignore_errors=True)


def host_pids(directory: Path) -> list[int]:
    """PIDs of the session hosts serving sockets in ``directory`` that are still running."""
    pids = []
    for pid_file in directory.glob("*.pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
            if b"reproman.resources.sessionhost" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return pids
