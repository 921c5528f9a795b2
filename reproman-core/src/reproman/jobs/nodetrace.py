"""What runs on the compute node: trace a subjob's environment there, with the node's own python3.

This module is the entry point of the node tool (see :mod:`reproman.jobs.nodetool`),
a zip application holding core's tracing code and its pure-Python
dependency (attrs). The runscript calls it at most once per node and
environment (and once per subjob for ``run --trace``); the node does not
need ReproMan installed, only a python3 of the version core supports.

The tracers are the ones ``reproman retrace`` uses, talking to this node
through :class:`NodeSession` (local processes) instead of a remote session,
so a spec traced here reads and diffs exactly like one traced from the
submitting host.

``node`` also writes the cross-job cache entry the runscript checks with
shell builtins alone: ``spec.json`` (its mtime set to when tracing began),
``watch`` (paths whose change means the environment changed: package
databases, environment directories, the executable) and ``ctx`` (the
context the spec belongs to), each replaced atomically, ``ctx`` last.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reproman.resources.session import CommandResult, OutputCallback, Session


class NodeSession(Session):
    """Runs the tracers' shell code on this machine with ``/bin/sh``."""

    def _execute(
        self, command: str, stdin: bytes | None = None, on_output: OutputCallback | None = None
    ) -> CommandResult:
        if stdin:
            proc = subprocess.run(["/bin/sh", "-c", command], input=stdin, capture_output=True)
        else:
            proc = subprocess.run(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, capture_output=True)
        return CommandResult(command=command, returncode=proc.returncode, stdout_bytes=proc.stdout,
                             stderr_bytes=proc.stderr)

    def _put_file(self, local: Path, remote: str) -> None:
        raise NotImplementedError("the node session only runs commands")

    def _get_file(self, remote: str, local: Path) -> None:
        raise NotImplementedError("the node session only runs commands")

    def _interactive(self, command: str | None = None) -> int:
        raise NotImplementedError("the node session only runs commands")


def read_facts(path: str) -> dict[str, str]:
    """The ``key=value`` lines the runscript wrote (first value of a key wins)."""
    facts: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep and key not in facts:
                    facts[key] = value
    except OSError:
        pass
    return facts


def interpreter_of(path: str) -> str | None:
    """The program a ``#!`` script runs with, resolved on PATH for ``#!/usr/bin/env NAME``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").split()
    if not words:
        return None
    if os.path.basename(words[0]) == "env":
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return shutil.which(rest[0]) if rest else None
    return words[0]


def paths_to_trace(exe: str | None) -> list[str]:
    """The executable, its interpreter, and the Python environment the job's variables point to."""
    paths: list[str] = []
    if exe and os.path.isabs(exe):
        paths.append(exe)
        interpreter = interpreter_of(exe)
        if interpreter:
            paths.append(interpreter)
    for variable in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        prefix = os.environ.get(variable)
        if prefix and os.path.isdir(prefix):
            python = os.path.join(prefix, "bin", "python")
            paths.append(python if os.path.exists(python) else prefix)
    return list(dict.fromkeys(paths))


def trace(paths: Sequence[str]) -> dict[str, Any]:
    """The environment spec of ``paths`` on this node, as plain data."""
    from reproman.tracing.catalog import BUILTIN_TRACERS
    from reproman.tracing.retrace import trace_paths

    tracers = [record.load() for record in sorted(BUILTIN_TRACERS, key=lambda r: r.order)]
    session = NodeSession()
    return trace_paths(session, paths, tracers).to_dict()


def watch_list(spec: dict[str, Any], traced: Sequence[str]) -> list[str]:
    """Paths whose modification means the traced environment may have changed."""
    watch: list[str] = list(traced)
    for entry in spec.get("distributions", []):
        name = entry.get("name", "")
        if name == "debian":
            watch += ["/var/lib/dpkg/status"]
        elif name == "redhat":
            watch += [p for p in ("/var/lib/rpm", "/var/lib/rpm/rpmdb.sqlite", "/var/lib/rpm/Packages",
                                  "/usr/lib/sysimage/rpm") if os.path.exists(p)]
        for env in entry.get("environments", []) or []:
            root = env.get("path")
            if not root:
                continue
            watch += glob.glob(os.path.join(root, "lib", "python*", "site-packages"))
            watch += [os.path.join(root, "conda-meta")]
            watch += [root]
        for repo in entry.get("repositories", []) or []:
            root = repo.get("path")
            if root:
                watch += [os.path.join(root, ".git", "HEAD"), os.path.join(root, ".git", "index")]
    return [p for p in dict.fromkeys(watch) if os.path.exists(p)]


def _replace(path: str, text: str, mtime: float | None = None) -> None:
    """Write ``path`` whole or not at all; a failed write (a full disk) leaves no temporary file behind."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
        if mtime is not None:
            os.utime(temporary, (mtime, mtime))
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_cache(cache: str, ctx: str, answer: str, watch: Sequence[str], started: float) -> None:
    """Store the trace for later jobs on this node; any failure only costs a later re-trace."""
    try:
        os.makedirs(cache, exist_ok=True)
        ctx_file = os.path.join(cache, "ctx")
        if os.path.exists(ctx_file):
            os.unlink(ctx_file)  # readers miss while the entry is rewritten
        _replace(os.path.join(cache, "spec.json"), answer, mtime=started)
        _replace(os.path.join(cache, "watch"), "".join(p + "\n" for p in watch))
        _replace(ctx_file, ctx + "\n")
    except OSError as exc:
        print(f"reproman node: could not cache the trace in {cache}: {exc}", file=sys.stderr)


def node(args: argparse.Namespace) -> int:
    # Tracing started now: anything modified after this makes the cached spec stale.
    started = time.time() - 1
    facts = read_facts(args.facts)
    exe = args.exe or facts.get("exe_path") or None
    paths = paths_to_trace(exe)
    began = time.perf_counter()
    spec = trace(paths) if paths else {}
    answer = {
        "spec": spec,
        "traced": paths,
        "interpreter": interpreter_of(exe) if exe and os.path.isabs(exe) else None,
        "python": sys.version.split()[0],
        "seconds": round(time.perf_counter() - began, 3),
    }
    text = json.dumps(answer, indent=1, sort_keys=True)
    _replace(args.out, text)
    if args.cache and args.ctx is not None:
        write_cache(args.cache, args.ctx, text, watch_list(spec, paths), started)
    return 0


def strace(args: argparse.Namespace) -> int:
    from reproman.tracing.strace import parse_strace

    try:
        with open(args.log, encoding="utf-8", errors="surrogateescape") as handle:
            opened = parse_strace(handle.read())
    except OSError as exc:
        print(f"reproman node: cannot read {args.log}: {exc}", file=sys.stderr)
        return 1
    began = time.perf_counter()
    answer = {"spec": trace(opened) if opened else {}, "opened": len(opened),
              "python": sys.version.split()[0], "seconds": round(time.perf_counter() - began, 3)}
    _replace(args.out, json.dumps(answer, indent=1, sort_keys=True))
    os.unlink(args.log)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reproman-node", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("node", help="trace the environment of the job's executable on this node")
    p.add_argument("--facts", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--exe")
    p.add_argument("--cache")
    p.add_argument("--ctx")
    p = sub.add_parser("strace", help="trace the files an strace log shows a subjob opened")
    p.add_argument("--log", required=True)
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, format="reproman node: %(message)s")
    return node(args) if args.what == "node" else strace(args)


if __name__ == "__main__":
    raise SystemExit(main())
