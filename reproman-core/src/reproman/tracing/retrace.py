"""The retrace engine: which distributions provide a set of files.

1. All paths are canonicalised on the resource in one command
   (:mod:`reproman.tracing.canonical`).
2. The registered tracers run in ``order`` (debian, redhat, conda, venv,
   pip, git, svn, docker...); each sees only the files no earlier tracer
   claimed, in one call, and asks its resource in a bounded number of
   commands.
3. Whatever nobody claimed goes to the spec's ``files:``, under the name the
   user gave.

Round trips are therefore 1 + (a few per tracer), independent of the number
of files, which is what makes retrace over SSH usable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from reproman.errors import CommandError, TracingError
from reproman.tracing.canonical import DIR, MISSING, PathInfo, canonicalize
from reproman.tracing.spec import EnvironmentSpec

if TYPE_CHECKING:
    from reproman.resources.session import Session
    from reproman.tracing.tracer import Tracer

lgr = logging.getLogger(__name__)


def tracer_classes() -> list[type[Tracer]]:
    """Registered tracer classes in the order they see files (imports them)."""
    from reproman.plugins.manager import get_plugin_manager

    return [record.load() for record in get_plugin_manager().tracers()]


def _is_reference(info: PathInfo) -> bool:
    """An argument that names no file: maybe an image (``busybox:latest``, ``sha256:...``)."""
    given = info.given
    return info.kind == MISSING and not given.startswith(("/", "./", "../", "~")) and given not in (".", "..")


def trace_paths(
    session: Session,
    paths: Iterable[str],
    tracers: Sequence[type[Tracer]] | None = None,
    *,
    required: Iterable[str] = (),
) -> EnvironmentSpec:
    """Trace ``paths`` on the resource behind ``session`` into an environment spec.

    A path that does not exist is kept under ``files:`` with a warning (a
    ReproZip trace names temporary files long gone), unless it is in
    ``required`` (the paths a user typed): a typo there is a
    :class:`TracingError`, not a spec that records it.
    """
    given = list(dict.fromkeys(p for p in paths if p))
    spec = EnvironmentSpec()
    if not given:
        return spec
    classes = tracer_classes() if tracers is None else list(tracers)
    started = time.perf_counter()
    infos = canonicalize(session, given)
    lgr.debug("canonicalised %d paths in %.3f s", len(infos), time.perf_counter() - started)

    references = [i.given for i in infos if _is_reference(i)]
    traced: dict[str, None] = {}  # insertion-ordered set of what tracers see
    dirs: set[str] = set()
    for info in infos:
        if _is_reference(info):
            continue
        if info.is_link:
            traced[info.absolute] = None
        traced[info.canonical] = None
        if info.kind == DIR:
            dirs.add(info.canonical)

    unclaimed = dict(traced)
    open_refs = list(references)
    for cls in classes:
        if not unclaimed and not open_refs:
            break
        candidates = [p for p in unclaimed if cls.handles_dirs or p not in dirs]
        if cls.accepts_references:
            candidates += open_refs
        if not candidates:
            continue
        began = time.perf_counter()
        tracer = cls(session)
        try:
            result = tracer.identify(candidates)
        except CommandError as exc:
            raise TracingError(f"{cls.spec_name or cls.__name__} tracer failed: {exc}") from exc
        spec.add(result.distributions)
        for path in result.claimed:
            unclaimed.pop(path, None)
        open_refs = [r for r in open_refs if r not in result.claimed]
        lgr.debug("%s claimed %d of %d paths in %.3f s", cls.__name__, len(result.claimed), len(candidates),
                  time.perf_counter() - began)

    files: list[str] = []
    for info in infos:
        if _is_reference(info):
            if info.given in open_refs:
                files.append(info.given)
            continue
        target_open = info.canonical in unclaimed
        if info.is_link:
            link_open = info.absolute in unclaimed
            if link_open and target_open:
                files.append(info.absolute)
            elif target_open and info.kind != DIR:
                # A packaged link into an unpackaged file: the content is not
                # accounted for. (A packaged link to a directory, like
                # /usr/bin/X11 -> ., says nothing about the directory's files.)
                files.append(info.canonical)
        elif target_open:
            files.append(info.canonical)
    spec.files = sorted(set(files))
    absent = [i.given for i in infos if i.kind == MISSING and (not _is_reference(i) or i.given in open_refs)]
    must_exist = set(required)
    typed = [p for p in absent if p in must_exist]
    if typed:
        shown = ", ".join(typed[:5]) + (f" and {len(typed) - 5} more" if len(typed) > 5 else "")
        where = getattr(session, "name", None) or "the resource"
        refs = any(not p.startswith(("/", "./", "../", "~")) for p in typed)
        raise TracingError(f"no such file or directory on {where}{' (and no tracer knows the name)' if refs else ''}"
                           f": {shown}", hint="Check the path(s); nothing was written.")
    if absent:
        # Kept under files: (what was asked about is part of the record), but
        # a typo in a path should not pass unnoticed.
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        lgr.warning("%d path(s) do not exist on the resource: %s", len(absent), shown)
    lgr.info("traced %d paths into %d distributions and %d other files in %.3f s", len(given),
             len(spec.distributions), len(spec.files), time.perf_counter() - started)
    return spec
