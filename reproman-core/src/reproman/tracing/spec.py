"""The ReproMan environment spec: ``version``, ``distributions`` and ``files``.

The format is the old ReproMan's (``version: 0.0.1``), field for field, so
specs written by either tool load in the other::

    # ReproMan Environment Configuration File
    # This file was created by ReproMan 0.5.0 on 2026-01-01 12:00:00+00:00
    version: 0.0.1
    distributions:
      - name: debian
        version: '12.5'
        apt_sources: [...]
        packages:
          - name: bash
            version: 5.2.15-2+b8
            architecture: amd64
            files: [/usr/bin/bash]
    files: [/opt/blah]

Distribution entries stay plain mappings (what tracers return and what
diff/install read), so a plugin adds a distribution type without touching
this module. Two YAML details matter for the old tool, which reads with
PyYAML (YAML 1.1): strings that YAML 1.1 would read as something else
(``1:2.3`` is a float there, ``yes`` a boolean) are written quoted; and on
reading, unquoted floats and timestamps stay the text that was written, so a
version ``1.10`` is not turned into ``1.1``.
"""

from __future__ import annotations

import datetime
import functools
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from reproman import yamlio
from reproman.errors import SpecError, UsageError

SPEC_VERSION = "0.0.1"
#: Keys of the old EnvironmentSpec (``base`` is reserved there and kept as is).
TOP_LEVEL_KEYS = ("version", "base", "distributions", "files")
#: Keys that hold versions or names: always text, whatever YAML made of them.
_TEXT_FIELDS = frozenset({
    "name", "version", "source_name", "source_version", "release", "epoch", "architecture",
    "codename", "archive", "component", "python_version", "hexsha", "root_hexsha", "revision",
})


def _timestamp() -> str:
    """Now, in the old tool's format (``2017-05-31 08:40:46+00:00``)."""
    return str(datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0))


def header(now: str | None = None) -> str:
    """The comment at the top of every spec: which ReproMan wrote it, and when."""
    from reproman import __version__

    return (
        "ReproMan Environment Configuration File\n"
        f"This file was created by ReproMan {__version__} on {now or _timestamp()}"
    )


@attrs.define(kw_only=True)
class EnvironmentSpec:
    """An environment: the distributions that provide its files, and the other files."""

    distributions: list[dict[str, Any]] = attrs.Factory(list)
    files: list[str] = attrs.Factory(list)
    version: str = SPEC_VERSION
    #: The old format's reserved ``base`` field, kept when a spec has one.
    base: Any = None
    #: Where the spec was read from (for messages; never written).
    source: str | None = attrs.field(default=None, eq=False)

    # -- access ----------------------------------------------------------
    def entries(self, name: str) -> list[dict[str, Any]]:
        """All entries of one distribution type (``"debian"``, ``"conda"``...)."""
        return [d for d in self.distributions if d.get("name") == name]

    def get_distribution(self, name: str) -> dict[str, Any] | None:
        """The entry of type ``name``, several ones merged into one; ``None`` if absent."""
        found = self.entries(name)
        if not found:
            return None
        return found[0] if len(found) == 1 else merge_entries(found)

    def names(self) -> list[str]:
        """Distribution types present, in order of first appearance."""
        return list(dict.fromkeys(str(d.get("name")) for d in self.distributions))

    def add(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Add tracer results, merging an entry into an existing one of the same type."""
        for entry in entries:
            existing = self.entries(str(entry.get("name")))
            if existing:
                index = self.distributions.index(existing[0])
                self.distributions[index] = merge_entries([existing[0], entry])
            else:
                self.distributions.append(dict(entry))

    # -- serialisation ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data in the old tool's key order, empty parts left out as it did."""
        out: dict[str, Any] = {"version": self.version}
        if self.base:
            out["base"] = self.base
        if self.distributions:
            out["distributions"] = [_clean(d) for d in self.distributions]
        if self.files:
            out["files"] = sorted(self.files)
        return out

    def to_yaml(self, with_header: bool = True) -> str:
        return dump_yaml(self.to_dict(), header() if with_header else None)

    def write(self, path: str | os.PathLike[str], *, exclusive: bool = False) -> None:
        """Write the spec atomically; a spec is the user's to share, so it gets the usual mode, not 0600.

        The file's directory must exist (see :func:`check_output_file`). With
        ``exclusive`` an existing file is never replaced, even one that
        appeared while the spec was being made (``retrace -o``: the user's file).
        """
        check_output_file(path)
        if not exclusive:
            from reproman.yamlio import atomic_write

            atomic_write(path, self.to_yaml(), mode=None)
            return
        from reproman.localfiles import atomic_create

        try:
            atomic_create(path, self.to_yaml())
        except FileExistsError:
            raise _exists(path) from None

    @classmethod
    def from_dict(cls, data: Any, source: str = "<spec>", text: str | None = None) -> EnvironmentSpec:
        """Validate loaded YAML data; errors name ``source`` and, given ``text``, the line."""
        return _validate(data, source, text)


def check_output_file(path: str | os.PathLike[str], *, exclusive: bool = False) -> None:
    """Refuse an output path that is a directory or whose directory does not exist (or, ``exclusive``, a file).

    A spec goes where the user said: a mistyped ``-o`` must not leave a tree
    of new directories behind (as ``cp`` or a shell redirection would not),
    nor replace a file of the user's with a spec (as ``jobs --report -o``
    would not). Called before tracing, so a long trace is not wasted on a bad path.
    """
    from reproman.localfiles import write_target

    target = write_target(path)
    if target.is_dir():
        raise UsageError(f"{path} is a directory", hint="Give a file name, e.g. -o spec.yml.")
    if exclusive and os.path.lexists(target):
        raise _exists(path)
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write {path}: directory {parent} does not exist",
                         hint="Create it first or choose another -o path; nothing was written.")


