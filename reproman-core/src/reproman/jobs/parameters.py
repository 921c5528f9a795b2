"""The job parameters every submitter understands (``reproman run --list parameters``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from reproman.plugins.records import Parameter

JOB_PARAMETERS: tuple[Parameter, ...] = (
    Parameter(name="root_directory", doc="Directory on the resource under which jobs and working directories live. "
              "Default: ~/.reproman/run-root (plain orchestrator)."),
    Parameter(name="working_directory", doc="Directory on the resource the command runs in. "
              "Default: a per-job directory under root_directory (plain), the dataset (datalad)."),
    Parameter(name="memory", doc="Memory per subjob, e.g. 4G or 500M (scheduler directive)."),
    Parameter(name="num_processes", type="int", minimum=1, doc="CPUs per subjob for schedulers; subjobs run at once for "
              "the local submitter (default: number of CPUs on the resource)."),
    Parameter(name="num_nodes", type="int", minimum=1, doc="Nodes per subjob (scheduler directive)."),
    Parameter(name="walltime", doc="Wall-clock limit per subjob, HH:MM:SS (scheduler directive)."),
    Parameter(name="queue", doc="Queue or partition to submit to (scheduler directive)."),
    Parameter(name="account", doc="Account or project to charge (scheduler directive)."),
    Parameter(name="qos", doc="Quality of service or priority class (scheduler directive)."),
    Parameter(name="gpus", type="int", minimum=1, doc="GPUs per subjob, where the scheduler has them."),
    Parameter(name="throttle", type="int", minimum=1, doc="At most this many subjobs of an array run at once (%N)."),
    Parameter(name="max_array_size", type="int", minimum=1, doc="Split arrays larger than the site's maximum array size."),
    Parameter(name="container", doc="Run each subjob inside this container image (e.g. a Singularity/Apptainer "
              "image path); the command is prefixed with 'singularity exec IMAGE'."),
    Parameter(name="launcher", type="bool", doc="Run all subjobs inside one allocation with the TACC-style "
              "launcher instead of an array job."),
    Parameter(name="directives", type="list", doc="Extra scheduler directives passed through verbatim, "
              "comma-separated, e.g. '--constraint=skylake,--exclusive' (write \\, for a comma inside one, or give a "
              "list in a job spec)."),
    Parameter(name="env", type="list", doc="Environment variables for the command, KEY=VALUE, comma-separated."),
    Parameter(name="max_poll_interval", type="float", doc="Longest wait in seconds between two status polls of a "
              "followed job (default: [jobs] max_poll_interval, else 60); polls back off up to it as the job ages."),
)

#: Parameters that are about where and how ReproMan stages work, not the scheduler.
GENERIC = frozenset({"root_directory", "working_directory", "container", "env", "max_poll_interval"})


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


def check_env_name(name: str) -> str:
    """``name`` if it can be exported by ``sh``, else ValueError.

    The runscript writes ``NAME=VALUE; export NAME``: the value is quoted,
    the name cannot be, so ``env=A;touch x;B=1`` would run ``touch``.
    """
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{name[:40]!r} is not an environment variable name (letters, digits and '_', "
                         "not starting with a digit)")
    return name


def check_job_spec(data: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Raise a :class:`UsageError` naming ``path`` for a known parameter whose value has the wrong type.

    Names are checked later, against the submitter, with suggestions; this
    check runs per file so that the message can say which file holds the
    bad value.
    """
    from reproman.errors import UsageError

    known = {p.name: p for p in JOB_PARAMETERS}
    for key, value in data.items():
        param = known.get(str(key))
        if param is None or value is None:
            continue
        try:
            if param.name == "env":
                if not isinstance(value, (Mapping, str, list)):
                    raise ValueError("expected KEY=VALUE items or a mapping")
                items = value.split(",") if isinstance(value, str) else value
                for item in items:
                    if isinstance(value, Mapping):
                        check_env_name(str(item))
                        continue
                    name, sep, _ = str(item).strip().partition("=")
                    if not isinstance(item, str) or not sep:
                        raise ValueError(f"expected KEY=VALUE, got {item!r}"[:80])
                    check_env_name(name)
            else:
                param.convert(value)
        except ValueError as exc:
            raise UsageError(f"job spec {path}: {key}: {exc}") from None
