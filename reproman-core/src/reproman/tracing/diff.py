"""``diff`` and ``diff --satisfies`` for every distribution type.

Entries are paired by their ``name:`` and handed to the tracer registered
for that type (its ``compare``/``satisfies``), so a plugin's distribution
type is diffed by the plugin. Types whose tracer has no comparison of its
own, or that no installed tracer knows (an old spec's ``neurodebian``), fall
back to a generic comparison of the entry's package list, keyed by the
tracer's ``package_key`` (or a guess: name, id, path...).

``diff --satisfies A B`` asks, as in the old ReproMan, whether environment
A satisfies the needs of environment B: every package B lists must be in A
at the same or a later version, and every file B lists must be in A (as a
file or in one of A's packages).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from reproman.tracing.spec import EnvironmentSpec, merge_entries
from reproman.tracing.tracer import Comparison, PackageDifference, Tracer

lgr = logging.getLogger(__name__)

#: How reports name the packages of each type (the old tool's wording).
LABELS = {
    "debian": "Debian package",
    "neurodebian": "Debian package",
    "redhat": "RPM package",
    "conda": "Conda package",
    "venv": "Venv environment",
    "pip": "Pip package",
    "git": "Git repository",
    "svn": "SVN repository",
    "docker": "Docker image",
    "singularity": "Singularity image",
}
_COLLECTIONS = ("packages", "images", "environments", "repositories")
_KEY_FIELDS = ("name", "id", "path", "root_hexsha", "url")
_VALUE_FIELDS = ("version", "hexsha", "revision", "id")
#: Old types handled by another type's code.
_ALIASES = {"neurodebian": "debian"}


def label(name: str, plural: bool = False) -> str:
    text = LABELS.get(name, f"{name} package")
    if not plural:
        return text
    return text[: -len("repository")] + "repositories" if text.endswith("repository") else text + "s"


@attrs.frozen(kw_only=True)
class DiffReport:
    """Outcome of ``diff``: per-type comparisons and the loose files on each side."""

    method: str  # "diff" or "satisfies"
    left: str
    right: str
    comparisons: list[Comparison] = attrs.Factory(list)
    #: diff: files only in the left spec / only in the right one.
    #: satisfies: ``right_only`` holds the required files the left spec lacks.
    left_only: list[str] = attrs.Factory(list)
    right_only: list[str] = attrs.Factory(list)

    @property
    def equal(self) -> bool:
        """Same environments (diff), or requirement satisfied (satisfies)."""
        return all(c.equal for c in self.comparisons) and not self.left_only and not self.right_only

    def to_dict(self) -> dict[str, Any]:
        def diff_dict(d: PackageDifference) -> dict[str, Any]:
            return {"key": d.key, "left": d.left, "right": d.right, **({"detail": d.detail} if d.detail else {})}

        return {
            "method": self.method,
            "left": self.left,
            "right": self.right,
            "equal": self.equal,
            "distributions": [
                {"name": c.name, "packages": [diff_dict(d) for d in c.differences],
                 "fields": [diff_dict(d) for d in c.fields]}
                for c in self.comparisons if not c.equal
            ],
            "files": {"left_only": self.left_only, "right_only": self.right_only},
        }

    def render(self) -> str:
        """The readable report (the old tool's ``<``/``---``/``>`` layout)."""
        lines: list[str] = []
        if self.method == "satisfies":
            for comp in self.comparisons:
                if comp.equal:
                    continue
                lines.append(f"{label(comp.name, plural=True)} not satisfied by {self.left}:")
                for d in comp.differences:
                    lines.append(f"> {d.key} {d.left or ''}".rstrip() + (f" ({d.detail})" if d.detail else ""))
            if self.right_only:
                lines.append(f"Files not in {self.left}:")
                lines.extend(f"> {f}" for f in self.right_only)
            return "\n".join(lines) + ("\n" if lines else "")
        for comp in self.comparisons:
            if comp.equal:
                continue
            only_left = [d for d in comp.differences if d.right is None and d.left is not None]
            only_right = [d for d in comp.differences if d.left is None and d.right is not None]
            changed = [d for d in comp.differences if d not in only_left and d not in only_right]
            if only_left or only_right:
                lines.append(f"{label(comp.name, plural=True)}:")
                lines.extend(f"< {d.key} {d.left}" for d in only_left)
                if only_left and only_right:
                    lines.append("---")
                lines.extend(f"> {d.key} {d.right}" for d in only_right)
            for d in changed:
                lines.append(f"{label(comp.name)} {d.key}:")
                lines.append(f"< {d.left if d.left is not None else '(none)'}")
                lines.append("---")
                lines.append(f"> {d.right if d.right is not None else '(none)'}")
            for f in comp.fields:
                lines.append(f"{comp.name} {f.key}:")
                lines.append(f"< {f.left if f.left is not None else '(none)'}")
                lines.append("---")
                lines.append(f"> {f.right if f.right is not None else '(none)'}")
        if self.left_only or self.right_only:
            lines.append("Files:")
            lines.extend(f"< {f}" for f in self.left_only)
            if self.left_only and self.right_only:
                lines.append("---")
            lines.extend(f"> {f}" for f in self.right_only)
        return "\n".join(lines) + ("\n" if lines else "")


# -- dispatch --------------------------------------------------------------------------
def tracer_for(name: str) -> type[Tracer] | None:
    """The registered tracer class for a distribution type, or ``None``."""
    from reproman.plugins.manager import get_plugin_manager

    name = _ALIASES.get(name, name)
    for record in get_plugin_manager().tracers():
        if record.spec_name == name:
            cls: type[Tracer] = record.load()
            return cls
    return None


def compare_entries(name: str, left: Mapping[str, Any], right: Mapping[str, Any],
                    tracer: type[Tracer] | None = None) -> Comparison:
    """Differences between two entries of type ``name``."""
    if tracer is not None:
        try:
            comp = tracer.compare(left, right)
            return attrs.evolve(comp, name=name) if comp.name != name else comp
        except NotImplementedError:
            pass
    return generic_compare(name, left, right, tracer)


def satisfies_entries(name: str, requirement: Mapping[str, Any], candidate: Mapping[str, Any],
                      tracer: type[Tracer] | None = None) -> Comparison:
    """What ``candidate`` lacks to satisfy ``requirement`` (both of type ``name``)."""
    if tracer is not None:
        try:
            comp = tracer.satisfies(requirement, candidate)
            return attrs.evolve(comp, name=name) if comp.name != name else comp
        except NotImplementedError:
            pass
    return generic_satisfies(name, requirement, candidate, tracer)


# -- the generic fallback -----------------------------------------------------------------
def _collection(entry: Mapping[str, Any], tracer: type[Tracer] | None) -> str:
    if tracer is not None and tracer.collection in entry:
        return tracer.collection
    return next((c for c in _COLLECTIONS if isinstance(entry.get(c), list)), "packages")


def _item_key(item: Mapping[str, Any], tracer: type[Tracer] | None) -> str:
    fields: Sequence[str]
    if tracer is not None and any(item.get(f) is not None for f in tracer.package_key):
        fields = tracer.package_key
    else:
        first = next((f for f in _KEY_FIELDS if item.get(f) is not None), None)
        fields = (first, "architecture") if first else ()
    parts = [str(item[f]) for f in fields if item.get(f) is not None]
    return ":".join(parts) if parts else repr(sorted(item.items(), key=str))


def _item_value(item: Mapping[str, Any]) -> str:
    for field in _VALUE_FIELDS:
        if item.get(field) is not None:
            return str(item[field])
    rest = {k: v for k, v in item.items() if k != "files"}
    return repr(sorted(rest.items(), key=str))


def _items(entry: Mapping[str, Any], tracer: type[Tracer] | None) -> dict[str, Mapping[str, Any]]:
    items = entry.get(_collection(entry, tracer)) or []
    return {_item_key(i, tracer): i for i in items if isinstance(i, Mapping)}


def generic_compare(name: str, left: Mapping[str, Any], right: Mapping[str, Any],
                    tracer: type[Tracer] | None = None) -> Comparison:
    """Items keyed by identity; differing ``version`` (or commit, or whole record) counts."""
    li, ri = _items(left, tracer), _items(right, tracer)
    diffs = []
    for key in sorted(set(li) | set(ri)):
        lv = _item_value(li[key]) if key in li else None
        rv = _item_value(ri[key]) if key in ri else None
        if lv != rv:
            diffs.append(PackageDifference(key=key, left=lv, right=rv))
    return Comparison(name=name, differences=diffs)


def generic_satisfies(name: str, requirement: Mapping[str, Any], candidate: Mapping[str, Any],
                      tracer: type[Tracer] | None = None) -> Comparison:
    """Each required item present with the same version (or commit) when one is given."""
    need, have = _items(requirement, tracer), _items(candidate, tracer)
    missing = []
    for key, item in sorted(need.items()):
        wanted = _item_value(item)
        if key not in have:
            missing.append(PackageDifference(key=key, left=wanted, right=None, detail="missing"))
        elif _item_value(have[key]) != wanted:
            missing.append(PackageDifference(key=key, left=wanted, right=_item_value(have[key]),
                                             detail=f"have {_item_value(have[key])}"))
    return Comparison(name=name, differences=missing)


# -- whole specs ------------------------------------------------------------------------------
def _entry(spec: EnvironmentSpec, name: str) -> dict[str, Any]:
    found = spec.entries(name)
    if not found:
        return {"name": name}
    return found[0] if len(found) == 1 else merge_entries(found)


def _packaged_files(spec: EnvironmentSpec) -> set[str]:
    files: set[str] = set(spec.files)
    for entry in spec.distributions:
        for collection in _COLLECTIONS:
            for item in entry.get(collection) or []:
                if isinstance(item, Mapping):
                    files.update(str(f) for f in item.get("files") or [])
    return files


def diff_specs(left: EnvironmentSpec, right: EnvironmentSpec, satisfies: bool = False) -> DiffReport:
    """Compare two specs; with ``satisfies``, whether ``left`` satisfies ``right``'s needs."""
    left_name = left.source or "PROV1"
    right_name = right.source or "PROV2"
    names = list(dict.fromkeys([*left.names(), *right.names()]))
    comparisons: list[Comparison] = []
    for name in names:
        tracer = tracer_for(name)
        if satisfies:
            if not right.entries(name):
                continue
            comparisons.append(satisfies_entries(name, _entry(right, name), _entry(left, name), tracer))
        else:
            comparisons.append(compare_entries(name, _entry(left, name), _entry(right, name), tracer))
    if satisfies:
        have = _packaged_files(left)
        return DiffReport(method="satisfies", left=left_name, right=right_name, comparisons=comparisons,
                          right_only=sorted(f for f in set(right.files) if f not in have))
    lf, rf = set(left.files), set(right.files)
    return DiffReport(method="diff", left=left_name, right=right_name, comparisons=comparisons,
                      left_only=sorted(lf - rf), right_only=sorted(rf - lf))