def _exists(path: str | os.PathLike[str]) -> UsageError:
    return UsageError(f"{path} exists; not replacing it with a spec",
                      hint="Choose another -o path, or remove the file first; nothing was written.")


# -- merging ------------------------------------------------------------------
def _package_key(item: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        str(item.get(k)) for k in ("name", "architecture", "path", "id", "root_hexsha") if item.get(k) is not None
    ) or (repr(sorted(item.items(), key=str)),)


def merge_entries(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One entry from several of the same type.

    Scalars of the first entry win; lists are concatenated without
    duplicates, and list items that are packages (mappings) with the same
    identity (name + architecture, path, or id) are merged, their ``files``
    joined. Tracers that run in batches, and ``diff`` on specs with repeated
    entries, both rely on this.
    """
    merged: dict[str, Any] = {}
    for entry in entries:
        for key, value in entry.items():
            if key not in merged or merged[key] in (None, "", [], {}):
                merged[key] = _copy(value)
            elif isinstance(merged[key], list) and isinstance(value, list):
                merged[key] = _merge_lists(merged[key], value)
            elif isinstance(merged[key], dict) and isinstance(value, dict):
                merged[key] = {**value, **merged[key]}
    return merged


def _merge_lists(left: list[Any], right: list[Any]) -> list[Any]:
    out = list(left)
    index = {_package_key(x): i for i, x in enumerate(out) if isinstance(x, Mapping)}
    seen = {repr(x) for x in out if not isinstance(x, Mapping)}
    for item in right:
        if isinstance(item, Mapping):
            key = _package_key(item)
            if key in index:
                out[index[key]] = merge_entries([out[index[key]], item])
            else:
                index[key] = len(out)
                out.append(_copy(item))
        elif repr(item) not in seen:
            seen.add(repr(item))
            out.append(item)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def _clean(value: Any) -> Any:
    """Drop ``None`` and empty values, as the old writer did (its loader expects that)."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if v is not None and v != [] and v != {} and v != ""}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# -- YAML ---------------------------------------------------------------------
def _yaml(typ: str) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ=typ, pure=True)
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def _spec_constructor() -> Any:
    """A safe constructor that keeps unquoted floats and timestamps as written."""
    from ruamel.yaml.constructor import SafeConstructor

    class SpecConstructor(SafeConstructor):  # type: ignore[misc]
        pass

    def as_text(self: Any, node: Any) -> Any:
        return self.construct_scalar(node)

    SpecConstructor.add_constructor("tag:yaml.org,2002:float", as_text)
    SpecConstructor.add_constructor("tag:yaml.org,2002:timestamp", as_text)
    return SpecConstructor


def _spec_representer() -> Any:
    """A safe representer that quotes strings YAML 1.1 readers would misread."""
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.representer import SafeRepresenter
    from ruamel.yaml.resolver import VersionedResolver

    resolver = VersionedResolver(version=(1, 1))

    class SpecRepresenter(SafeRepresenter):  # type: ignore[misc]
        def represent_str(self, data: str) -> Any:
            tag = resolver.resolve(ScalarNode, data, (True, False))
            if tag != "tag:yaml.org,2002:str":
                return self.represent_scalar("tag:yaml.org,2002:str", data, style="'")
            return super().represent_str(data)

    SpecRepresenter.add_representer(str, SpecRepresenter.represent_str)
    return SpecRepresenter


