"""Benchmark fetching per-subjob outputs over SSH: 1,000 and 10,000 listed paths, one tar stream.

Run standalone: ``python benchmarks/ssh_fetch.py`` (needs openssh-server, see
tools/ci/sshd.sh, and reproman-backend-ssh installed). It starts its own sshd
on 127.0.0.1 and, for each count N, makes N files ``out/<i>.txt`` on the
"remote" side (what a batch with ``-o 'out/{p[i]}.txt'`` leaves) and measures,
side by side in the same run:

- ``get_many`` of the N listed paths through a direct SSHSession (what the
  plain orchestrator's fetch does, landing rules included);
- the same through a persistent session host (how ``reproman jobs`` fetches);
- the yardstick: OpenSSH and GNU tar moving the same N files as ONE tree
  (``ssh host tar -cf - out | tar -xf -``), which needs no list and no landing.

With ``--job N`` it also runs a real N-subjob batch on an ssh resource and
times ``reproman jobs ID`` (the fetch a user runs), end to end in a new process.
Before issue 10, 500 or more listed outputs failed with "Argument list too long".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reproman_backend_ssh.session import SSHSession
from reproman_backend_ssh.testing import LocalSSHD, find_sshd


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _measure(counts: list[int], server: LocalSSHD, tmp: Path) -> list[tuple[str, int, float]]:
    from reproman.resources import persistent
    from reproman_backend_ssh.resource import session_parameters

    params = server.session_params()
    direct = SSHSession(**params).open()  # type: ignore[arg-type]
    hosted = persistent.attach("ssh", session_parameters(params), label="benchmark")
    assert hosted is not None
    hosted.open()
    ssh = ["ssh", "-F", str(server.ssh_config), "-o", f"UserKnownHostsFile={server.known_hosts}", "rmtest"]
    rows: list[tuple[str, int, float]] = []
    for count in counts:
        remote = direct.execute_command("mktemp -d", check=True).stdout.strip()
        direct.execute_command(f"cd {remote} && mkdir out && i=0; while [ $i -lt {count} ]; do "
                               f"echo $i > out/$i.txt; i=$((i+1)); done", check=True)
        pairs = [(f"{remote}/out/{i}.txt", f"out/{i}.txt") for i in range(count)]
        for label, session in (("get_many, direct SSHSession", direct), ("get_many, through the session host", hosted)):
            local = _fresh(tmp / "local")
            start = time.perf_counter()
            session.get_many([(src, local / dest) for src, dest in pairs])
            rows.append((label, count, time.perf_counter() - start))
            assert len(os.listdir(local / "out")) == count
        local = _fresh(tmp / "local")
        start = time.perf_counter()
        subprocess.run(" ".join(ssh) + f" 'tar -cf - -C {remote} out' | tar -xf - -C {local}", shell=True, check=True)
        rows.append(("yardstick: ssh + tar of the one tree", count, time.perf_counter() - start))
        assert len(os.listdir(local / "out")) == count
        direct.execute_command(["rm", "-rf", remote], check=True)
    direct.close()
    persistent.shutdown("ssh", session_parameters(params))
    return rows


def _job_fetch(count: int, server: LocalSSHD, tmp: Path) -> float:
    """Seconds of ``reproman jobs ID`` (a new process) fetching an N-subjob batch's outputs."""
    env = dict(os.environ)
    work = _fresh(tmp / "work")
    create = [sys.executable, "-m", "reproman", "create", "bench", "-t", "ssh"]
    for key, value in server.session_params().items():
        create += ["-b", f"{key}={value}"]
    subprocess.run(create, env=env, check=True, capture_output=True)
    values = ",".join(str(i) for i in range(count))
    run = subprocess.run([sys.executable, "-m", "reproman", "run", "--json", "-r", "bench", "--bp", f"i={values}",
                          "-o", "out/{p[i]}.txt", "--", "sh", "-c", "mkdir -p out && echo {p[i]} > out/{p[i]}.txt"],
                         env=env, cwd=work, check=True, capture_output=True, text=True)
    jobid = json.loads(run.stdout)["jobid"]
    while True:
        status = subprocess.run([sys.executable, "-m", "reproman", "jobs", "--action", "list", "--status", "--json",
                                 jobid], env=env, cwd=work, capture_output=True, text=True, check=True)
        counts = json.loads(status.stdout)[0]["subjobs_status"]
        if counts["pending"] == counts["running"] == 0:
            break
        time.sleep(1)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reproman", "jobs", jobid], env=env, cwd=work, check=True,
                   capture_output=True)
    seconds = time.perf_counter() - start
    assert len(os.listdir(work / "out")) == count
    subprocess.run([sys.executable, "-m", "reproman", "delete", "-y", "bench"], env=env, capture_output=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,10000", help="numbers of listed outputs (default 1000,10000)")
    parser.add_argument("--job", type=int, default=0, help="also fetch a real batch job of this many subjobs")
    args = parser.parse_args(argv)
    if find_sshd() is None:
        print("sshd not found: run tools/ci/sshd.sh first", file=sys.stderr)
        return 1
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="reproman-bench-") as tmp_name:
        tmp = Path(tmp_name)
        control = tempfile.mkdtemp(prefix="rm-bench-", dir="/tmp")
        os.environ.update(HOME=str(tmp), REPROMAN_SESSIONS_CONTROL_DIR=control,
                          XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"))
        os.environ.pop("SSH_AUTH_SOCK", None)
        try:
            with LocalSSHD(tmp / "sshd") as server:
                rows = _measure(counts, server, tmp)
                if args.job:
                    rows.append((f"reproman jobs ID (new process) for a {args.job}-subjob batch", args.job,
                                 _job_fetch(args.job, server, tmp)))
        finally:
            from reproman.resources.persistent import shutdown_all

            shutdown_all(Path(control))
            shutil.rmtree(control, ignore_errors=True)
    width = max(len(label) for label, _, _ in rows)
    print(f"{'measurement'.ljust(width)}  {'paths':>6}  {'seconds':>8}  {'ms/path':>8}")
    print(f"{'-' * width}  {'-' * 6}  {'-' * 8}  {'-' * 8}")
    for label, count, seconds in rows:
        print(f"{label.ljust(width)}  {count:6d}  {seconds:8.3f}  {1000 * seconds / count:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
