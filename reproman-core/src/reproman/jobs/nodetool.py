"""The node tool: core's tracing code as one zip application the compute node runs with its python3.

A compute node shares nothing with the submitting host but what the
orchestrator moves, and need not have ReproMan installed. So the tracers
travel with the job: this module packs the ``reproman`` package (without
the CLI) and attrs, its only non-standard-library dependency on that path,
(and pluggy, which the tracer records import) into ``reproman-node-<hash>.pyz``, named by the SHA-256 of its content. It
is built once per ReproMan version on this machine (kept in the user cache
directory) and copied once per resource, to
``<root_directory>/.reproman/tools/``, in the same transfer as the job
directory; later jobs find it there by name and send nothing (a marker in
the data directory remembers what was sent where).

The zip is written deterministically (sorted members, fixed timestamps) so
the same code gives the same name on every machine.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import posixpath
import zipfile
from pathlib import Path

lgr = logging.getLogger(__name__)

TOOLS_SUBDIR = ".reproman/tools"
#: Parts of the reproman package the node never needs.
_SKIP = ("cli", "testing", "__pycache__")
_MAIN = b"import sys\nfrom reproman.jobs.nodetrace import main\nsys.exit(main())\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _package_files(package: str) -> list[tuple[str, Path]]:
    """(archive name, file) for every ``.py`` (and ``py.typed``) file of an importable package.

    Walked with ``os.scandir`` (every submission fingerprints these files:
    pathlib's ``rglob`` made that a tenth of a small job's submission).
    """
    from importlib.util import find_spec

    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed")
    files: list[tuple[str, Path]] = []

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = f"{prefix}/{entry.name}"
                if entry.is_dir(follow_symlinks=True):
                    if entry.name not in _SKIP:
                        walk(entry.path, name)
                elif entry.name.endswith((".py", ".typed")) and entry.is_file():
                    files.append((name, Path(entry.path)))

    walk(list(spec.submodule_search_locations)[0], package)
    return sorted(files)


def _members() -> list[tuple[str, Path | None]]:
    members: list[tuple[str, Path | None]] = [("__main__.py", None)]
    for package in ("reproman", "attr", "attrs", "pluggy"):
        members += _package_files(package)
    return sorted(members, key=lambda m: m[0])


def build(members: list[tuple[str, Path | None]] | None = None) -> bytes:
    """The zip application's bytes (deterministic for the same sources)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in members if members is not None else _members():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, _MAIN if path is None else path.read_bytes())
    return b"#!/usr/bin/env python3\n" + buffer.getvalue()


def _stat_key(members: list[tuple[str, Path | None]]) -> str:
    """A cheap fingerprint of the sources (names, sizes, mtimes): finds a built tool without rebuilding."""
    digest = hashlib.sha256()
    for name, path in members:
        st = path.stat() if path is not None else None
        digest.update(f"{name} {st.st_size if st else 0} {st.st_mtime_ns if st else 0}\n".encode())
    return digest.hexdigest()[:24]


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reproman" / "node-tools"


def _write(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` whole or not at all: a failed write (disk full) leaves no temporary file."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(name, path)
    except BaseException:
        try:
            os.unlink(name)
        except OSError:
            pass
        raise


@functools.lru_cache(maxsize=1)
def local_tool() -> Path:
    """The node tool on this machine, built on first use and kept by content hash.

    Building takes ~0.2 s, so an index named by the sources' sizes and
    mtimes maps to the built file and later runs only stat ~90 files.
    """
    members = _members()
    cache = _cache_dir()
    index = cache / f"index-{_stat_key(members)}"
    try:
        known = cache / index.read_text().strip()
        if known.is_file():
            return known
    except OSError:
        pass
    data = build(members)
    path = cache / f"reproman-node-{hashlib.sha256(data).hexdigest()[:16]}.pyz"
    try:
        if not path.exists():
            _write(path, data)
        _write(index, path.name.encode())
    except OSError as exc:
        from reproman.paths import data_dir

        lgr.debug("cannot cache the node tool in %s (%s); using ReproMan's data directory", cache, exc)
        fallback = data_dir() / "node-tools" / path.name
        try:
            if not fallback.exists():
                _write(fallback, data)
        except OSError as again:
            from reproman.errors import LocalFileError
            from reproman.localfiles import os_error_text

            raise LocalFileError(
                f"cannot write the node tool {fallback} (nor {path}): {os_error_text(again)}",
                hint="Free some space there (or set XDG_CACHE_HOME to a roomier disk), then run again.",
            ) from None
        path = fallback
    return path


def remote_tool(root_directory: str) -> str:
    """Where the node tool lives on a resource whose jobs use ``root_directory``."""
    return posixpath.join(root_directory, TOOLS_SUBDIR, local_tool().name)


def _sent_marker(resource_name: str, resource_id: str | None, remote: str) -> Path:
    from reproman.paths import data_dir

    key = hashlib.sha256(f"{resource_name}\0{resource_id}\0{remote}".encode()).hexdigest()[:24]
    return data_dir() / "node-tools-sent" / key


def was_sent(resource_name: str, resource_id: str | None, remote: str) -> bool:
    """Whether this machine already copied the tool at ``remote`` to that resource."""
    return _sent_marker(resource_name, resource_id, remote).exists()


def mark_sent(resource_name: str, resource_id: str | None, remote: str) -> None:
    marker = _sent_marker(resource_name, resource_id, remote)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{resource_name} {remote}\n")
    except OSError as exc:
        lgr.debug("cannot remember that the node tool was sent (%s); it will be sent again", exc)


def forget_sent(resource_name: str, resource_id: str | None, remote: str) -> None:
    _sent_marker(resource_name, resource_id, remote).unlink(missing_ok=True)
