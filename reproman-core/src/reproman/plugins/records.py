"""Frozen records that plugins hand to core through the registration hooks.

A record carries everything needed to list, document and validate a component
without importing its implementation: the implementation is named by an
import path (``"package.module:Class"``) and loaded only by :meth:`load`.
That is what keeps ``reproman --help`` and ``reproman plugins`` free of
docker, boto3 and fabric imports.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, ClassVar

import attrs

BROKEN_HINT = "Reinstall or fix that plugin, or switch it off with REPROMAN_PLUGINS_DISABLE; " \
    "'reproman plugins --check' lists every broken component."

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")


def secret_variable(type_name: str, parameter: str) -> str:
    """``REPROMAN_SECRET_<TYPE>_<NAME>``, upper case, dashes as underscores (see :meth:`ResourceType.secret_variable`)."""
    return f"REPROMAN_SECRET_{type_name}_{parameter}".upper().replace("-", "_")


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


def _shown(number: float) -> str:
    """A number for a message: one of thousands of digits is cut short."""
    text = str(number)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)"


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # a YAML integer of hundreds of digits
            raise ValueError(f"expected a finite number, got {_shown(value)}") from None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value[:40]!r}") from None
    else:
        raise ValueError(f"expected a number, got {_kind(value)}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}"[:80])
    return number


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
    """Comma-separated items, spaces around them dropped; ``\\,`` keeps a comma inside an item
    (``--gres=gpu:1\\,mps:10``) and ``\\\\`` is a backslash (see :mod:`reproman.textlist`)."""
    from reproman.textlist import split_escaped  # only when a list is converted: importing records stays minimal

    return [item.strip() for item in split_escaped(text) if item.strip()]


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
    #: Largest value an ``int`` or ``float`` parameter takes: a value no machine or scheduler can
    #: honour (``num_processes=1000000000``) is a typo, said at once rather than by the scheduler later.
    maximum: float | None = None

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
            raise ValueError(f"must be at least {self.minimum:g}, got {_shown(converted)}")
        if self.maximum is not None and isinstance(converted, (int, float)) and converted > self.maximum:
            bound = f"{int(self.maximum):,}" if float(self.maximum).is_integer() else f"{self.maximum:g}"
            raise ValueError(f"must be at most {bound}, got {_shown(converted)}")
        if self.choices is not None and converted not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}; got {converted!r}")
        return converted


def parameter_problems(parameters: Sequence[Any], *, names_allowed: bool = False) -> list[str]:
    """What is wrong with a declared list of parameters: wrong kinds, unknown types, bad defaults, duplicates.

    ``names_allowed``: plain strings are accepted too (a submitter naming
    core's job parameters).
    """
    found = []
    names = []
    for param in parameters:
        if names_allowed and isinstance(param, str):
            names.append(param)
            continue
        if not isinstance(param, Parameter):
            found.append(f"parameter {param!r} is not a Parameter record")
            continue
        names.append(param.name)
        if param.type not in _CONVERTERS:
            found.append(f"parameter {param.name!r} has unknown type {param.type!r} "
                         f"(one of {', '.join(PARAMETER_TYPES)})")
            continue
        try:
            param.convert(param.default)
        except ValueError as exc:
            found.append(f"parameter {param.name!r}: default {param.default!r}: {exc}")
    if len(set(names)) != len(names):
        found.append("two parameters have the same name")
    return found


@attrs.frozen(kw_only=True)
class _Component:
    #: What users call this kind of component, in messages.
    kind: ClassVar[str] = "component"
    #: The class every factory of this kind must be (a subclass of), as an import path.
    base: ClassVar[str] = ""
    #: Class attributes of the factory that name what this record declares (attribute -> record field):
    #: declared once, here; see :meth:`load`.
    bound: ClassVar[Mapping[str, str]] = {}

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
        self._bind(obj)
        return obj

    def _bind(self, cls: Any) -> None:
        """Give the class the names this record declares (:attr:`bound`), or refuse one that disagrees.

        A name is declared once, in the record: a class that does not state
        it gets it here (its code may read ``self.name``, ``cls.spec_name``);
        a class that states its own must agree, or it would write one name
        into job records and specs while users select it by another. Only
        the class's own attributes count, so a subclass registered under a
        new name gets that name rather than its parent's.
        """
        from reproman.errors import PluginError

        for attribute, field in self.bound.items():
            wanted = getattr(self, field)
            declared = vars(cls).get(attribute)
            if declared in (None, ""):
                setattr(cls, attribute, wanted)
            elif declared != wanted:
                raise PluginError(
                    self.describe_problem(f"its factory {self.factory!r} declares {attribute} = {declared!r}, "
                                          f"but the record says {wanted!r}"),
                    hint="Declare it once, in the record: drop the class attribute (core sets it on load).",
                )

    def describe_problem(self, problem: str) -> str:
        source = f"{self.distribution} {self.version}".strip() or "an unknown distribution"
        return f"{self.kind} {self.name!r} from {source}: {problem}"

    def problems(self) -> list[str]:
        """What is wrong with this record beyond loading its factory (empty when nothing)."""
        return []


@attrs.frozen(kw_only=True)
class ResourceType(_Component):
    """A kind of computation resource (``shell``, ``ssh``, ``docker-container``...).

    ``factory`` names a :class:`reproman.resources.base.Resource` subclass,
    which gets the record's name as ``Resource.type`` when loaded.
    ``parameters`` are what ``reproman create -b KEY=VALUE`` accepts; core
    validates and converts them, applies defaults and passes them to the
    class as keyword arguments. A ``secret`` parameter is never written to
    the inventory; in every later command it comes back to the resource
    from the environment variable :meth:`secret_variable` names (or is
    ``None``).
    """

    kind: ClassVar[str] = "resource type"
    base: ClassVar[str] = "reproman.resources.base:Resource"
    bound: ClassVar[Mapping[str, str]] = {"type": "name"}

    parameters: tuple[Parameter, ...] = ()

    def problems(self) -> list[str]:
        return parameter_problems(self.parameters)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def secret_variable(self, parameter: str) -> str:
        """The environment variable a secret parameter's value is read from: ``REPROMAN_SECRET_<TYPE>_<NAME>``.

        For ``aws-ec2``'s ``secret_access_key``:
        ``REPROMAN_SECRET_AWS_EC2_SECRET_ACCESS_KEY``. Read when the
        resource is created without ``-b NAME=...`` and whenever a recorded
        resource is used again, so a script or an agent can hand the
        secret over without it reaching the inventory, a command line or
        the shell history.
        """
        return secret_variable(self.name, parameter)


@attrs.frozen(kw_only=True)
class SessionType(_Component):
    """A way to talk to a host that other plugins can reuse by name.

    The AWS backend, for example, asks for the ``ssh`` session type instead of
    importing the SSH backend, so any plugin that registers ``ssh`` serves it.
    ``factory`` names a :class:`reproman.resources.session.Session` subclass.
    """

    kind: ClassVar[str] = "session type"
    base: ClassVar[str] = "reproman.resources.session:Session"


def _declared(items: Iterable[str | Parameter]) -> tuple[str | Parameter, ...]:
    return tuple(items)


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@attrs.frozen(kw_only=True)
class SubmitterType(_Component):
    """A way of handing a job to the resource (``local``, ``slurm``, ``pbs``...).

    ``job_parameters`` lists the job parameters this submitter honours
    besides the generic ones every submitter takes (``root_directory``,
    ``working_directory``, ``container``, ``env``, ``max_poll_interval``):

    * core's job parameters by name (``"memory"``, ``"walltime"``...; see
      ``reproman run --list parameters``);
    * the submitter's own as :class:`Parameter` records, e.g.
      ``Parameter(name="nice", type="int", minimum=0, doc="Scheduling niceness")``:
      core lists them in ``run --list``, rejects them for other submitters,
      and validates and converts their values (the submitter receives an
      ``int``, not the text typed after ``--jp nice=``).

    Any other parameter the user gives is an error naming this submitter.
    A bare name that is not one of core's (the only way before typed
    parameters) still works as an undocumented text parameter;
    ``reproman plugins --check`` reports it.
    """

    kind: ClassVar[str] = "submitter"
    base: ClassVar[str] = "reproman.jobs.contracts:Submitter"
    bound: ClassVar[Mapping[str, str]] = {"name": "name"}

    job_parameters: tuple[str | Parameter, ...] = attrs.field(default=(), converter=_declared)
    #: Keys of its ``[submitter-NAME]`` config section that are settings of the
    #: submitter itself, not job-parameter defaults (``flavor`` for PBS).
    settings: tuple[str, ...] = attrs.field(default=(), converter=_names)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The names of :attr:`job_parameters`, core's and the submitter's own alike."""
        return tuple(p if isinstance(p, str) else p.name for p in self.job_parameters)

    @property
    def own_parameters(self) -> tuple[Parameter, ...]:
        """The parameters this submitter declares itself (its :class:`Parameter` records)."""
        return tuple(p for p in self.job_parameters if isinstance(p, Parameter))

    def problems(self) -> list[str]:
        # Whether names are core's is checked where core's are known: reproman.jobs.parameters.
        return parameter_problems(self.job_parameters, names_allowed=True)


@attrs.frozen(kw_only=True)
class OrchestratorType(_Component):
    """How inputs reach the resource and results come back (``plain``, ``datalad-pair``...)."""

    kind: ClassVar[str] = "orchestrator"
    base: ClassVar[str] = "reproman.jobs.contracts:Orchestrator"
    bound: ClassVar[Mapping[str, str]] = {"name": "name"}


@attrs.frozen(kw_only=True)
class TracerType(_Component):
    """A distribution tracer (``debian``, ``conda``, ``venv``, ``git``...).

    Tracers run in ascending ``order``; each gets the files the earlier ones
    did not claim. ``spec_name`` is the ``name:`` under ``distributions:``
    in specs that this tracer writes and reads (default: the tracer's
    name); the tracer class gets it as ``Tracer.spec_name`` when loaded.
    """

    kind: ClassVar[str] = "tracer"
    base: ClassVar[str] = "reproman.tracing.tracer:Tracer"
    bound: ClassVar[Mapping[str, str]] = {"spec_name": "spec_name"}

    order: int = 100
    spec_name: str = attrs.field(default=attrs.Factory(lambda self: self.name, takes_self=True))
