"""The resource commands behind :mod:`reproman.api`: create, delete, start, stop, login, execute, ls.

Each returns data and raises :class:`reproman.errors.ReproManError`
subclasses; arguments are already checked by the API front
(:mod:`reproman.apiargs`). :func:`open_session` is the one way every command
(here, tracing, install) turns a resource reference into an open session.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from reproman.errors import ReproManError, ResourceError, UsageError
from reproman.resources.inventory import Inventory
from reproman.resources.manage import (
    LOCAL_RESOURCE_NAME,
    builtin_local_record,
    create_resource,
    find_record,
    forget_resource,
    get_resource,
    instantiate,
    note_reached,
    update_resource,
)

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings
if TYPE_CHECKING:
    from typing import Any

    from reproman.resources.base import Resource
    from reproman.resources.landing import LandingReport
    from reproman.resources.session import CommandResult, OutputCallback, Session

#: What ``execute --internal`` runs: session operations, with their number of arguments.
INTERNAL_COMMANDS: dict[str, tuple[int, int]] = {
    "mkdir": (1, 1), "isdir": (1, 1), "put": (2, 2), "get": (1, 2), "chown": (2, 2), "chmod": (2, 2),
}


def backend_parameters(backends: Sequence[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """Parameters of each resource type (all installed types, or ``backends``), as plain data.

    A secret parameter also names the environment variable its value is
    read from in later commands (``secret_variable``; None for the others).
    """
    from reproman.plugins.manager import get_plugin_manager

    manager = get_plugin_manager()
    types = [manager.resource_type(b) for b in backends] if backends else list(manager.components("resource type").values())
    return {
        t.name: [
            {"name": p.name, "type": p.type, "default": p.default, "required": p.required,
             "choices": list(p.choices) if p.choices else None, "doc": p.doc,
             "secret_variable": t.secret_variable(p.name) if p.secret else None}
            for p in t.parameters
        ]
        for t in types
    }


def create(name: str, resource_type: str, backend_parameters: Sequence[str] | Mapping[str, Any] | None) -> Resource:
    """Create the real thing through its backend and record it in the inventory."""
    return create_resource(name, resource_type, backend_parameters)


def delete(resref: str, resref_type: str = "auto", skip_confirmation: bool = False, force: bool = False,
           confirm: Callable[[str], bool] | None = None) -> str:
    """Delete a resource and forget it; returns its name.

    Without ``skip_confirmation`` the deletion must be confirmed by
    ``confirm(question)``; without a ``confirm`` callable nothing is
    deleted. A resource holding jobs whose results were not fetched yet is
    refused (their results would be lost), naming them, unless ``force``;
    ``force`` also forgets the resource even when its backend fails.
    """
    record = find_record(Inventory().load(), resref, resref_type)
    name = str(record["name"])
    if _is_builtin_local(name, record.get("id"), str(record.get("type"))):
        raise ResourceError("the built-in local resource cannot be deleted")
    unfetched = _unfetched_jobs(name)
    if unfetched and not force and _gone(record):
        # Trial R: a container removed outside ReproMan took its jobs' files with it; refusing (and
        # hinting "fetch them first") only kept the user in a loop.
        _log().warning("resource %r no longer exists, and with it the files of %s not fetched yet: "
                       "they cannot be fetched any more ('reproman jobs --delete JOB' forgets one)",
                       name, _jobs_phrase(unfetched))
        unfetched = []
    if unfetched and not force:
        raise ResourceError(
            f"not deleting {name!r}: {_jobs_phrase(unfetched)} on it not fetched yet; deleting it loses their results",
            hint="Fetch them with 'reproman jobs JOB' (or remove one with 'reproman jobs --delete JOB'); "
                 "--force deletes the resource anyway.")
    if not skip_confirmation:
        question = f"Delete resource {name!r} ({record.get('type')})?"
        if unfetched:
            question = f"Delete resource {name!r} ({record.get('type')}) and lose the results of " \
                       f"{_jobs_phrase(unfetched)} not fetched yet?"
        if confirm is None or not confirm(question):
            raise ResourceError(f"not deleting {name!r}: not confirmed",
                                hint="Answer yes, or pass -y (--skip-confirmation) to skip the question.")
    try:
        resource = instantiate(record)
        resource.connect()
        resource.delete()
    except ReproManError:
        if not force:
            raise
    except Exception as exc:  # a backend's own bug: --force still forgets the resource
        if not force:
            raise ResourceError(f"cannot delete {name!r}: its {record.get('type')} backend failed: "
                                f"{type(exc).__name__}: {exc}",
                                hint="Pass --force to remove it from the inventory anyway.") from exc
        _log().warning("resource %r: its backend failed (%s: %s); forgotten anyway (--force)", name,
                    type(exc).__name__, exc)
    forget_resource(name)
    return name


def _gone(record: Mapping[str, Any]) -> bool:
    """Whether the backend says the resource itself no longer exists (not merely unreachable)."""
    from reproman.resources.base import NOT_FOUND

    try:
        resource = instantiate(record)
        resource.connect()
    except Exception:  # unreachable or failing: not known to be gone
        return False
    return resource.status == NOT_FOUND


def lifecycle_refusal(resource: Resource, verb: str) -> str | None:
    """Why ``verb`` (``"stop"`` or ``"delete"``) can never be done to ``resource``; None when it may be tried.

    ``run --follow stop`` asks before submitting, so that an action that
    cannot work is refused before anything runs, not reported after the job.
    """
    from reproman.resources.base import Resource

    if verb == "delete" and _is_builtin_local(resource.name, getattr(resource, "id", None), resource.type):
        return "the built-in local resource cannot be deleted"
    if verb == "stop" and type(resource).stop is Resource.stop:
        return f"resources of type {resource.type!r} cannot be stopped"
    return None


def _is_builtin_local(name: str, resource_id: Any, resource_type: str) -> bool:
    """The ``local`` resource ReproMan provides, as opposed to a resource the user created under that name."""
    return resource_id == "local" and resource_type == "shell" and name not in Inventory().load()


def _unfetched_jobs(resource_name: str) -> list[str]:
    """IDs of registered jobs on ``resource_name`` whose results are still only there.

    A refused submission ran nothing, so it has nothing to lose.
    """
    from reproman.jobs.outcome import SUBMISSION_FAILED
    from reproman.jobs.registry import Registry
    from reproman.jobs.spec import JobSpec

    return [e.jobid for e in Registry().entries()
            if isinstance(e, JobSpec) and e.resource_name == resource_name and not e.was_fetched
            and e.status != SUBMISSION_FAILED]


def _jobs_phrase(jobids: Sequence[str], shown: int = 5) -> str:
    """``"2 jobs (A, B)"``, at most ``shown`` IDs named."""
    names = ", ".join(jobids[:shown]) + (f" and {len(jobids) - shown} more" if len(jobids) > shown else "")
    return f"{len(jobids)} job{'s' if len(jobids) != 1 else ''} ({names})"


def _lifecycle(resref: str | Resource | None, resref_type: str, verb: str) -> Resource:
    resource = get_resource(resref, resref_type)
    resource.connect()
    getattr(resource, verb)()
    update_resource(resource)
    return resource


def start(resref: str | Resource | None, resref_type: str = "auto") -> Resource:
    """Start a resource; the inventory keeps what changed (status, a new address)."""
    return _lifecycle(resref, resref_type, "start")


def stop(resref: str | Resource | None, resref_type: str = "auto") -> Resource:
    """Stop a resource; the inventory keeps its new status.

    Jobs not fetched yet are named once it stopped (trial R: a stop under a
    running job was silent, and the job then read lost): a running one
    ended with the resource; finished ones keep their files there for a
    later fetch. Said after, not before: only a resource that really
    stopped (an SSH host is never stopped) ended anything.
    """
    resource = _lifecycle(resref, resref_type, "stop")
    unfetched = _unfetched_jobs(resource.name)
    if unfetched:
        _log().warning("stopped %r while it held %s not fetched yet: one still running there was ended with it "
                       "(it will read lost); finished ones keep their files there for 'reproman jobs JOB' once it "
                       "is started again", resource.name, _jobs_phrase(unfetched))
    return resource


def login(resref: str | Resource | None, resref_type: str = "auto") -> int:
    """An interactive shell on the resource; returns its exit status."""
    resource = get_resource(resref, resref_type)
    resource.connect()
    return resource.login()


@contextmanager
def open_session(resref: str | Resource | Session | None = None, resref_type: str = "auto") -> Iterator[Session]:
    """An open session on the resource ``resref`` names, closed on leaving.

    ``None`` is the default resource; a :class:`~reproman.resources.base.Resource`
    is used as is; an open :class:`~reproman.resources.session.Session`
    passed in is yielded as is and left open (the caller owns it).
    """
    from reproman.resources.session import Session

    if isinstance(resref, Session):
        yield resref
        return
    resource = get_resource(resref, resref_type)
    recorded = resource.status
    try:
        resource.connect()
        session = resource.get_session()
    except KeyboardInterrupt as exc:
        # Interrupted while connecting (at a password prompt): no command was sent, say so rather than "stopped".
        exc.reproman_not_started = True  # type: ignore[attr-defined]
        raise
    note_reached(resource, recorded)
    try:
        yield session
    finally:
        session.close()


def execute(
    command: str,
    args: Sequence[str] = (),
    resref: str | Resource | None = None,
    resref_type: str = "auto",
    internal: bool = False,
    trace: bool = False,
    *,
    on_output: OutputCallback | None = None,
) -> CommandResult | LandingReport | bool | None:
    """Run ``command args`` on the resource; see :func:`reproman.api.execute`."""
    if internal and trace:
        raise UsageError("--trace traces commands, not --internal operations; give one of them")
    if internal:
        _check_internal(command, list(args))
    with open_session(resref, resref_type) as session:
        if internal:
            return _internal(session, command, list(args))
        if trace:
            from reproman.tracing.strace import trace_execution

            return trace_execution(session, [command, *args])
        return session.execute_interruptible([command, *args], on_output=on_output)


def _check_internal(command: str, args: list[str]) -> None:
    """Refuse a malformed internal operation before connecting: a name, a count or a mode that cannot work.

    A numeric mode must be octal (``chmod 9`` was a ValueError traceback);
    a symbolic one (``u+x``) is the resource's ``chmod`` to judge.
    """
    if command not in INTERNAL_COMMANDS:
        raise UsageError(f"unknown internal command {command!r}; known: {', '.join(INTERNAL_COMMANDS)}")
    low, high = INTERNAL_COMMANDS[command]
    if not low <= len(args) <= high:
        raise UsageError(f"internal {command} takes {low}{'' if low == high else f'-{high}'} argument(s)")
    if command == "chmod" and args[0].isdigit() and not re.fullmatch(r"[0-7]{1,4}", args[0], re.ASCII):
        raise UsageError(f"internal chmod: mode {args[0][:20]!r} is not an octal mode such as 755 or 0644",
                         hint="Or give a symbolic mode such as u+x.")


def _internal(session: Session, command: str, args: list[str]) -> LandingReport | bool | None:
    if command == "isdir":
        return session.isdir(args[0])
    if command == "get":
        return session.get(args[0], args[1] if len(args) > 1 else None)
    if command == "mkdir":
        session.mkdir(args[0], parents=True)
    elif command == "put":
        session.put(args[0], args[1])
    elif command == "chown":
        session.chown(args[0], args[1])
    else:
        session.chmod(int(args[0], 8) if args[0].isdigit() else args[0], args[1])
    return None


def ls(resrefs: Sequence[str] = (), resref_type: str = "auto", verbose: bool = False,
       refresh: bool = False) -> list[dict[str, Any]]:
    """Known resources as records (name, type, id, status; with ``verbose`` every attribute).

    The built-in ``local`` resource (this machine, the default) is listed
    first unless the inventory has its own resource of that name. With
    ``refresh`` every listed backend is asked, concurrently (bounded).
    """
    records = Inventory().load()
    if resrefs:
        selected = [find_record(records, r, resref_type) for r in resrefs]
    else:
        builtin = [] if LOCAL_RESOURCE_NAME in records else [builtin_local_record()]
        selected = builtin + list(records.values())
    if refresh:
        from reproman.resources.base import CONNECTION_ERROR
        from reproman.resources.parallel import map_bounded

        selected = [dict(r) for r in selected]

        def probe(record: dict[str, Any]) -> tuple[Resource, str | None]:
            resource = instantiate(record)
            try:
                return resource, resource.refresh_status()
            except ReproManError:
                raise
            except Exception as exc:  # a backend breaking its contract (connect must not raise) costs one row only
                _log().warning("resource %r: its %s backend failed to connect: %s: %s", record.get("name"),
                            record.get("type"), type(exc).__name__, exc)
                return resource, CONNECTION_ERROR

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


def _log() -> Any:
    """This module's logger, imported only when there is something to say (``ls`` must start fast)."""
    import logging

    return logging.getLogger(__name__)
