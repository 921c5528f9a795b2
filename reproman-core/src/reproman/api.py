"""The public Python API: the same commands as the CLI, returning data.

Every function takes the parameters of the ReproMan API specification with
the same names and defaults, returns records instead of printing, and raises
:class:`reproman.errors.ReproManError` subclasses. Implementations are
imported inside each function so ``import reproman.api`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings


if TYPE_CHECKING:
    from typing import Any

    from reproman.resources.base import Resource
    from reproman.resources.session import CommandResult
    from reproman.tracing.spec import EnvironmentSpec

__all__ = [
    "backend_parameters", "create", "delete", "diff", "execute", "install", "jobs",
    "login", "ls", "plugins", "rerun", "retrace", "run", "start", "stop",
]


def backend_parameters(backends: Sequence[str] | str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Parameters of each resource type (all installed types, or ``backends``)."""
    from reproman import apiargs
    from reproman.plugins.manager import get_plugin_manager

    backends = apiargs.texts(backends, "backends")
    manager = get_plugin_manager()
    types = [manager.resource_type(b) for b in backends] if backends else list(manager.components("resource type").values())
    return {
        t.name: [
            {"name": p.name, "type": p.type, "default": p.default, "required": p.required,
             "choices": list(p.choices) if p.choices else None, "doc": p.doc}
            for p in t.parameters
        ]
        for t in types
    }


def create(name: str, resource_type: str, backend_parameters: Sequence[str] | Mapping[str, Any] | None = None) -> Resource:
    """Create a computation environment and record it in the inventory."""
    from reproman import apiargs
    from reproman.resources.manage import create_resource

    apiargs.text(name, "name")
    apiargs.text(resource_type, "resource_type")
    return create_resource(name, resource_type, apiargs.key_values(backend_parameters, "backend_parameters"))


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
    from reproman.errors import ReproManError, ResourceError
    from reproman.resources.inventory import Inventory
    from reproman.resources.manage import find_record, forget_resource, instantiate

    resref, resref_type = apiargs.resref_name(resref), apiargs.resref_type(resref_type)
    skip_confirmation, force = apiargs.flag(skip_confirmation, "skip_confirmation"), apiargs.flag(force, "force")
    record = find_record(Inventory().load(), resref, resref_type)
    name = str(record["name"])
    if record.get("id") == "local" and record.get("type") == "shell" and name not in Inventory().load():
        raise ResourceError("the built-in local resource cannot be deleted")
    if not skip_confirmation:
        question = f"Delete resource {name!r} ({record.get('type')})?"
        if confirm is None or not confirm(question):
            raise ResourceError(f"not deleting {name!r}: not confirmed", hint="Pass skip_confirmation (-y) to skip the question.")
    try:
        resource = instantiate(record)
        resource.connect()
        resource.delete()
    except ReproManError:
        if not force:
            raise
    forget_resource(name)
    return name


def _lifecycle(resref: str, resref_type: str, verb: str) -> Resource:
    from reproman import apiargs
    from reproman.resources.manage import get_resource, update_resource

    resref, resref_type = apiargs.resref(resref), apiargs.resref_type(resref_type)
    resource = get_resource(resref, resref_type)
    resource.connect()
    getattr(resource, verb)()
    update_resource(resource)
    return resource


def start(resref: str, resref_type: str = "auto") -> Resource:
    """Start a computation environment."""
    return _lifecycle(resref, resref_type, "start")


def stop(resref: str, resref_type: str = "auto") -> Resource:
    """Stop a computation environment."""
    return _lifecycle(resref, resref_type, "stop")


def login(resref: str, resref_type: str = "auto") -> int:
    """Interactive shell on a computation environment; returns its exit status."""
    from reproman import apiargs
    from reproman.resources.manage import get_resource

    resref, resref_type = apiargs.resref(resref), apiargs.resref_type(resref_type)
    resource = get_resource(resref, resref_type)
    resource.connect()
    return resource.login()


INTERNAL_COMMANDS = ("mkdir", "isdir", "put", "get", "chown", "chmod")


