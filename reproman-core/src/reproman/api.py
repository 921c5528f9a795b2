"""The public Python API: the same commands as the CLI, returning data.

Every function takes the parameters of the ReproMan API specification with
the same names and defaults, returns records instead of printing, and raises
:class:`reproman.errors.ReproManError` subclasses. This module is a thin
front: it checks the arguments an embedding application passes
(:mod:`reproman.apiargs`: a wrong type is a ``UsageError`` naming the
argument) and hands them to the command module that does the work:

========================================================  ==========================================
``backend_parameters create delete start stop login``     :mod:`reproman.resources.commands`
``execute ls``
``run jobs``                                              :mod:`reproman.jobs.commands`
``rerun``                                                 :mod:`reproman.jobs.rerun`
``retrace diff``                                          :mod:`reproman.tracing.commands`
``install``                                               :mod:`reproman.tracing.install`
``plugins``                                               :mod:`reproman.plugins.manager`
========================================================  ==========================================

Nothing in ReproMan imports this module back: command modules call each
other, never the API. Implementations are imported inside each function so
``import reproman.api`` stays cheap; the types the functions return are
importable from here too (``from reproman.api import RunResult``), loaded on
first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings

if TYPE_CHECKING:
    from typing import Any

    from reproman.jobs.commands import RunResult as RunResult
    from reproman.jobs.compare import JobDiff as JobDiff
    from reproman.jobs.rerun import RerunResult as RerunResult
    from reproman.jobs.spec import JobSpec as JobSpec
    from reproman.jobs.status import JobStatus as JobStatus
    from reproman.resources.base import Resource as Resource
    from reproman.resources.landing import LandingReport as LandingReport
    from reproman.resources.session import CommandResult as CommandResult
    from reproman.resources.session import Session as Session
    from reproman.tracing.diff import DiffReport as DiffReport
    from reproman.tracing.install import InstallResult as InstallResult
    from reproman.tracing.spec import EnvironmentSpec as EnvironmentSpec
    from reproman.tracing.strace import TracedResult as TracedResult

#: The commands (the types they return are importable from here too, but are not commands).
__all__ = [
    "backend_parameters", "create", "delete", "diff", "execute", "install", "jobs",
    "login", "ls", "plugins", "rerun", "retrace", "run", "start", "stop",
]

#: The types the API returns or accepts, by the module they live in (see :func:`__getattr__`).
_TYPES = {
    "CommandResult": "reproman.resources.session",
    "DiffReport": "reproman.tracing.diff",
    "EnvironmentSpec": "reproman.tracing.spec",
    "InstallResult": "reproman.tracing.install",
    "JobDiff": "reproman.jobs.compare",
    "JobSpec": "reproman.jobs.spec",
    "JobStatus": "reproman.jobs.status",
    "LandingReport": "reproman.resources.landing",
    "RerunResult": "reproman.jobs.rerun",
    "Resource": "reproman.resources.base",
    "RunResult": "reproman.jobs.commands",
    "Session": "reproman.resources.session",
    "TracedResult": "reproman.tracing.strace",
}


def __getattr__(name: str) -> object:
    """The result types, imported when first asked for (``import reproman.api`` imports none of them)."""
    module = _TYPES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def backend_parameters(backends: Sequence[str] | str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Parameters of each resource type (all installed types, or ``backends``).

    One list per type, each parameter a mapping with ``name``, ``type``,
    ``default``, ``required``, ``choices``, ``doc`` and, for a secret
    parameter, the ``secret_variable`` its value comes from after ``create``
    (None for the others).
    """
    from reproman import apiargs
    from reproman.resources import commands

    return commands.backend_parameters(apiargs.texts(backends, "backends"))


def create(name: str, resource_type: str, backend_parameters: Sequence[str] | Mapping[str, Any] | None = None) -> Resource:
    """Create a computation environment and record it in the inventory; returns the live resource."""
    from reproman import apiargs
    from reproman.resources import commands

    apiargs.text(name, "name")
    apiargs.text(resource_type, "resource_type")
    return commands.create(name, resource_type, apiargs.key_values(backend_parameters, "backend_parameters"))


def delete(
    resref: str,
    resref_type: str = "auto",
    skip_confirmation: bool = False,
    force: bool = False,
    confirm: Callable[[str], bool] | None = None,
) -> str:
    """Delete a computation environment; returns its name.

    Without ``skip_confirmation`` the deletion must be confirmed by
    ``confirm(question)`` (the CLI asks on the terminal); without a
    ``confirm`` callable nothing is deleted. ``force`` removes the inventory
    entry even when the backend cannot be reached.
    """
    from reproman import apiargs
    from reproman.resources import commands

    return commands.delete(
        apiargs.resref_name(resref), apiargs.resref_type(resref_type),
        skip_confirmation=apiargs.flag(skip_confirmation, "skip_confirmation"),
        force=apiargs.flag(force, "force"), confirm=confirm,
    )


