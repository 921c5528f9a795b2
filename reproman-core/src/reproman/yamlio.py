"""One place that configures ruamel.yaml, so every file ReproMan writes looks alike."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from reproman.errors import SpecError


def _yaml(typ: str = "rt") -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ=typ)
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def load(text: str, source: str = "<string>", constructor: Any = None) -> Any:
    """Parse YAML, turning parser errors into a one-line error with file and line.

    ``constructor`` replaces the safe loader's constructor class (specs use
    one that keeps version-like scalars as the text that was written).
    """
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = _yaml("safe")
    if constructor is not None:
        yaml.Constructor = constructor
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise SpecError(f"malformed YAML in {where}: {exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise SpecError(f"malformed YAML in {source}: {exc}") from None


def read_text(path: str | os.PathLike[str]) -> str:
    """A text file's content, or a one-line :class:`SpecError` saying why not."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read {path}: not UTF-8 text ({exc.reason})") from None


def load_file(path: str | os.PathLike[str]) -> Any:
    return load(read_text(path), str(path))


def dump(data: Any, header: str | None = None) -> str:
    stream = io.StringIO()
    if header:
        for line in header.splitlines():
            stream.write(f"# {line}\n" if line else "#\n")
    _yaml("safe").dump(_plain(data), stream)
    return stream.getvalue()


def _plain(data: Any) -> Any:
    """Tuples and other sequences as lists, so the safe dumper accepts them."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data


def atomic_write(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Write a file so that readers see the old or the new content, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