def execute(
    command: str,
    args: Sequence[str] = (),
    resref: str | None = None,
    resref_type: str = "auto",
    internal: bool = False,
    trace: bool = False,
    *,
    on_output: Callable[[int, bytes], None] | None = None,
) -> CommandResult | Any:
    """Execute a command in a computation environment.

    Returns the :class:`~reproman.resources.session.CommandResult` (stdout,
    stderr and exit code apart); a non-zero exit is not an exception. With
    ``internal`` the command is a session operation (``mkdir PATH``,
    ``isdir PATH``, ``put SRC DEST``, ``get SRC DEST``, ``chown OWNER PATH``,
    ``chmod MODE PATH``) and its return value is returned. With ``trace``
    the result's files are traced afterwards (see ``retrace``).

    The command's output is bytes (``result.stdout_bytes``; ``result.stdout``
    is a text view). ``on_output(stream, chunk)`` receives it as it arrives
    instead (1 stdout, 2 stderr). A :class:`KeyboardInterrupt` while it runs
    stops the command and its process group on the resource.
    """
    from reproman import apiargs
    from reproman.errors import UsageError
    from reproman.resources.manage import get_resource

    if not command:
        raise UsageError("no command given")
    apiargs.text(command, "command")
    if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
        raise UsageError(f"argument args must be a list of text, got {type(args).__name__}")
    resref, resref_type = apiargs.resref(resref, optional=True), apiargs.resref_type(resref_type)
    internal, trace = apiargs.flag(internal, "internal"), apiargs.flag(trace, "trace")
    resource = get_resource(resref, resref_type)
    resource.connect()
    session = resource.get_session()
    try:
        if internal:
            if command not in INTERNAL_COMMANDS:
                raise UsageError(f"unknown internal command {command!r}; known: {', '.join(INTERNAL_COMMANDS)}")
            return _internal(session, command, list(args))
        if trace:
            from reproman.tracing.commands import trace_execution

            return trace_execution(session, [command, *args])
        return session.execute_interruptible([command, *args], on_output=on_output)
    finally:
        session.close()


def _internal(session: Any, command: str, args: list[str]) -> Any:
    from reproman.errors import UsageError

    arity = {"mkdir": (1, 1), "isdir": (1, 1), "put": (2, 2), "get": (1, 2), "chown": (2, 2), "chmod": (2, 2)}
    low, high = arity[command]
    if not low <= len(args) <= high:
        raise UsageError(f"internal {command} takes {low}{'' if low == high else f'-{high}'} argument(s)")
    if command == "mkdir":
        return session.mkdir(args[0], parents=True)
    if command == "isdir":
        return session.isdir(args[0])
    if command == "put":
        return session.put(args[0], args[1])
    if command == "get":
        return session.get(*args)
    if command == "chown":
        return session.chown(args[0], args[1])
    mode = int(args[0], 8) if args[0].isdigit() else args[0]
    return session.chmod(mode, args[1])


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
    from reproman.resources.inventory import Inventory
    from reproman.resources.manage import (
        LOCAL_RESOURCE_NAME,
        builtin_local_record,
        find_record,
        instantiate,
        update_resource,
    )

    resrefs = apiargs.texts(resrefs, "resrefs")
    resref_type = apiargs.resref_type(resref_type)
    verbose, refresh = apiargs.flag(verbose, "verbose"), apiargs.flag(refresh, "refresh")
    records = Inventory().load()
    if resrefs:
        selected = [find_record(records, r, resref_type) for r in resrefs]
    else:
        builtin = [] if LOCAL_RESOURCE_NAME in records else [builtin_local_record()]
        selected = builtin + list(records.values())
    if refresh:
        from reproman.errors import ReproManError
        from reproman.resources.parallel import map_bounded

        selected = [dict(r) for r in selected]

        def probe(record: dict[str, Any]) -> tuple[Resource, str | None]:
            resource = instantiate(record)
            return resource, resource.refresh_status()

        for record, outcome in zip(selected, map_bounded(probe, selected)):
            if isinstance(outcome, ReproManError):
                record["status"] = f"ERROR: {outcome}"
            else:
                resource, record["status"] = outcome
                update_resource(resource)
    rows: list[dict[str, Any]] = []
    for record in selected:
        row = record if verbose else {k: record.get(k) for k in ("name", "type", "id", "status")}
        rows.append(row)
    return rows


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
) -> Any:
    """Run a command on a resource through a submitter and an orchestrator.

    Returns the job record (with per-subjob status when ``follow`` is set),
    or, with ``list_``, the catalogue of submitters/orchestrators/parameters.
    Every job records the environment it ran in and, once fetched, its
    outputs' checksums; ``trace`` adds an strace-based trace of each subjob.
    """
    from reproman import apiargs
    from reproman.jobs.commands import run as _run

    return _run(
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
) -> Any:
    """Submit a recorded job again (same command, inputs, outputs, batch, parameters), here or on ``resref``.

    ``failed`` resubmits only the subjobs that failed; ``verify`` follows the
    rerun and compares it with the original (``result.comparison.equal``
    when every output is identical). Existing local outputs that differ are
    kept; the rerun's versions land beside them (see ``result.job.extra["kept"]``).
    """
    from reproman import apiargs
    from reproman.jobs.rerun import rerun as _rerun

    return _rerun(apiargs.text(job, "job"), resref=apiargs.resref(resref, optional=True),
                  resref_type=apiargs.resref_type(resref_type), failed=apiargs.flag(failed, "failed"),
                  follow=follow, verify=apiargs.flag(verify, "verify"),
                  trace=apiargs.flag(trace, "trace"), keep_remote=apiargs.flag(keep_remote, "keep_remote"))


