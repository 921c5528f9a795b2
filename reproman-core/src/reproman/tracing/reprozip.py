"""Read the files a ReproZip trace (``config.yml``) saw, for ``retrace --spec``.

ReproZip lists the files a run used in two places: under each of its
``packages`` (``files:``) and under ``other_files``. ``inputs_outputs`` are
the run's own data, not its environment, and are left out, as the old
ReproMan did. Compiled Python files are traced through their sources
(``__pycache__/mod.cpython-311.pyc`` -> ``mod.py``), which is what package
databases know.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from reproman.errors import SpecError
from reproman.tracing.spec import parse_yaml
from reproman.yamlio import read_text

_PYCACHE = re.compile(r"^(?P<dir>.*)/__pycache__/(?P<mod>[^/.]+)\.[^/]+\.pyc$")


def pycache_source(path: str) -> str | None:
    """The ``.py`` file a ``.pyc`` was compiled from, or ``None`` for other files."""
    match = _PYCACHE.match(path)
    if match:
        return f"{match.group('dir')}/{match.group('mod')}.py"
    if path.endswith((".pyc", ".pyo")) and "/__pycache__/" not in path:
        return path[:-1]
    return None


def reprozip_files(config: Mapping[str, Any], source: str = "config.yml") -> list[str]:
    """Files of a loaded ReproZip config, in a stable order, without duplicates."""
    if not isinstance(config, Mapping) or not ("packages" in config or "other_files" in config or "runs" in config):
        raise SpecError(f"{source} does not look like a ReproZip config.yml (no runs, packages or other_files)")
    files: list[str] = []
    for i, package in enumerate(config.get("packages") or []):
        if not isinstance(package, Mapping):
            raise SpecError(f"{source}: package entry {i + 1} is not a mapping")
        files.extend(str(f) for f in package.get("files") or [])
    files.extend(str(f) for f in config.get("other_files") or [])
    out: dict[str, None] = {}
    for path in files:
        path = posixpath.normpath(path)
        out[pycache_source(path) or path] = None
    return list(out)


def read_reprozip(path: str | os.PathLike[str]) -> list[str]:
    """Files listed in a ReproZip ``config.yml``."""
    data = parse_yaml(read_text(path), str(path))
    return reprozip_files(data, str(path))
