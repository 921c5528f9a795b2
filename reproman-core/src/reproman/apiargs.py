"""Checks of :mod:`reproman.api` arguments: wrong types are usage errors, the API's own objects are accepted.

An embedding application passes what its own code computed: ``None`` where
a name belongs, a number where a list belongs, or the very objects the API
returned (the spec :func:`reproman.api.retrace` gave, the resource
:func:`reproman.api.create` gave, the result :func:`reproman.api.run` gave).
The first kind must fail as a :class:`~reproman.errors.UsageError` saying
which argument and what it should be, not as an ``AttributeError`` deep
inside; the second must simply work. Each function here normalises one
kind of argument.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from reproman.errors import UsageError

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings
if TYPE_CHECKING:
    from typing import Any

    from reproman.resources.base import Resource
    from reproman.resources.session import Session
    from reproman.tracing.spec import EnvironmentSpec


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _fail(name: str, expected: str, value: Any) -> UsageError:
    return UsageError(f"argument {name} must be {expected}, got {_kind(value)}")


def text(value: Any, name: str, *, choices: Sequence[str] | None = None) -> str:
    """A string, one of ``choices`` if given."""
    if not isinstance(value, str):
        raise _fail(name, "text", value)
    if choices is not None and value not in choices:
        raise UsageError(f"argument {name} must be one of {', '.join(choices)}, got {value!r}"[:300])
    return value


def optional_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(name, "text or None", value)
    return value


def path(value: Any, name: str, *, optional: bool = False) -> str | None:
    """A file name (``str`` or ``os.PathLike``) as ``str``."""
    if value is None and optional:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if value == "":
        raise UsageError(f"argument {name} is empty: give a file name")
    if not isinstance(value, str):
        raise _fail(name, "a file name" + (" or None" if optional else ""), value)
    return value


def texts(value: Any, name: str) -> list[str]:
    """``None``, one string, or a list of strings, as a list."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
        return [os.fspath(v) for v in value]
    raise _fail(name, "a list of text", value)


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(name, "True or False", value)
    return value


def key_values(value: Any, name: str) -> list[str] | dict[str, Any] | None:
    """``KEY=VALUE`` strings (one or a list) or a mapping with text keys."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise _fail(name, "a mapping with text keys", value)
        return dict(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _fail(name, "a list of KEY=VALUE strings or a mapping", value)


def resref(value: Any, name: str = "resref", *, optional: bool = False) -> str | Resource | None:
    """A resource name or ID, or a :class:`~reproman.resources.base.Resource` the API returned."""
    from reproman.resources.base import Resource

    if isinstance(value, Resource) or (value is None and optional):
        return value  # type: ignore[no-any-return]
    if value == "":
        # Said the same way from Python and the command line (``-r ''``).
        raise UsageError("the resource name is empty", hint="Name a resource (see 'reproman ls'), or leave it out "
                         "for the default one.")
    if not isinstance(value, str):
        raise _fail(name, "a resource name or ID" + (" or None" if optional else ""), value)
    return value


def resref_name(value: Any, name: str = "resref") -> str:
    """Like :func:`resref`, but always the name (for commands that look it up in the inventory)."""
    from reproman.resources.base import Resource

    checked = resref(value, name)
    return checked.name if isinstance(checked, Resource) else str(checked)


def resref_type(value: Any) -> str:
    from reproman.resources.manage import RESREF_TYPES

    return text(value, "resref_type", choices=RESREF_TYPES)


def session_or_resref(value: Any, name: str = "resref") -> str | Resource | Session | None:
    """For commands that also take an open :class:`~reproman.resources.session.Session`."""
    from reproman.resources.session import Session

    if isinstance(value, Session):
        return value
    return resref(value, name, optional=True)


def spec(value: Any, name: str) -> str | EnvironmentSpec:
    """A spec file name, or an :class:`~reproman.tracing.spec.EnvironmentSpec` (as ``retrace`` returns)."""
    from reproman.tracing.spec import EnvironmentSpec

    if isinstance(value, EnvironmentSpec):
        return value
    return str(path(value, name))


def specs(value: Any, name: str) -> list[str | EnvironmentSpec]:
    """One spec or a list of them (file names or spec objects)."""
    from reproman.tracing.spec import EnvironmentSpec

    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise UsageError(f"argument {name} needs at least one spec")
    return [v if isinstance(v, EnvironmentSpec) else str(path(v, name)) for v in items]


def command(value: Any, name: str = "command") -> str | list[str] | None:
    """Shell code (one string) or argv (a list of strings)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _fail(name, "a string or a list of strings", value)


def job_queries(value: Any) -> list[str]:
    """Job IDs: strings, or what ``run`` and ``jobs`` returned (a result, a record, a row)."""
    from reproman.jobs.commands import RunResult
    from reproman.jobs.spec import JobSpec

    items = list(value) if isinstance(value, (list, tuple)) else [] if value is None else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, RunResult):
            item = item.job.jobid
        elif isinstance(item, JobSpec):
            item = item.jobid
        elif isinstance(item, Mapping) and isinstance(item.get("jobid"), str):
            item = item["jobid"]
        if not isinstance(item, str):
            raise _fail("queries", "job IDs (text) or results of run/jobs", item)
        out.append(item)
    return out