def dump_yaml(data: Any, header_text: str | None = None) -> str:
    """YAML text of spec data, with a ``#`` comment header.

    Spec data is plain (mappings, lists, scalars), so it is written by the
    small emitter below instead of ruamel's pure-Python one, which took a
    third of ``retrace /usr/bin/*`` (0.2 s for a 5,000-node spec). The
    output is the layout ruamel writes with our settings (block style,
    sequences indented 2 under their key) and is checked against both
    ruamel and PyYAML in the tests; :func:`dump_yaml_ruamel` is kept as that
    reference.
    """
    out: list[str] = []
    if header_text:
        out.extend(f"# {line}" if line else "#" for line in header_text.splitlines())
    if isinstance(data, Mapping) and data:
        _emit_mapping(data, 0, out)
    elif isinstance(data, list) and data:
        _emit_sequence(data, 0, out)
    else:
        out.append(_scalar(data))
    return "\n".join(out) + "\n"


def dump_yaml_ruamel(data: Any, header_text: str | None = None) -> str:
    """The same text through ruamel.yaml (slower; the reference for :func:`dump_yaml`)."""
    yaml = _yaml("safe")
    yaml.Representer = _spec_representer()
    yaml.sort_base_mapping_type_on_output = False  # keep name first, as tracers built it
    stream = io.StringIO()
    if header_text:
        for line in header_text.splitlines():
            stream.write(f"# {line}\n" if line else "#\n")
    yaml.dump(_copy(data), stream)
    return stream.getvalue()


_PLAIN_RE = re.compile(r"^[A-Za-z0-9_/.][A-Za-z0-9_/.+~:@=-]*$")
_STR = "tag:yaml.org,2002:str"


@functools.lru_cache(maxsize=1)
def _resolvers() -> tuple[Any, Any, Any]:
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    return ScalarNode, VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2))


@functools.lru_cache(maxsize=65536)
def _string(text: str) -> str:
    """A string as a YAML scalar that YAML 1.1 and 1.2 readers both read back as that string."""
    if _PLAIN_RE.match(text) and not text.endswith(":"):
        node, yaml11, yaml12 = _resolvers()
        if yaml11.resolve(node, text, (True, False)) == _STR and yaml12.resolve(node, text, (True, False)) == _STR:
            return text
    if text.isprintable() and text == text.strip("\ufeff"):
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return _string(str(value))


def _emit_mapping(data: Mapping[Any, Any], indent: int, out: list[str]) -> None:
    pad = " " * indent
    for key, value in data.items():
        name = _scalar(key)
        if isinstance(value, Mapping) and value:
            out.append(f"{pad}{name}:")
            _emit_mapping(value, indent + 2, out)
        elif isinstance(value, (list, tuple)) and value:
            out.append(f"{pad}{name}:")
            _emit_sequence(value, indent + 2, out)
        else:
            out.append(f"{pad}{name}: {_scalar(value)}")