def start(resref: str, resref_type: str = "auto") -> Resource:
    """Start a computation environment; returns the resource with its new status."""
    from reproman import apiargs
    from reproman.resources import commands

    return commands.start(apiargs.resref(resref), apiargs.resref_type(resref_type))


def stop(resref: str, resref_type: str = "auto") -> Resource:
    """Stop a computation environment; returns the resource with its new status."""
    from reproman import apiargs
    from reproman.resources import commands

    return commands.stop(apiargs.resref(resref), apiargs.resref_type(resref_type))


def login(resref: str, resref_type: str = "auto") -> int:
    """Interactive shell on a computation environment; returns its exit status."""
    from reproman import apiargs
    from reproman.resources import commands

    return commands.login(apiargs.resref(resref), apiargs.resref_type(resref_type))


def execute(
    command: str,
    args: Sequence[str] = (),
    resref: str | None = None,
    resref_type: str = "auto",
    internal: bool = False,
    trace: bool = False,
    *,
    on_output: Callable[[int, bytes], None] | None = None,
) -> CommandResult | LandingReport | bool | None:
    """Execute a command in a computation environment.

    Returns the :class:`CommandResult` (stdout, stderr and exit code apart;
    a :class:`TracedResult` with ``trace``, whose ``spec`` is the
    environment of the files the command opened); a non-zero exit is not an
    exception. With ``internal`` the command is a session operation
    (``mkdir PATH``, ``isdir PATH``, ``put SRC DEST``, ``get SRC DEST``,
    ``chown OWNER PATH``, ``chmod MODE PATH``) and its return value is
    returned: a bool for ``isdir``, the :class:`LandingReport` of ``get``,
    else None.

    The command's output is bytes (``result.stdout_bytes``; ``result.stdout``
    is a text view). ``on_output(stream, chunk)`` receives it as it arrives
    instead (1 stdout, 2 stderr). A :class:`KeyboardInterrupt` while it runs
    stops the command and its process group on the resource.
    """
    from reproman import apiargs
    from reproman.errors import UsageError
    from reproman.resources import commands

    if not command:
        raise UsageError("no command given")
    apiargs.text(command, "command")
    if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
        raise UsageError(f"argument args must be a list of text, got {type(args).__name__}")
    return commands.execute(
        command, list(args), apiargs.resref(resref, optional=True), apiargs.resref_type(resref_type),
        internal=apiargs.flag(internal, "internal"), trace=apiargs.flag(trace, "trace"), on_output=on_output,
    )


def ls(
    resrefs: Sequence[str] | str | None = None,
    resref_type: str = "auto",
    verbose: bool = False,
    refresh: bool = False,
) -> list[dict[str, Any]]:
    """Known resources as records (name, type, id, status, and with ``verbose`` all attributes).

    The built-in ``local`` resource (this machine, the default) is listed
    first unless the inventory has its own resource of that name.
    """
    from reproman import apiargs
    from reproman.resources import commands

    return commands.ls(apiargs.texts(resrefs, "resrefs"), apiargs.resref_type(resref_type),
                       verbose=apiargs.flag(verbose, "verbose"), refresh=apiargs.flag(refresh, "refresh"))


def plugins() -> list[dict[str, Any]]:
    """Installed plugin distributions, versions and the components each provides."""
    from reproman.plugins.manager import get_plugin_manager

    return get_plugin_manager().describe()


def run(
    command: Sequence[str] | str | None = None,
    message: str | None = None,
    resref: str | Resource | None = None,
    resref_type: str = "auto",
    list_: str | None = None,
    submitter: str | None = None,
    orchestrator: str | None = None,
    batch_spec: str | None = None,
    batch_parameters: Sequence[str] | Mapping[str, Any] | None = None,
    job_specs: Sequence[str] | None = None,
    job_parameters: Sequence[str] | Mapping[str, Any] | None = None,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    follow: bool | str = False,
    *,
    keep_remote: bool = False,
    trace: bool = False,
) -> RunResult | dict[str, list[dict[str, Any]]]:
    """Run a command on a resource through a submitter and an orchestrator.

    Returns the :class:`RunResult` (the job record, and with ``follow`` each
    subjob's status and the fetched paths), or, with ``list_``, the
    catalogue of submitters/orchestrators/parameters. Every job records the
    environment it ran in and, once fetched, its outputs' checksums;
    ``trace`` adds an strace-based trace of each subjob.
    """
    from reproman import apiargs
    from reproman.jobs import commands

    return commands.run(
        command=apiargs.command(command), message=apiargs.optional_text(message, "message"),
        resref=apiargs.resref(resref, optional=True), resref_type=apiargs.resref_type(resref_type),
        list_=apiargs.optional_text(list_, "list_"),
        submitter=apiargs.optional_text(submitter, "submitter"),
        orchestrator=apiargs.optional_text(orchestrator, "orchestrator"),
        batch_spec=apiargs.path(batch_spec, "batch_spec", optional=True),
        batch_parameters=apiargs.key_values(batch_parameters, "batch_parameters"),
        job_specs=apiargs.texts(job_specs, "job_specs"),
        job_parameters=apiargs.key_values(job_parameters, "job_parameters"),
        inputs=apiargs.texts(inputs, "inputs"), outputs=apiargs.texts(outputs, "outputs"), follow=follow,
        keep_remote=apiargs.flag(keep_remote, "keep_remote"), trace=apiargs.flag(trace, "trace"),
    )


