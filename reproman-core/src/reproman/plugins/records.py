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
from typing import Any, Callable

import attrs

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


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": parse_bool,
    "list": lambda v: split_list(v) if isinstance(v, str) else list(v),
}


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

    def convert(self, value: Any) -> Any:
        """Turn a command-line string into the parameter's type, or raise ValueError."""
        if value is None:
            return None
        converted = _CONVERTERS[self.type](value) if isinstance(value, str) or self.type == "list" else value
        if self.choices is not None and converted not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}; got {converted!r}")
        return converted


@attrs.frozen(kw_only=True)
class _Component:
    name: str = attrs.field(converter=normalize_name, validator=_check_name)
    description: str
    factory: str
    # Filled in by the manager: which distribution registered the component.
    distribution: str = ""
    version: str = ""

    def load(self) -> Any:
        """Import and return the implementation (this is where heavy SDKs load)."""
        return load_object(self.factory)


@attrs.frozen(kw_only=True)
class ResourceType(_Component):
    """A kind of computation resource (``shell``, ``ssh``, ``docker-container``...).

    ``factory`` names a :class:`reproman.resources.base.Resource` subclass.
    """

    parameters: tuple[Parameter, ...] = ()

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)


@attrs.frozen(kw_only=True)
class SessionType(_Component):
    """A way to talk to a host that other plugins can reuse by name.

    The AWS backend, for example, asks for the ``ssh`` session type instead of
    importing the SSH backend, so any plugin that registers ``ssh`` serves it.
    ``factory`` names a :class:`reproman.resources.base.Session` subclass.
    """


@attrs.frozen(kw_only=True)
class SubmitterType(_Component):
    """A way of handing a job to the resource (``local``, ``slurm``, ``pbs``...).

    ``job_parameters`` lists the job parameters this submitter honours;
    any other non-generic parameter given by the user is an error.
    """

    job_parameters: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class OrchestratorType(_Component):
    """How inputs reach the resource and results come back (``plain``, ``datalad-pair``...)."""


@attrs.frozen(kw_only=True)
class TracerType(_Component):
    """A distribution tracer (``debian``, ``conda``, ``venv``, ``git``...).

    Tracers run in ascending ``order``; each gets the files the earlier ones
    did not claim. ``distribution`` on the spec side is the YAML ``name:``
    under ``distributions:`` that this tracer writes and reads.
    """

    order: int = 100
    spec_name: str = ""
