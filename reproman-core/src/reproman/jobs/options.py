"""Job parameters: merge ``--job-spec`` files and ``--job-parameter`` values, then validate.

Precedence, lowest first: each job spec file in the order given (nested
mappings merged key by key), then ``KEY=VALUE`` job parameters. Names are
checked against :data:`reproman.jobs.parameters.JOB_PARAMETERS` and against
what the chosen submitter honours, so a ``queue`` given to the ``local``
submitter fails before anything runs instead of being silently ignored.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from reproman.errors import UsageError
from reproman.jobs.parameters import GENERIC, JOB_PARAMETERS, check_env_name, check_job_spec
from reproman.plugins.records import Parameter, SubmitterType

KNOWN: dict[str, Parameter] = {p.name: p for p in JOB_PARAMETERS}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; mappings present in both are merged recursively."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_job_specs(paths: Sequence[str | os.PathLike[str]] | None) -> dict[str, Any]:
    """The merged content of the job spec files (later files win)."""
    from reproman.yamlio import load_file

    merged: dict[str, Any] = {}
    for path in paths or ():
        data = load_file(path, what="job spec")
        if data is None:
            continue
        if not isinstance(data, Mapping):
            raise UsageError(f"job spec {path} must be a YAML mapping of job parameters")
        check_job_spec(data, path)
        merged = deep_merge(merged, data)
    return merged


def parse_job_parameters(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["k=v", ...]`` (or a mapping) as a dict; a missing ``=`` is a usage error."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    result: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UsageError(f"job parameter {item!r} is not of the form KEY=VALUE")
        result[key.strip()] = value
    return result


def resolve_job_parameters(
    job_specs: Sequence[str | os.PathLike[str]] | None,
    job_parameters: Sequence[str] | Mapping[str, Any] | None,
    submitter: SubmitterType,
) -> dict[str, Any]:
    """Merged, validated and converted job parameters for ``submitter``."""
    given = deep_merge(load_job_specs(job_specs), parse_job_parameters(job_parameters))
    supported = set(GENERIC) | set(submitter.job_parameters)
    values: dict[str, Any] = {}
    for key, raw in given.items():
        if key not in KNOWN and key not in supported:
            close = difflib.get_close_matches(key, list(KNOWN), n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "See 'reproman run --list parameters'."
            raise UsageError(f"unknown job parameter {key!r}.", hint=hint)
        if key not in supported:
            raise UsageError(
                f"job parameter {key!r} is not supported by submitter {submitter.name!r}"
                f" (it supports: {', '.join(sorted(supported))}).",
                hint="Choose another submitter with --submitter, or drop the parameter.",
            )
        param = KNOWN.get(key)
        try:
            values[key] = _convert(param, raw) if param is not None else raw
        except (TypeError, ValueError) as exc:
            raise UsageError(f"job parameter {key!r}: {exc}") from None
    return values


def _convert(param: Parameter, raw: Any) -> Any:
    if param.name == "env":
        return env_mapping(raw)
    return param.convert(raw)


def env_mapping(raw: Any) -> dict[str, str]:
    """The ``env`` parameter as a mapping, from ``A=1,B=2``, a list of those, or a mapping."""
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return {check_env_name(str(k)): "" if v is None else str(v) for k, v in raw.items()}
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).strip().partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        env[check_env_name(key)] = value
    return env