def rerun(
    job: str,
    resref: str | Resource | None = None,
    resref_type: str = "auto",
    failed: bool = False,
    follow: bool | str = False,
    verify: bool = False,
    trace: bool = False,
    *,
    keep_remote: bool = False,
    job_parameters: Sequence[str] | Mapping[str, Any] | None = None,
) -> RerunResult:
    """Submit a recorded job again (same command, inputs, outputs, batch, parameters), here or on ``resref``.

    ``failed`` resubmits only the subjobs that failed; ``verify`` follows the
    rerun and compares it with the original (``result.comparison.equal``
    when every output is identical). Existing local outputs that differ are
    kept; the rerun's versions land beside them (see ``result.job.extra["kept"]``),
    except files a subjob that did not succeed left where none was, unchanged
    since: nobody's result, they are replaced.
    ``job_parameters`` (as for :func:`run`) change the original's for the
    rerun; ``env`` merges variable by variable over the original's.
    """
    from reproman import apiargs
    from reproman.jobs import rerun as rerun_module

    return rerun_module.rerun(
        apiargs.text(job, "job"), resref=apiargs.resref(resref, optional=True),
        resref_type=apiargs.resref_type(resref_type), failed=apiargs.flag(failed, "failed"),
        follow=follow, verify=apiargs.flag(verify, "verify"),
        trace=apiargs.flag(trace, "trace"), keep_remote=apiargs.flag(keep_remote, "keep_remote"),
        job_parameters=apiargs.key_values(job_parameters, "job_parameters"),
    )


def jobs(
    queries: Sequence[str] | str | None = None,
    action: str = "auto",
    all_: bool = False,
    status: bool = False,
    *,
    overwrite: bool = False,
    keep_remote: bool = False,
) -> list[dict[str, Any]]:
    """View and manage jobs: list, show, delete, fetch, cancel (auto: fetch named jobs, else list).

    Returns one mapping per job (``jobid`` and what the action did or
    found). A fetch never replaces a local output that changed after the
    job was submitted unless ``overwrite``; fetching and deleting free the
    job's files on the resource unless ``keep_remote``.
    """
    from reproman import apiargs
    from reproman.jobs import commands

    return commands.jobs(
        queries=apiargs.job_queries(queries), action=apiargs.text(action, "action"),
        all_=apiargs.flag(all_, "all_"), status=apiargs.flag(status, "status"),
        overwrite=apiargs.flag(overwrite, "overwrite"), keep_remote=apiargs.flag(keep_remote, "keep_remote"),
    )


def retrace(
    path: Sequence[str] | str | None = None,
    spec: str | None = None,
    output_file: str | None = None,
    resref: str | Resource | Session | None = None,
    resref_type: str = "auto",
) -> EnvironmentSpec:
    """Gather package information for paths or a ReproZip trace; returns the :class:`EnvironmentSpec`.

    ``resref`` may also be an open :class:`Session` (used, not closed).
    """
    from reproman import apiargs
    from reproman.tracing import commands

    return commands.retrace(
        path=apiargs.texts(path, "path"), spec=apiargs.path(spec, "spec", optional=True),
        output_file=apiargs.path(output_file, "output_file", optional=True),
        resref=apiargs.session_or_resref(resref), resref_type=apiargs.resref_type(resref_type),
    )


def diff(prov1: str | EnvironmentSpec, prov2: str | EnvironmentSpec, satisfies: bool = False) -> DiffReport | JobDiff:
    """Compare two environment specs (files, or specs ``retrace`` returned): a :class:`DiffReport`.

    Given two job IDs instead, compare the jobs (a :class:`JobDiff`): each
    output by the checksum recorded at fetch (``result.equal`` when all are
    identical) and the environments each subjob ran in.
    """
    from reproman import apiargs
    from reproman.tracing import commands

    return commands.diff(prov1=apiargs.spec(prov1, "prov1"), prov2=apiargs.spec(prov2, "prov2"),
                         satisfies=apiargs.flag(satisfies, "satisfies"))


def install(
    resref: str | Resource | Session | None,
    spec: Sequence[str | EnvironmentSpec] | str | EnvironmentSpec,
    resref_type: str = "auto",
) -> list[InstallResult]:
    """Install the packages of environment specs (files, or specs ``retrace`` returned) on a resource.

    Returns one :class:`InstallResult` per distribution entry.
    """
    from reproman import apiargs
    from reproman.tracing import install as install_module

    return install_module.install(resref=apiargs.session_or_resref(resref), spec=apiargs.specs(spec, "spec"),
                                  resref_type=apiargs.resref_type(resref_type))
