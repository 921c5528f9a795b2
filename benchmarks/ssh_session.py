"""Benchmark the SSH session against plain Fabric on a throwaway local sshd.

Run standalone: ``python benchmarks/ssh_session.py`` (needs openssh-server,
see tools/ci/sshd.sh, and reproman-backend-ssh installed). It starts its own
sshd on 127.0.0.1 with keys of its own, then measures in the same run:

- 200 ``execute_command`` calls through one SSHSession vs 200 ``Connection.run``
  calls of Fabric on one open connection (a new channel per command);
- put and get of a tree of 1,000 files of 4 KiB vs a per-file SFTP baseline
  on the same kind of connection.

The issue's targets: 200 commands < 2 s; tree put and get < 2 s each.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from reproman_backend_ssh.session import SSHSession
from reproman_backend_ssh.testing import LocalSSHD, find_sshd


def _fabric_connection(server: LocalSSHD):  # type: ignore[no-untyped-def]
    """A plain Fabric connection (the baseline), with the server's key trusted explicitly."""
    from fabric import Config, Connection

    conn = Connection(
        server.host,
        port=server.port,
        user=server.user,
        config=Config(runtime_ssh_path=str(server.ssh_config)),
        connect_kwargs={"key_filename": [str(server.client_key)], "look_for_keys": False, "allow_agent": False},
    )
    conn.client.load_host_keys(str(server.known_hosts))
    conn.open()
    return conn


class _timed:
    """Append (label, seconds, target) to ``results`` when the block ends."""

    def __init__(self, label: str, results: list[tuple[str, float, str]], target: str = "") -> None:
        self.label, self.results, self.target = label, results, target

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.results.append((self.label, time.perf_counter() - self.start, self.target))


def _make_tree(root: Path, count: int, size: int) -> None:
    for i in range(count):
        sub = root / f"d{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:04d}.bin").write_bytes(os.urandom(size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=200, help="commands per run (default 200)")
    parser.add_argument("--files", type=int, default=1000, help="files in the tree (default 1000)")
    parser.add_argument("--size", type=int, default=4096, help="bytes per file (default 4096)")
    args = parser.parse_args(argv)
    if find_sshd() is None:
        print("sshd not found: run tools/ci/sshd.sh first", file=sys.stderr)
        return 1

    results: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="reproman-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["HOME"] = str(tmp)  # never read the real ~/.ssh
        os.environ.pop("SSH_AUTH_SOCK", None)
        with LocalSSHD(tmp / "sshd") as server:
            params = server.session_params()

            # -- commands ------------------------------------------------------------
            with _timed("SSHSession: connect + first command", results):
                session = SSHSession(**params)  # type: ignore[arg-type]
                session.execute_command("true", check=True)
            with _timed(f"SSHSession: {args.commands} execute_command", results, "< 2 s"):
                for i in range(args.commands):
                    result = session.execute_command(f"echo {i}; echo e{i} >&2; exit {i % 3}")
                    assert (result.stdout, result.stderr, result.returncode) == (f"{i}\n", f"e{i}\n", i % 3)
            conn = _fabric_connection(server)
            with _timed(f"Fabric Connection.run: {args.commands} commands", results, "baseline"):
                for i in range(args.commands):
                    ran = conn.run(f"echo {i}; echo e{i} >&2; exit {i % 3}", hide=True, warn=True, in_stream=False)
                    assert (ran.stdout, ran.stderr, ran.exited) == (f"{i}\n", f"e{i}\n", i % 3)

            with _timed(f"paramiko exec channel: {args.commands} commands", results, "baseline"):
                for i in range(args.commands):
                    channel = conn.transport.open_session()
                    channel.exec_command(f"echo {i}; exit {i % 3}")
                    out = channel.makefile("rb").read()
                    assert (out, channel.recv_exit_status()) == (f"{i}\n".encode(), i % 3)
                    channel.close()

            # -- trees -----------------------------------------------------------------
            tree = tmp / "tree"
            _make_tree(tree, args.files, args.size)
            remote = session.execute_command("mktemp -d", check=True).stdout.strip()
            label = f"{args.files} x {args.size // 1024} KiB"
            with _timed(f"SSHSession.put tree ({label})", results, "< 2 s"):
                session.put(str(tree), f"{remote}/tree")
            with _timed(f"SSHSession.get tree ({label})", results, "< 2 s"):
                session.get(f"{remote}/tree", str(tmp / "back"))
            back_files = sum(1 for p in (tmp / "back").rglob("*") if p.is_file())
            assert back_files == args.files, back_files

            files = sorted(p for p in tree.rglob("*") if p.is_file())
            sftp = conn.sftp()
            with _timed(f"per-file SFTP put ({label})", results, "baseline"):
                made: set[str] = set()
                for path in files:
                    rel = path.relative_to(tree).as_posix()
                    parent = f"{remote}/sftp/{os.path.dirname(rel)}"
                    for directory in (f"{remote}/sftp", parent):
                        if directory not in made:
                            sftp.mkdir(directory)
                            made.add(directory)
                    sftp.put(str(path), f"{remote}/sftp/{rel}")
            with _timed(f"per-file SFTP get ({label})", results, "baseline"):
                for path in files:
                    rel = path.relative_to(tree).as_posix()
                    local = tmp / "sftp-back" / rel
                    local.parent.mkdir(parents=True, exist_ok=True)
                    sftp.get(f"{remote}/sftp/{rel}", str(local))
            session.remove(remote, recursive=True)
            conn.close()
            session.close()

    width = max(len(label) for label, _, _ in results)
    print(f"{'measurement'.ljust(width)}  {'seconds':>8}  {'ms/item':>8}  target")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 8}  ------")
    for label, seconds, target in results:
        items = args.commands if "command" in label and "first" not in label else args.files if "tree" in label or "SFTP" in label else 1
        print(f"{label.ljust(width)}  {seconds:8.3f}  {1000 * seconds / items:8.2f}  {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