def _emit_sequence(items: Sequence[Any], indent: int, out: list[str]) -> None:
    pad = " " * indent
    for item in items:
        if (isinstance(item, Mapping) or isinstance(item, (list, tuple))) and item:
            start = len(out)
            if isinstance(item, Mapping):
                _emit_mapping(item, indent + 2, out)
            else:
                _emit_sequence(item, indent + 2, out)
            out[start] = f"{pad}- {out[start][indent + 2:]}"
        else:
            out.append(f"{pad}- {_scalar(item)}")


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse spec text; syntax errors become a :class:`SpecError` naming file and line."""
    return yamlio.load(text, source, constructor=_spec_constructor())


def load_spec(path: str | os.PathLike[str]) -> EnvironmentSpec:
    """Read a spec file written by this ReproMan or the old one."""
    text = yamlio.read_text(path)
    return loads_spec(text, str(path))


def loads_spec(text: str, source: str = "<string>") -> EnvironmentSpec:
    return EnvironmentSpec.from_dict(parse_yaml(text, source), source, text)


def as_spec(spec: str | os.PathLike[str] | EnvironmentSpec) -> EnvironmentSpec:
    """A spec object as is, a file name loaded (``retrace`` returns the former, users give the latter)."""
    return spec if isinstance(spec, EnvironmentSpec) else load_spec(spec)


# -- validation ------------------------------------------------------------------
def _line_of(text: str | None, path: Sequence[Any]) -> int | None:
    """1-based line of the node at ``path`` (keys and indexes), found only on errors."""
    if text is None:
        return None
    try:
        node = _yaml("rt").load(text)
    except Exception:  # we only wanted a line number
        return None
    line = 0
    for step in path:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                line = (lc.key(step) if isinstance(step, str) else lc.item(step))[0]
            node = node[step]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line + 1


def _fail(message: str, source: str, text: str | None, path: Sequence[Any]) -> SpecError:
    line = _line_of(text, path)
    where = f"{source}:{line}" if line else source
    return SpecError(f"invalid spec {where}: {message}")


def _textify(value: Any, key: str | None = None) -> Any:
    """Versions and names as text whatever YAML made of them (``1.10``, ``2``)."""
    if isinstance(value, Mapping):
        return {str(k): _textify(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_textify(v, key) for v in value]
    if key in _TEXT_FIELDS and value is not None and not isinstance(value, (str, bool)):
        return str(value)
    return value


#: Fields that hold lists of records (packages, sources...) at any depth of an entry.
_LIST_OF_MAPPINGS = frozenset({"packages", "apt_sources", "sources", "images", "environments"})


def _shape_problem(value: Any, where: list[Any], entry: str) -> tuple[str, list[Any]] | None:
    """The first field of an entry that tracers cannot read, with its path (names, versions, files).

    Tracers compare and install entries by these fields; a list where a
    version belongs, or a number where a file list belongs, must be
    reported with its line here rather than fail inside a tracer.
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int, float)):
                return f"key {key!r} in the {entry} entry must be text", where
            if key in _TEXT_FIELDS and isinstance(item, (Mapping, list, tuple, set)):
                kind = "mapping" if isinstance(item, Mapping) else "list"
                return f"{key!r} of the {entry} entry must be text, not a {kind}", [*where, key]
            if key in _LIST_OF_MAPPINGS and item is not None and (
                not isinstance(item, list) or not all(isinstance(v, Mapping) for v in item)
            ):
                return f"{key!r} of the {entry} entry must be a list of mappings", [*where, key]
            if key == "files" and item is not None and (
                not isinstance(item, list) or not all(isinstance(f, str) for f in item)
            ):
                return f"'files' of the {entry} entry must be a list of paths", [*where, key]
            found = _shape_problem(item, [*where, key], entry)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _shape_problem(item, [*where, i], entry)
            if found is not None:
                return found
    elif not isinstance(value, (str, int, float, bool, type(None), datetime.date)):
        return f"unexpected value {value!r} in the {entry} entry"[:100], where
    return None


def _validate(data: Any, source: str, text: str | None) -> EnvironmentSpec:
    if data is None:
        raise SpecError(f"invalid spec {source}: the file is empty")
    if not isinstance(data, Mapping):
        raise _fail("expected a mapping with 'version', 'distributions' and 'files'", source, text, [])
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        hint = ""
        if "runs" in data or "other_files" in data:
            hint = " (this looks like a ReproZip trace: use 'reproman retrace --spec' on it first)"
        raise _fail(
            f"unknown key {unknown[0]!r}; a spec has {', '.join(TOP_LEVEL_KEYS)}{hint}", source, text, [unknown[0]]
        )
    version = str(data.get("version") or SPEC_VERSION)
    distributions = data.get("distributions") or []
    if isinstance(distributions, Mapping):
        # The old format's compact form: {debian: {...}, conda: {...}}.
        for name, fields in distributions.items():
            if fields is not None and not isinstance(fields, Mapping):
                raise _fail(f"distribution {name!r} must be a mapping of its fields", source, text,
                            ["distributions", name])
        distributions = [{**(fields or {}), "name": name} for name, fields in distributions.items()]
    if not isinstance(distributions, list):
        raise _fail("'distributions' must be a list of entries", source, text, ["distributions"])
    entries: list[dict[str, Any]] = []
    for i, entry in enumerate(distributions):
        where = ["distributions", i]
        if not isinstance(entry, Mapping):
            raise _fail(f"distribution entry {i + 1} must be a mapping", source, text, where)
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise _fail(f"distribution entry {i + 1} has no 'name' (e.g. name: debian)", source, text, where)
        problem = _shape_problem(entry, where, entry["name"])
        if problem is not None:
            raise _fail(problem[0], source, text, problem[1])
        entries.append(_textify(dict(entry)))
    files = data.get("files") or []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise _fail("'files' must be a list of paths", source, text, ["files"])
    return EnvironmentSpec(distributions=entries, files=list(files), version=version, base=data.get("base"),
                           source=source)
