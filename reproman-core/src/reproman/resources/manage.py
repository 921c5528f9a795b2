"""Turn inventory records into live resources, and resource references into records.

This is the layer the API's resource commands share: resolving ``resref``
(name, ID or unique ID prefix), validating backend parameters, and keeping
the inventory in step with what the backends did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from reproman.errors import (
    AmbiguousResourceError,
    BackendParameterError,
    InventoryError,
    ReproManError,
    ResourceError,
    ResourceExistsError,
    ResourceNotFoundError,
    UnknownComponentError,
    UsageError,
)
from reproman.resources.inventory import Inventory

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings

if TYPE_CHECKING:
    from typing import Any

    from reproman.plugins.records import ResourceType
    from reproman.resources.base import Resource

# Kept here rather than imported from the shell module: `ls` resolves
# references without importing any resource implementation.
LOCAL_RESOURCE_NAME = "local"

RESREF_TYPES = ("auto", "name", "id")
_LOCAL_RECORD = {"name": LOCAL_RESOURCE_NAME, "type": "shell", "id": "local", "status": "ONLINE"}

#: Names of new resources. A name becomes a directory on the resource (job
#: directories live under ``.reproman/jobs/<name>/``), appears in commands
#: and in one-line listings, so it is kept to characters that are safe in
#: all three; 64 leaves room for the rest of a path.
NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_resource_name(name: Any) -> str:
    """``name`` if a new resource may have it, else a :class:`UsageError` giving the rule."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        shown = repr(name if not isinstance(name, str) or len(name) <= 70 else name[:70] + "...")
        raise UsageError(f"invalid resource name {shown}: use {NAME_RULE}")
    return name


def check_job_directory_name(name: str) -> str:
    """``name`` if it can be one directory level of a job's path on the resource.

    Resources created before names were checked keep working as long as
    their name is a harmless path component; one that could escape the jobs
    directory or break a command line cannot run jobs.
    """
    if (
        name in ("", ".", "..")
        or "/" in name
        or not name.isprintable()
        or len(name.encode("utf-8", "surrogatepass")) > 255
    ):
        raise ResourceError(
            f"resource name {name[:70]!r} cannot name a job directory",
            hint=f"Create the resource again under a name of {NAME_RULE}.",
        )
    return name


def builtin_local_record() -> dict[str, Any]:
    """The record of the built-in ``local`` resource, which no inventory needs to hold."""
    return dict(_LOCAL_RECORD)


def parse_key_values(items: Iterable[str] | Mapping[str, Any] | None, what: str = "backend parameter") -> dict[str, Any]:
    """``["k=v", ...]`` (or a mapping) as a dict; a missing ``=`` is a usage error."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        if not all(isinstance(k, str) for k in items):
            raise BackendParameterError(f"{what} names must be text, got {list(items)!r}"[:200])
        return dict(items)
    if isinstance(items, str):
        items = [items]
    result: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str):
            raise BackendParameterError(f"{what} {item!r} is not a KEY=VALUE string"[:200])
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BackendParameterError(f"{what} {item!r} is not of the form KEY=VALUE")
        result[key.strip()] = value
    return result


def secrets_from_environment(rtype: ResourceType, given: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``rtype``'s secret parameters missing from ``given`` that the environment holds.

    This is how a secret comes back to a backend after ``create``: it is
    never written to the inventory, and each later command reads it from
    ``REPROMAN_SECRET_<TYPE>_<NAME>`` (see
    :meth:`~reproman.plugins.records.ResourceType.secret_variable`).
    """
    import os

    found: dict[str, Any] = {}
    for param in rtype.parameters:
        if param.secret and given.get(param.name) is None:
            value = os.environ.get(rtype.secret_variable(param.name))
            if value is not None:
                found[param.name] = value
    return found


