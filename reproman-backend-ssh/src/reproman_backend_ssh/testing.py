"""A throwaway sshd on 127.0.0.1, for tests and benchmarks.

The tests of this package, its benchmark and other packages' tests (the AWS
backend, datalad-pair over SSH) need a real SSH server without touching the
machine's own sshd, ``~/.ssh`` or ``/etc/ssh``. :class:`LocalSSHD` makes a
host key, a client key, an ``authorized_keys``, a ``known_hosts`` and an
``ssh_config`` in a directory of its own, runs ``/usr/sbin/sshd -D`` on a
free loopback port with a config that points at those files, and stops it
again. Keys are generated with ``cryptography`` (a paramiko dependency) so
``ssh-keygen`` is not needed.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

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

    def __init__(self, directory: str | os.PathLike[str], sshd: str | None = None) -> None:
        self.dir = Path(directory)
        self.sshd = sshd or find_sshd()
        if self.sshd is None:
            raise FileNotFoundError("sshd not found (install openssh-server, see tools/ci/sshd.sh)")
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
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.host}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "PubkeyAuthentication yes",
                    "AllowTcpForwarding yes",
                    "MaxSessions 64",
                    "MaxStartups 64",
                    "PrintMotd no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
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

    # -- process --------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> LocalSSHD:
        """Run sshd and wait until it accepts connections."""
        self._write_files()
        # sshd insists on its privilege-separation directory existing.
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.sshd), "-D", "-e", "-f", str(self.config)],
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
        """Stop the listener and every connection it forked (one process group)."""
        if self.process is None:
            return
        from reproman.testing.services import stop_process_group

        stop_process_group(self.process, timeout=5)
        self.process = None

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


def running_sshd(directory: str | os.PathLike[str]) -> Iterator[LocalSSHD]:
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
    server = LocalSSHD(directory)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        server.stop()
        service_missing(f"could not start sshd: {exc}")
    try:
        yield server
    finally:
        server.stop()
