"""Frozen records that plugins hand to core through the registration hooks.

A record carries everything needed to list, document and validate a component
without importing its implementation: the implementation is named by an
import path (``"package.module:Class"``) and loaded only by :meth:`load`.
That is what keeps ``reproman --help`` and ``reproman plugins`` free of
docker, boto3 and fabric imports.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any, Callable, ClassVar

import attrs

BROKEN_HINT = "Reinstall or fix that plugin, or switch it off with REPROMAN_PLUGINS_DISABLE; " \
    "'reproman plugins --check' lists every broken component."

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")


def normalize_name(name: str) -> str:
    """Component names are lower-case with dashes, whatever the plugin wrote."""
    return name.strip().lower().replace("_", "-")


def _check_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not _NAME_RE.match(value):
        raise ValueError(f"invalid component name {value!r}: use lower-case letters, digits and dashes")


def load_object(path: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"import path {path!r} must look like 'package.module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


def parse_bool(text: str | bool) -> bool:
    """Read the spellings of yes/no that users type on a command line."""
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected a boolean (yes/no, true/false, 1/0), got {text!r}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (quote it in YAML to make it text)"
    if isinstance(value, (dict, Mapping)):
        return "a mapping"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    return f"{type(value).__name__} {value!r}"[:80]


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected text, got {_kind(value)}")


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {value[:40]!r}") from None
    raise ValueError(f"expected an integer, got {_kind(value)}")


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value[:40]!r}") from None
    raise ValueError(f"expected a number, got {_kind(value)}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    if isinstance(value, (str, bool)):
        return parse_bool(value)
    raise ValueError(f"expected a boolean (yes/no, true/false, 1/0), got {_kind(value)}")


def _to_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return split_list(value)
    if isinstance(value, (list, tuple)):
        return [_to_str(item) for item in value]
    raise ValueError(f"expected a comma-separated list, got {_kind(value)}")


#: Each parameter type's conversion from what users give (command-line text, YAML values).
_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "list": _to_list,
}
PARAMETER_TYPES = tuple(_CONVERTERS)


def split_list(text: str) -> list[str]:
    """Comma-separated items; ``\\,`` keeps a comma inside an item (``--gres=gpu:1\\,mps:10``)."""
    return [item.strip().replace("\\,", ",") for item in re.split(r"(?<!\\),", text) if item.strip()]


@attrs.frozen(kw_only=True)
class Parameter:
    """One typed, documented parameter of a resource type or a job.

    ``type`` is one of ``str``, ``int``, ``float``, ``bool`` or ``list``
    (comma-separated on the command line, ``\\,`` for a literal comma; a
    real list from a YAML job spec is taken as is). ``secret`` parameters are accepted
    but never written to the inventory.
    """

    name: str
    doc: str
    type: str = "str"
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] | None = None
    secret: bool = False
    #: Smallest value an ``int`` or ``float`` parameter takes (``num_processes=0`` is no job).
    minimum: float | None = None

    def convert(self, value: Any) -> Any:
        """Turn a command-line string (or a YAML value) into the parameter's type, or raise ValueError.

        Values of the wrong kind (a list for a number, a mapping for text)
        are refused here, once, rather than failing somewhere downstream.
        """
        if value is None:
            return None
        converter = _CONVERTERS.get(self.type)
        if converter is None:
            raise ValueError(f"parameter {self.name!r} has unknown type {self.type!r}")
        converted = converter(value)
        if self.minimum is not None and isinstance(converted, (int, float)) and converted < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}, got {converted}")
        if self.choices is not None and converted not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}; got {converted!r}")
        return converted


@attrs.frozen(kw_only=True)
class _Component:
    #: What users call this kind of component, in messages.
    kind: ClassVar[str] = "component"
    #: The class every factory of this kind must be (a subclass of), as an import path.
    base: ClassVar[str] = ""

    name: str = attrs.field(converter=normalize_name, validator=_check_name)
    description: str
    factory: str
    # Filled in by the manager: which distribution registered the component.
    distribution: str = ""
    version: str = ""

    def load(self) -> Any:
        """Import and return the implementation (this is where heavy SDKs load).

        A factory that cannot be imported, or is not the class its kind
        needs, is a :class:`~reproman.errors.PluginError` naming the
        component and its distribution: the same line ``reproman plugins
        --check`` prints for it.
        """
        from reproman.errors import PluginError

        try:
            obj = load_object(self.factory)
        except Exception as exc:  # whatever a broken plugin raises on import
            raise PluginError(
                self.describe_problem(f"cannot import its factory {self.factory!r}: {type(exc).__name__}: {exc}"),
                hint=BROKEN_HINT,
            ) from exc
        if self.base:
            base = load_object(self.base)
            if not (isinstance(obj, type) and issubclass(obj, base)):
                raise PluginError(
                    self.describe_problem(f"its factory {self.factory!r} is not a subclass of {self.base}"),
                    hint=BROKEN_HINT,
                )
        return obj

    def describe_problem(self, problem: str) -> str:
        source = f"{self.distribution} {self.version}".strip() or "an unknown distribution"
        return f"{self.kind} {self.name!r} from {source}: {problem}"

    def problems(self) -> list[str]:
        """What is wrong with this record beyond loading its factory (empty when nothing)."""
        return []


@attrs.frozen(kw_only=True)
class ResourceType(_Component):
    """A kind of computation resource (``shell``, ``ssh``, ``docker-container``...).

    ``factory`` names a :class:`reproman.resources.base.Resource` subclass.
    """

    kind: ClassVar[str] = "resource type"
    base: ClassVar[str] = "reproman.resources.base:Resource"

    parameters: tuple[Parameter, ...] = ()

    def problems(self) -> list[str]:
        found = []
        for param in self.parameters:
            if not isinstance(param, Parameter):
                found.append(f"parameter {param!r} is not a Parameter record")
                continue
            if param.type not in _CONVERTERS:
                found.append(f"parameter {param.name!r} has unknown type {param.type!r} "
                             f"(one of {', '.join(PARAMETER_TYPES)})")
                continue
            try:
                param.convert(param.default)
            except ValueError as exc:
                found.append(f"parameter {param.name!r}: default {param.default!r}: {exc}")
        names = [p.name for p in self.parameters if isinstance(p, Parameter)]
        if len(set(names)) != len(names):
            found.append("two parameters have the same name")
        return found

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)


@attrs.frozen(kw_only=True)
class SessionType(_Component):
    """A way to talk to a host that other plugins can reuse by name.

    The AWS backend, for example, asks for the ``ssh`` session type instead of
    importing the SSH backend, so any plugin that registers ``ssh`` serves it.
    ``factory`` names a :class:`reproman.resources.session.Session` subclass.
    """

    kind: ClassVar[str] = "session type"
    base: ClassVar[str] = "reproman.resources.session:Session"


@attrs.frozen(kw_only=True)
class SubmitterType(_Component):
    """A way of handing a job to the resource (``local``, ``slurm``, ``pbs``...).

    ``job_parameters`` lists the job parameters this submitter honours;
    any other non-generic parameter given by the user is an error.
    """

    kind: ClassVar[str] = "submitter"
    base: ClassVar[str] = "reproman.jobs.contracts:Submitter"

    job_parameters: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        from reproman.jobs.parameters import JOB_PARAMETERS

        known = {p.name for p in JOB_PARAMETERS}
        unknown = [name for name in self.job_parameters if name not in known]
        return [f"job parameters {', '.join(map(repr, unknown))} are not known to core"] if unknown else []


@attrs.frozen(kw_only=True)
class OrchestratorType(_Component):
    """How inputs reach the resource and results come back (``plain``, ``datalad-pair``...)."""

    kind: ClassVar[str] = "orchestrator"
    base: ClassVar[str] = "reproman.jobs.contracts:Orchestrator"


@attrs.frozen(kw_only=True)
class TracerType(_Component):
    """A distribution tracer (``debian``, ``conda``, ``venv``, ``git``...).

    Tracers run in ascending ``order``; each gets the files the earlier ones
    did not claim. ``distribution`` on the spec side is the YAML ``name:``
    under ``distributions:`` that this tracer writes and reads.
    """

    kind: ClassVar[str] = "tracer"
    base: ClassVar[str] = "reproman.tracing.tracer:Tracer"

    order: int = 100
    spec_name: str = ""
