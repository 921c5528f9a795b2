"""One place that configures ruamel.yaml, so every file ReproMan writes looks alike.

Reading is bounded, because these files are edited by hand, shared and
sometimes hostile:

* at most :data:`YAML_LIMIT` bytes (ruamel's pure-Python parser reads about
  0.3 MB/s, so 16 MiB is already a minute) of strict UTF-8;
* at most :data:`MAX_FLOW_DEPTH` nested ``[``/``{`` (the parser's time grows
  with the square of that depth: 100,000 brackets took 41 s before failing);
* at most :data:`MAX_DEPTH` levels of nesting in the result;
* aliases (``*a``) that expand to more than :data:`MAX_EXPANDED` values are
  refused: a 1 KiB "billion laughs" file loads as a small graph of shared
  lists, but every consumer that copies, renders or serialises it expands
  it, which is how a batch spec reached 3.4 GB.

Every failure is one :class:`~reproman.errors.SpecError` naming the file.
"""

from __future__ import annotations

import io
import itertools
import os

from reproman.errors import SpecError
from reproman.localfiles import atomic_write
from reproman.localfiles import read_text as _read_text

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings
if TYPE_CHECKING:
    from typing import Any

__all__ = ["atomic_write", "dump", "dump_json", "load", "load_file", "load_json_first", "read_text", "text_scalars"]


YAML_LIMIT = 16 * 1024 * 1024
MAX_FLOW_DEPTH = 200
MAX_DEPTH = 100
MAX_EXPANDED = 1_000_000


def _yaml(typ: str = "rt") -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ=typ)
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def text_scalars() -> Any:
    """A safe constructor that keeps every scalar as the text written (``010``, ``yes``, ``1e3``, ``08``).

    For files whose values are pasted into commands, paths and environment
    variables (batch specs, job specs): YAML's type guessing would turn
    subject ``010`` into ``10``, ``yes`` into ``True`` and ``1e3`` into
    ``1000.0``. Only ``null`` (``~``, or nothing) stays None.
    """
    from ruamel.yaml.constructor import SafeConstructor

    class TextConstructor(SafeConstructor):  # type: ignore[misc]
        pass

    def as_text(self: Any, node: Any) -> Any:
        return self.construct_scalar(node)

    for tag in ("bool", "int", "float", "timestamp"):
        TextConstructor.add_constructor(f"tag:yaml.org,2002:{tag}", as_text)
    return TextConstructor


def load(text: str, source: str = "<string>", constructor: Any = None) -> Any:
    """Parse YAML, turning parser errors into a one-line error with file and line.

    ``constructor`` replaces the safe loader's constructor class (specs use
    one that keeps version-like scalars as the text that was written).
    """
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    check_flow_depth(text, source)
    yaml = _yaml("safe")
    if constructor is not None:
        yaml.Constructor = constructor
    try:
        import warnings

        with warnings.catch_warnings():
            # ruamel warns (on stderr, several lines) about legal oddities such as a reused anchor.
            warnings.simplefilter("ignore")
            data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise SpecError(f"malformed YAML in {where}: {_first_line(exc.problem or exc.context)}") from None
    except YAMLError as exc:
        raise SpecError(f"malformed YAML in {source}: {_first_line(exc)}") from None
    except RecursionError:
        raise SpecError(f"malformed YAML in {source}: nested too deeply") from None
    except Exception as exc:  # the parser's own failures on hostile text
        # e.g. an integer of 5,000 digits (ValueError), a duplicate key type error
        import logging  # not at import time: reading a file must not cost CLI start-up a logging import

        logging.getLogger(__name__).debug("YAML parser failed on %s", source, exc_info=True)
        raise SpecError(f"malformed YAML in {source}: {_first_line(exc)}") from None
    check_expansion(data, source)
    return data


def _first_line(reason: object) -> str:
    """ruamel's messages go on with a second line quoting the input; ours are one line."""
    lines = str(reason).strip().splitlines()
    return lines[0].strip() if lines else "unreadable"


def check_flow_depth(text: str, source: str) -> None:
    """Refuse text whose ``[``/``{`` nest deeper than :data:`MAX_FLOW_DEPTH`.

    Counted over the raw text (brackets in quoted strings count too, and
    a closing bracket never takes the count below zero), so no quoting trick
    hides a deep nest; a real file never comes near the bound.
    """
    if text.count("[") + text.count("{") <= MAX_FLOW_DEPTH:
        return
    steps = (1 if c in "[{" else -1 for c in text if c in "[]{}")
    depth = max(itertools.accumulate(steps, lambda level, step: max(0, level + step)), default=0)
    if depth > MAX_FLOW_DEPTH:
        raise SpecError(f"malformed YAML in {source}: brackets nested more than {MAX_FLOW_DEPTH} deep")


def check_expansion(data: Any, source: str) -> None:
    """Refuse loaded data that is recursive, too deep, or whose aliases expand beyond the bound.

    One pass over the distinct objects (aliases are shared objects, so the
    expanded size of each is computed once): linear in the file, whatever
    the expansion.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()
    distinct = 0

    def size(node: Any, depth: int) -> int:
        nonlocal distinct
        if isinstance(node, dict):
            children: Any = itertools.chain.from_iterable(node.items())
        elif isinstance(node, (list, tuple, set, frozenset)):
            children = node
        else:
            distinct += 1
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SpecError(f"malformed YAML in {source}: an alias refers to itself (a recursive structure)")
        if depth > MAX_DEPTH:
            raise SpecError(f"malformed YAML in {source}: nested more than {MAX_DEPTH} levels deep")
        active.add(key)
        distinct += 1
        total = 1 + sum(size(child, depth + 1) for child in children)
        active.discard(key)
        sizes[key] = total
        return total

    expanded = size(data, 0)
    if expanded > MAX_EXPANDED and expanded > distinct:
        raise SpecError(
            f"malformed YAML in {source}: aliases expand to more than {MAX_EXPANDED:,} values",
            hint="Write the values out instead of repeating them through '*' aliases.",
        )


def read_text(path: str | os.PathLike[str], *, what: str = "file", limit: int = YAML_LIMIT) -> str:
    """A text file's content, or a one-line :class:`SpecError` saying why not."""
    return _read_text(path, what=what, limit=limit, error=SpecError)


def load_file(path: str | os.PathLike[str], *, what: str = "file", constructor: Any = None) -> Any:
    return load(read_text(path, what=what), str(path), constructor=constructor)


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


def dump_json(data: Any, header: str | None = None) -> str:
    """``data`` as JSON, which is YAML too, under ``# header`` comment lines.

    For files ReproMan reads on every start (the inventory): the JSON
    parser reads them in microseconds where importing the YAML library
    alone costs about 20 ms, and any YAML tool (or the old ReproMan) still
    reads them.
    """
    import json

    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    return "\n".join([*lines, json.dumps(data, indent=2, ensure_ascii=False, default=str)]) + "\n"


def load_json_first(text: str, source: str = "<string>") -> Any:
    """Read what :func:`dump_json` wrote without the YAML library; anything else (hand-written YAML) with it."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    if body.lstrip().startswith("{"):
        import json

        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            pass  # the YAML reader says what is wrong, with its limits
    return load(text, source)
