"""Job parameters: core's own (``reproman run --list parameters``) and those submitters declare.

Core's parameters have one meaning for every submitter that names them in
its :class:`~reproman.plugins.records.SubmitterType` (``memory`` is memory
everywhere); a submitter adds its own with :class:`Parameter` records.
:func:`submitter_parameters` is the one place both are put together, for
validation (:mod:`reproman.jobs.options`), ``run --list`` and
``plugins --check``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reproman.config import MAX_SECONDS
from reproman.plugins.records import Parameter
from reproman.textlist import split_escaped

if TYPE_CHECKING:
    from reproman.plugins.records import SubmitterType

#: The largest count (CPUs, nodes, GPUs, subjobs at once) a job parameter takes: more than any machine or
#: scheduler has, so a larger one is a typo (1e9 CPUs) or an overflow waiting in a scheduler's 32-bit field.
MAX_COUNT = 1_000_000

JOB_PARAMETERS: tuple[Parameter, ...] = (
    Parameter(name="root_directory", doc="Directory on the resource under which jobs and working directories live. "
              "Default: the resource's own (~/.reproman/run-root unless its backend chooses another)."),
    Parameter(name="working_directory", doc="Directory on the resource the command runs in. "
              "Default: a per-job directory under root_directory (plain), the dataset (datalad)."),
    Parameter(name="memory", doc="Memory per subjob, e.g. 4G or 500M (scheduler directive)."),
    Parameter(name="num_processes", type="int", minimum=1, maximum=MAX_COUNT, doc="CPUs per subjob for schedulers; subjobs run at once for "
              "the local submitter (default: number of CPUs on the resource)."),
    Parameter(name="num_nodes", type="int", minimum=1, maximum=MAX_COUNT, doc="Nodes per subjob (scheduler directive)."),
    Parameter(name="walltime", doc="Wall-clock limit per subjob, HH:MM:SS (scheduler directive)."),
    Parameter(name="queue", doc="Queue or partition to submit to (scheduler directive)."),
    Parameter(name="account", doc="Account or project to charge (scheduler directive)."),
    Parameter(name="qos", doc="Quality of service or priority class (scheduler directive)."),
    Parameter(name="gpus", type="int", minimum=1, maximum=MAX_COUNT, doc="GPUs per subjob, where the scheduler has them."),
    Parameter(name="throttle", type="int", minimum=1, maximum=MAX_COUNT, doc="At most this many subjobs of an array run at once (%N)."),
    Parameter(name="max_array_size", type="int", minimum=1, maximum=MAX_COUNT, doc="Split arrays larger than the site's maximum array size."),
    Parameter(name="container", doc="Run each subjob inside this container image (e.g. a Singularity/Apptainer "
              "image path); the command is prefixed with 'singularity exec IMAGE'."),
    Parameter(name="launcher", type="bool", doc="Run all subjobs inside one allocation with the TACC-style "
              "launcher instead of an array job."),
    Parameter(name="directives", type="list", doc="Extra scheduler directives passed through verbatim, "
              "comma-separated, e.g. '--constraint=skylake,--exclusive' (write \\, for a comma inside one, or give a "
              "list in a job spec)."),
    Parameter(name="env", type="list", doc="Environment variables for the command, KEY=VALUE, comma-separated "
              "(write \\, for a comma in a value and \\\\ for a backslash); merged name by name over a job spec's."),
    Parameter(name="max_poll_interval", type="float", minimum=0.01, maximum=MAX_SECONDS, doc="Longest wait in seconds between two status polls of a "
              "followed job (default: [jobs] max_poll_interval, else 60); polls back off up to it as the job ages."),
)

#: Parameters that are about where and how ReproMan stages work, not the scheduler: every submitter takes them.
GENERIC = frozenset({"root_directory", "working_directory", "container", "env", "max_poll_interval"})

CORE = {p.name: p for p in JOB_PARAMETERS}


def submitter_parameters(submitter: SubmitterType) -> dict[str, Parameter]:
    """Every job parameter ``submitter`` takes, by name: the generic ones, core's it names, and its own.

    A name that is not core's (a plugin written before parameters had
    types) becomes an undocumented text parameter, as it always behaved.
    Raises :class:`~reproman.errors.PluginError` when the submitter
    redeclares one of core's parameters (``memory`` cannot mean one thing
    for Slurm and another for a plugin).
    """
    from reproman.errors import PluginError

    found = {name: CORE[name] for name in sorted(GENERIC)}
    for item in submitter.job_parameters:
        if isinstance(item, Parameter):
            if item.name in CORE:
                raise PluginError(
                    submitter.describe_problem(f"its job parameter {item.name!r} redeclares one of core's"),
                    hint=f"Name it as a string (\"{item.name}\") to take core's, or give it another name.",
                )
            found[item.name] = item
        else:
            found[item] = CORE.get(item) or Parameter(
                name=item, doc=f"(declared by the {submitter.name} submitter without a type or description)")
    return found


def declaration_problems(submitter: SubmitterType) -> list[str]:
    """What ``plugins --check`` reports about a submitter's job parameters beyond the record's own checks."""
    problems = []
    unknown = [name for name in submitter.job_parameters if isinstance(name, str) and name not in CORE]
    if unknown:
        problems.append(f"job parameters {', '.join(map(repr, unknown))} are not known to core; declare "
                        f"{'it' if len(unknown) == 1 else 'them'} as Parameter records to give a type and a description")
    problems += [f"its job parameter {p.name!r} redeclares one of core's; name it as a string instead"
                 for p in submitter.own_parameters if p.name in CORE]
    return problems


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


def env_mapping(raw: Any) -> dict[str, str]:
    """The ``env`` parameter as ``{NAME: value}``; ValueError for a bad item or name.

    Text (``A=1,B=x y``: ``--jp env=``, the API's strings, a string in a job
    spec) is split at commas with :func:`reproman.textlist.split_escaped`,
    so ``\\,`` is a comma inside a value and ``\\\\`` a backslash. A list of
    ``KEY=VALUE`` items or a mapping is taken as it is, unescaped. Either
    way a value is everything after the first ``=``, byte for byte (spaces
    too); only spaces around a name are dropped (``A=1, B=2``).
    """
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        nested = [str(k) for k, v in raw.items() if isinstance(v, (Mapping, list, tuple))]
        if nested:
            raise ValueError(f"the value of {nested[0][:40]!r} must be text, not a list or mapping")
        return {check_env_name(str(k)): "" if v is None else str(v) for k, v in raw.items()}
    if isinstance(raw, str):
        items: list[Any] = [item for item in split_escaped(raw) if item.strip()]
        if not items:
            raise ValueError("expected KEY=VALUE items, got nothing")
    elif isinstance(raw, (list, tuple)):
        items = list(raw)
    else:
        raise ValueError("expected KEY=VALUE items or a mapping")
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=") if isinstance(item, str) else ("", "", "")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {item!r}"[:80])
        env[check_env_name(key.strip())] = value
    return env


def check_job_spec(data: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Raise a :class:`UsageError` naming ``path`` for a known parameter whose value has the wrong type.

    Names are checked later, against the submitter, with suggestions; this
    check runs per file so that the message can say which file holds the
    bad value.
    """
    from reproman.errors import UsageError

    for key, value in data.items():
        param = CORE.get(str(key))
        if param is None or value is None:
            continue
        try:
            if param.name == "env":
                env_mapping(value)
            else:
                param.convert(value)
        except ValueError as exc:
            raise UsageError(f"job spec {path}: {key}: {exc}") from None
