"""The contract every tracer must pass: identify, compare, satisfies, install.

The cases are the ones where the easy answer is wrong. A tracer's test
gives paths it owns together with the package fields a correct trace
records for them, read from the package manager independently (for Debian,
a rebuilt package such as bash ``5.2.15-2+b8`` whose source version is
``5.2.15-2``: recording the source version passes every easy test and then
fails ``diff --satisfies`` and ``install``). Subclass in the tracer's
tests::

    from reproman.testing.tracer_contract import TracerContract

    class TestMyTracer(TracerContract):
        tracer_class = MyTracer

        @pytest.fixture
        def owned(self):
            return {"/opt/x/bin/tool": {"name": "tool", "version": "1.2+b1"}}

Fixtures: ``owned`` (required: path on the resource -> fields the package
holding it must have), ``session`` (default: this machine's shell) and
``foreign_path`` (a file no package of this type owns; default: a fresh
temporary file). :class:`TracerInstallContract` adds the install round
trip, with an ``install_session`` where installing is safe (a throwaway
container) and ``installable_paths`` traced on ``session`` and absent there;
:class:`FullTracerContract` is both.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reproman.errors import ReproManError
from reproman.resources.session import Session
from reproman.tracing.tracer import Tracer, TraceResult


class _TracerFixtures:
    #: The tracer under test.
    tracer_class: ClassVar[type[Tracer]]

    @pytest.fixture
    def session(self) -> Iterator[Session]:
        from reproman.resources.shell import ShellSession

        with ShellSession() as session:
            yield session

    def entry_of(self, result: TraceResult) -> dict[str, Any]:
        """The one entry of this tracer's type in ``result``."""
        entries = [d for d in result.distributions if d.get("name") == self.tracer_class.spec_name]
        assert len(entries) == 1, f"expected one {self.tracer_class.spec_name!r} entry, got {result.distributions}"
        return entries[0]

    def packages(self, entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = list(entry.get(self.tracer_class.collection) or [])
        return found


class TracerContract(_TracerFixtures):
    """identify, compare and satisfies, on the real package manager of a resource."""

    #: Remote commands one :meth:`Tracer.identify` may run, whatever the number of paths.
    max_identify_commands: int = 4

    @pytest.fixture
    def foreign_path(self, tmp_path: Path) -> str:
        path = tmp_path / "nobody owns me.txt"
        path.write_text("made by the test\n")
        return str(path)

    # -- identify ---------------------------------------------------------------------------
    def test_identify_records_what_the_package_manager_says(self, session: Session,
                                                           owned: Mapping[str, Mapping[str, Any]]) -> None:
        result = self.tracer_class(session).identify(list(owned))
        assert set(owned) <= set(result.claimed), f"not claimed: {sorted(set(owned) - set(result.claimed))}"
        packages = self.packages(self.entry_of(result))
        for path, fields in owned.items():
            matching = [p for p in packages if all(p.get(k) == v for k, v in fields.items())]
            assert matching, (f"{path}: no package records {dict(fields)}; recorded: "
                              f"{[{k: p.get(k) for k in fields} for p in packages]}")

    def test_identify_leaves_foreign_files_alone(self, session: Session, owned: Mapping[str, Mapping[str, Any]],
                                                 foreign_path: str) -> None:
        result = self.tracer_class(session).identify([foreign_path, *owned])
        assert foreign_path not in result.claimed
        assert set(owned) <= set(result.claimed)

    def test_identify_asks_a_bounded_number_of_times_for_many_paths(
        self, session: Session, owned: Mapping[str, Mapping[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        strangers = []
        for i in range(300):
            path = tmp_path / f"stranger {i}"
            path.write_text(str(i))
            strangers.append(str(path))
        calls: list[Any] = []
        plain = session.execute_command

        def counting(*args: Any, **kwargs: Any) -> Any:
            calls.append(args[0] if args else kwargs.get("command"))
            return plain(*args, **kwargs)

        monkeypatch.setattr(session, "execute_command", counting)
        result = self.tracer_class(session).identify([*owned, *strangers])
        assert set(owned) <= set(result.claimed)
        assert 1 <= len(calls) <= self.max_identify_commands, f"{len(calls)} commands for {len(owned) + 300} paths"

    # -- compare and satisfies -------------------------------------------------------------------
    @pytest.fixture
    def traced(self, session: Session, owned: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return self.entry_of(self.tracer_class(session).identify(list(owned)))

    def with_version(self, entry: Mapping[str, Any], index: int, version: str) -> dict[str, Any]:
        """``entry`` with package ``index`` at ``version`` (a subclass may know a better way to change one)."""
        changed = copy.deepcopy(dict(entry))
        changed[self.tracer_class.collection][index]["version"] = version
        return changed

    def without(self, entry: Mapping[str, Any], index: int) -> dict[str, Any]:
        changed = copy.deepcopy(dict(entry))
        del changed[self.tracer_class.collection][index]
        return changed

    def test_compare_is_equal_for_the_same_trace(self, traced: dict[str, Any]) -> None:
        assert self.tracer_class.compare(traced, copy.deepcopy(traced)).equal

    def test_compare_names_the_package_whose_version_changed(self, traced: dict[str, Any]) -> None:
        first = self.packages(traced)[0]
        changed = self.with_version(traced, 0, f"{first['version']}.1")
        comparison = self.tracer_class.compare(traced, changed)
        assert not comparison.equal
        assert len(comparison.differences) == 1, comparison.differences
        difference = comparison.differences[0]
        assert str(first["name"]) in difference.key
        assert (difference.left, difference.right) == (str(first["version"]), f"{first['version']}.1")

    def test_satisfies_needs_every_package_at_the_recorded_version(self, traced: dict[str, Any],
                                                                   owned: Mapping[str, Mapping[str, Any]]) -> None:
        tracer = self.tracer_class
        assert tracer.satisfies(traced, copy.deepcopy(traced)).equal, "a trace must satisfy itself"
        # The source version of a rebuilt package, where the binary version was recorded: not the same package.
        for index, package in enumerate(self.packages(traced)):
            source = package.get("source_version")
            if source and source != package.get("version"):
                assert not tracer.satisfies(traced, self.with_version(traced, index, str(source))).equal, (
                    f"{package['name']} {source} (its source version) satisfies a need for {package['version']}")
        if len(self.packages(traced)) > 1:
            assert not tracer.satisfies(traced, self.without(traced, 0)).equal, "a missing package satisfied"
            assert tracer.satisfies(self.without(traced, 0), traced).equal, "more than needed did not satisfy"


class TracerInstallContract(_TracerFixtures):
    """install: what was traced on one resource, installed on another, traces the same there."""

    #: Set False for a tracer that cannot install: it must then refuse with one line.
    supports_install: bool = True

    def test_install_provides_what_was_traced(self, session: Session, install_session: Session,
                                              installable_paths: Sequence[str]) -> None:
        original = self.entry_of(self.tracer_class(session).identify(list(installable_paths)))
        if not self.supports_install:
            with pytest.raises(ReproManError) as info:
                self.tracer_class.install(install_session, original)
            assert "\n" not in str(info.value).strip()
            return
        before = self.tracer_class(install_session).identify(list(installable_paths))
        assert not set(installable_paths) & set(before.claimed), "installable_paths are already there"
        self.tracer_class.install(install_session, original)
        rebuilt = self.entry_of(self.tracer_class(install_session).identify(list(installable_paths)))
        comparison = self.tracer_class.satisfies(original, rebuilt)
        assert comparison.equal, comparison


class FullTracerContract(TracerContract, TracerInstallContract):
    """Everything a tracer must do; subclass this where an install target exists."""
