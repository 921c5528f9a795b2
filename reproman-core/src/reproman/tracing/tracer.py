"""The Tracer contract: one class per kind of distribution (debian, conda, git...).

A tracer does three jobs for its distribution type, so that a third-party
plugin adds a new type in one class:

* :meth:`Tracer.identify` - find which of many files belong to it (retrace);
* :meth:`Tracer.compare` - package-level differences between two specs' entries
  (diff) and whether one satisfies another (diff --satisfies);
* :meth:`Tracer.install` - rebuild the entry on a resource (install).

Distribution entries are the plain mappings that appear under
``distributions:`` in a spec, with the old ReproMan's field names (``name:
debian``, ``packages:``, ``apt_sources:``...), so specs round-trip between
the old tool and this one.

Tracers work through a :class:`~reproman.resources.session.Session` so
``retrace --resource R`` traces files on any resource; they must ask about
many files per remote command (never one command per file).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

if TYPE_CHECKING:
    from reproman.resources.session import Session


@attrs.frozen(kw_only=True)
class TraceResult:
    """What one tracer found: distribution entries and the files it claimed."""

    distributions: list[dict[str, Any]] = attrs.Factory(list)
    claimed: frozenset[str] = frozenset()


@attrs.frozen(kw_only=True)
class PackageDifference:
    """One package that differs between two entries (``None`` = absent on that side)."""

    key: str
    left: str | None
    right: str | None
    detail: str = ""


@attrs.frozen(kw_only=True)
class Comparison:
    """Differences between two entries of the same distribution type."""

    name: str
    differences: list[PackageDifference] = attrs.Factory(list)
    #: Fields of the distribution itself (not packages) that differ.
    fields: list[PackageDifference] = attrs.Factory(list)

    @property
    def equal(self) -> bool:
        return not self.differences and not self.fields


class Tracer(ABC):
    """Base for distribution tracers; see the module docstring."""

    #: The ``name:`` this tracer writes under ``distributions:``.
    spec_name: ClassVar[str] = ""
    #: Whether :meth:`identify` wants directories too (a package database
    #: lists directories under every package that ships a file in them, so
    #: the debian and redhat tracers say no; venv and git trace trees).
    handles_dirs: ClassVar[bool] = True
    #: Whether :meth:`identify` also gets the arguments that are not paths
    #: on the resource (``busybox:latest``), as the docker tracer wants.
    accepts_references: ClassVar[bool] = False
    #: For ``diff`` of types without their own :meth:`compare`: the list field
    #: holding the packages, and the package fields that identify one.
    collection: ClassVar[str] = "packages"
    package_key: ClassVar[tuple[str, ...]] = ("name",)

    def __init__(self, session: Session) -> None:
        self.session = session

    @abstractmethod
    def identify(self, paths: Sequence[str]) -> TraceResult:
        """Claim the files of ``paths`` that belong to this distribution type.

        ``paths`` are absolute, canonical paths on the session's resource
        (symlinks already resolved by core) that earlier tracers did not claim.
        When a path the user gave was a symlink, both the link itself and its
        target are in ``paths`` (the link may belong to another package or a
        venv). Directories are left out unless :attr:`handles_dirs`;
        non-path arguments come in only if :attr:`accepts_references`.
        Claim paths exactly as given here.
        """

    @classmethod
    def compare(cls, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
        """Package-level differences between two entries of this type."""
        raise NotImplementedError(f"diff is not implemented for {cls.spec_name!r} distributions")

    @classmethod
    def satisfies(cls, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
        """What ``candidate`` lacks to satisfy ``requirement`` (equal = satisfied)."""
        raise NotImplementedError(f"diff --satisfies is not implemented for {cls.spec_name!r} distributions")

    @classmethod
    def install(cls, session: Session, entry: Mapping[str, Any]) -> None:
        """Make the resource behind ``session`` provide ``entry``'s packages."""
        raise NotImplementedError(f"install is not implemented for {cls.spec_name!r} distributions")