def validate_parameters(rtype: ResourceType, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check names, convert types, apply defaults; raise with a suggestion on a typo.

    Secret parameters not given are taken from the environment (see
    :func:`secrets_from_environment`).
    """
    known = {p.name: p for p in rtype.parameters}
    values: dict[str, Any] = {}
    from_environment = secrets_from_environment(rtype, given)
    for key, raw in {**given, **from_environment}.items():
        param = known.get(key)
        if param is None:
            import difflib

            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"Did you mean {close[0]!r}?" if close else (
                f"Known: {', '.join(known)}." if known else f"Type {rtype.name!r} takes no parameters."
            )
            raise BackendParameterError(f"unknown backend parameter {key!r} for type {rtype.name!r}.", hint=hint)
        where = rtype.secret_variable(key) if key in from_environment else f"backend parameter {key!r}"
        if isinstance(raw, str) and not _is_utf8(raw):
            # Backends hand values to APIs (Docker's JSON, EC2 tags, SSH configs) that cannot carry such bytes.
            raise BackendParameterError(f"{where}: the value holds bytes that are not UTF-8 text",
                                        hint="Pass the value as UTF-8; nothing was created.")
        try:
            values[key] = param.convert(raw)
        except (ValueError, TypeError) as exc:
            raise BackendParameterError(f"{where}: {exc}") from None
    missing = [p for p in rtype.parameters if p.required and values.get(p.name) in (None, "")]
    if missing:
        secret = [f"{p.name} (or {rtype.secret_variable(p.name)} in the environment)" for p in missing if p.secret]
        raise BackendParameterError(
            f"missing required backend parameter(s) for type {rtype.name!r}: "
            f"{', '.join([p.name for p in missing if not p.secret] + secret)}",
            hint=f"Pass them with -b KEY=VALUE; see 'reproman backend-parameters {rtype.name}'.",
        )
    for param in rtype.parameters:
        if key_absent(values, param.name) and param.default is not None:
            values[param.name] = param.default
    return values


def _is_utf8(text: str) -> bool:
    """False for text holding bytes that were not UTF-8 (lone surrogates from ``surrogateescape``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_absent(values: Mapping[str, Any], key: str) -> bool:
    return key not in values or values[key] is None


def find_record(
    records: Mapping[str, Mapping[str, Any]], resref: str, resref_type: str = "auto"
) -> dict[str, Any]:
    """The record ``resref`` names: by name, then by ID, then by unique ID prefix."""
    if resref_type not in RESREF_TYPES:
        raise UsageError(f"resref_type must be one of {', '.join(RESREF_TYPES)}; got {resref_type!r}")
    if resref_type in ("auto", "name") and resref in records:
        return dict(records[resref])
    if resref_type in ("auto", "id"):
        exact = [r for r in records.values() if r.get("id") == resref]
        if exact:
            return dict(exact[0])
        prefixed = [r for r in records.values() if str(r.get("id") or "").startswith(resref)]
        if len(prefixed) == 1:
            return dict(prefixed[0])
        if len(prefixed) > 1:
            names = ", ".join(sorted(str(r["name"]) for r in prefixed))
            raise AmbiguousResourceError(f"ID prefix {resref!r} matches several resources: {names}")
    if resref == LOCAL_RESOURCE_NAME and resref_type != "id":
        return dict(_LOCAL_RECORD)
    available = ", ".join([LOCAL_RESOURCE_NAME] + sorted(set(records) - {LOCAL_RESOURCE_NAME}))
    raise ResourceNotFoundError(
        f"no resource {resref!r} ({resref_type}). Known: {available}.",
        hint="See 'reproman ls', or create one with 'reproman create'.",
    )


def instantiate(record: Mapping[str, Any]) -> Resource:
    """A live resource object for an inventory record (imports the backend)."""
    from reproman.plugins.manager import get_plugin_manager

    if not record.get("type"):
        raise InventoryError(f"the inventory record of {record.get('name')!r} has no type",
                             hint="Fix the record in the inventory, or remove it with 'reproman delete -f NAME'.")
    rtype = get_plugin_manager().resource_type(str(record.get("type")))
    cls = rtype.load()
    name = str(record["name"])
    params = {k: v for k, v in record.items() if k not in ("name", "type", "id", "status")}
    secrets = secrets_from_environment(rtype, params)
    params.update(secrets)
    for param in rtype.parameters:
        try:
            params[param.name] = param.convert(params[param.name]) if params.get(param.name) is not None else param.default
        except ValueError as exc:
            if param.name in secrets:
                raise BackendParameterError(f"{rtype.secret_variable(param.name)}: {exc}") from None
            raise InventoryError(
                f"the record of resource {name!r} in {Inventory().path} is damaged: {param.name}: {exc}",
                hint="Fix it in the inventory, or forget the resource with 'reproman delete --force'.",
            ) from None
    ident, status = (_text_or_none(record, key) for key in ("id", "status"))
    return cls(name, id=ident, status=status, **params)  # type: ignore[no-any-return]


def _text_or_none(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InventoryError(
        f"the record of resource {record.get('name')!r} in {Inventory().path} is damaged: {key!r} must be text",
        hint="Fix it in the inventory, or forget the resource with 'reproman delete --force'.",
    )


def get_resource(resref: str | Resource | None = None, resref_type: str = "auto") -> Resource:
    """Resolve a reference to a live resource; ``None`` is the default local shell.

    The default can be changed with ``[general] default_resource`` in the config.
    """
    from reproman.resources.base import Resource

    if isinstance(resref, Resource):
        return resref
    if resref is None:
        from reproman.config import get_config

        resref = get_config().get("general", "default_resource") or LOCAL_RESOURCE_NAME
    record = find_record(Inventory().load(), resref, resref_type)
    return instantiate(record)


def create_resource(name: str, resource_type: str, backend_parameters: Iterable[str] | Mapping[str, Any] | None) -> Resource:
    """Create the real thing through its backend and record it in the inventory."""
    from reproman.plugins.manager import get_plugin_manager

    check_resource_name(name)
    if not isinstance(resource_type, str) or not resource_type:
        raise UsageError(f"resource type must be a name such as 'shell', got {resource_type!r}"[:200])
    inventory = Inventory()
    if name in inventory.load() or name == LOCAL_RESOURCE_NAME:
        raise ResourceExistsError(f"a resource named {name!r} already exists", hint="Pick another name or delete it.")
    rtype = get_plugin_manager().resource_type(resource_type)
    values = validate_parameters(rtype, parse_key_values(backend_parameters))
    cls = rtype.load()
    resource: Resource = cls(name, **values)
    attributes = resource.create() or {}
    try:
        for key, value in attributes.items():
            if key in ("id", "status"):
                setattr(resource, key, value)
            else:
                resource.params[key] = value
        secrets = {p.name for p in rtype.parameters if p.secret}
        record = {k: v for k, v in resource.to_record().items() if k not in secrets}
        record["type"] = rtype.name
        with inventory.edit() as records:
            if name in records:
                raise ResourceExistsError(f"a resource named {name!r} was created concurrently")
            records[name] = record
    except BaseException as exc:
        # Created but not recorded (a full disk, a concurrent create): nothing
        # could ever find it again, so it must not be left running.
        _undo_create(resource, exc)
        raise
    return resource


def _undo_create(resource: Resource, cause: BaseException) -> None:
    """Delete a resource that was created but could not be recorded; raise if it stays."""
    try:
        resource.delete()
    except Exception as exc:
        raise ResourceError(
            f"{resource.type} {resource.name!r} (id {resource.id}) was created but could not be recorded "
            f"({cause}), and removing it failed: {exc}",
            hint="Remove it with the backend's own tools; ReproMan does not know it.") from cause
    _log().info("removed %s %r again: it could not be recorded", resource.type, resource.name)


def forget_resource(name: str) -> None:
    with Inventory().edit() as records:
        records.pop(name, None)


def update_resource(resource: Resource) -> None:
    """Store what start/stop/refresh changed (status, a new address...) if the resource is recorded.

    Secret parameters are left out, as at creation.
    """
    from reproman.plugins.manager import get_plugin_manager

    with Inventory().edit() as records:
        if resource.name not in records:
            return
        try:
            rtype = get_plugin_manager().resource_type(str(records[resource.name].get("type")))
            secrets = {p.name for p in rtype.parameters if p.secret}
        except UnknownComponentError:
            secrets = set()
        record = records[resource.name]
        for key, value in resource.to_record().items():
            if key not in secrets and key != "type":
                record[key] = value


def note_reached(resource: Resource, recorded: str | None) -> None:
    """A command reached ``resource``: a stored "CONNECTION ERROR" gives way to the status its backend now says.

    ``reproman ls`` without ``--refresh`` shows the stored status; the error
    a refresh stored during an outage would otherwise stay there after the
    host recovered and commands through it succeeded (trial Q, 5). Only
    that stale error is replaced, so the inventory is written once after
    the outage and never by the usual command. A failure to write it is
    not the command's failure: it is said at debug level only.
    """
    from reproman.resources.base import CONNECTION_ERROR

    if recorded != CONNECTION_ERROR or resource.status in (None, CONNECTION_ERROR):
        return
    try:
        update_resource(resource)
    except (ReproManError, OSError) as exc:
        _log().debug("resource %r answered again, but its status could not be stored: %s", resource.name, exc)


def _log() -> Any:
    """This module's logger, imported only when there is something to say (``ls`` must start fast)."""
    import logging

    return logging.getLogger(__name__)