def jobs(
    queries: Sequence[str] | str | None = None,
    action: str = "auto",
    all_: bool = False,
    status: bool = False,
    *,
    overwrite: bool = False,
    keep_remote: bool = False,
) -> Any:
    """View and manage jobs: list, show, delete, fetch, cancel (auto: fetch named jobs, else list).

    A fetch never replaces a local output that changed after the job was
    submitted unless ``overwrite``; fetching and deleting free the job's
    files on the resource unless ``keep_remote``.
    """
    from reproman import apiargs
    from reproman.jobs.commands import jobs as _jobs

    return _jobs(queries=apiargs.job_queries(queries), action=apiargs.text(action, "action"),
                 all_=apiargs.flag(all_, "all_"), status=apiargs.flag(status, "status"),
                 overwrite=apiargs.flag(overwrite, "overwrite"), keep_remote=apiargs.flag(keep_remote, "keep_remote"))


def retrace(
    path: Sequence[str] | str | None = None,
    spec: str | None = None,
    output_file: str | None = None,
    resref: Any = None,
    resref_type: str = "auto",
) -> Any:
    """Gather package information for paths or a ReproZip trace; returns the environment spec."""
    from reproman import apiargs
    from reproman.tracing.commands import retrace as _retrace

    return _retrace(path=apiargs.texts(path, "path"), spec=apiargs.path(spec, "spec", optional=True),
                    output_file=apiargs.path(output_file, "output_file", optional=True),
                    resref=apiargs.session_or_resref(resref), resref_type=apiargs.resref_type(resref_type))


def diff(prov1: str | EnvironmentSpec, prov2: str | EnvironmentSpec, satisfies: bool = False) -> Any:
    """Compare two environment specs (files, or specs ``retrace`` returned); the result says whether and how they differ.

    Given two job IDs instead, compare the jobs: each output by the checksum
    recorded at fetch (``result.equal`` when all are identical) and the
    environments each subjob ran in.
    """
    from reproman import apiargs
    from reproman.tracing.commands import diff as _diff

    return _diff(prov1=apiargs.spec(prov1, "prov1"), prov2=apiargs.spec(prov2, "prov2"),
                 satisfies=apiargs.flag(satisfies, "satisfies"))


def install(resref: str, spec: Sequence[str | EnvironmentSpec] | str | EnvironmentSpec, resref_type: str = "auto") -> Any:
    """Install the packages of environment specs (files, or specs ``retrace`` returned) on a resource."""
    from reproman import apiargs
    from reproman.tracing.commands import install as _install

    return _install(resref=apiargs.session_or_resref(resref), spec=apiargs.specs(spec, "spec"),
                    resref_type=apiargs.resref_type(resref_type))
