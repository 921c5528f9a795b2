"""The contract every resource type must pass: create, refresh, start, stop, delete, through the public API.

Users meet a resource through ``reproman create``/``ls``/``start``/``stop``/
``delete`` and the sessions it opens; the suite does the same with
:mod:`reproman.resources.commands` (what :mod:`reproman.api` calls): the
inventory records what ``create`` made, a second ``create`` of the same
name is refused with nothing changed, ``ls
--refresh`` says what the backend says, a stopped resource is not used as if
it ran, ``delete`` forgets it and destroys the real thing, and a bad backend
parameter is refused with one line before anything is made. Subclass in
the backend's tests::

    from reproman.testing.resource_contract import ResourceContract

    class TestMyResource(ResourceContract):
        resource_type = "mycloud"
        supports_start_stop = True

        @pytest.fixture
        def backend_parameters(self):
            return {"region": "test-1"}

Optional: :meth:`ResourceContract.assert_gone`, to check that the real thing
(a container, an instance) is gone after ``delete``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from reproman.errors import ReproManError, ResourceExistsError, ResourceNotFoundError
from reproman.resources import commands as resource_commands
from reproman.resources.base import ONLINE, RUNNING, STOPPED
from reproman.resources.session import CommandResult


class ResourceContract:
    """Lifecycle and inventory, as users see them."""

    #: The resource type under test (``reproman create -t TYPE``).
    resource_type: str = ""
    #: ``start``/``stop`` work; when False they must be refused with one line, leaving the resource usable.
    supports_start_stop: bool = False
    #: Statuses ``ls --refresh`` may show for a resource that runs, and for a stopped one.
    running_statuses: frozenset[str] = frozenset({ONLINE, RUNNING})
    stopped_statuses: frozenset[str] = frozenset({STOPPED})

    @pytest.fixture
    def backend_parameters(self) -> Mapping[str, Any]:
        """What ``create -b`` gets for a resource of this type that works here."""
        return {}

    @pytest.fixture
    def name(self) -> Iterator[str]:
        """A fresh resource name; the resource is deleted afterwards if a test left it."""
        name = f"contract-{uuid.uuid4().hex[:8]}"
        yield name
        try:
            resource_commands.delete(name, skip_confirmation=True, force=True)
        except ResourceNotFoundError:
            pass

    @pytest.fixture
    def created(self, name: str, backend_parameters: Mapping[str, Any]) -> str:
        resource_commands.create(name, self.resource_type, dict(backend_parameters))
        return name

    def assert_gone(self, record: Mapping[str, Any]) -> None:
        """The real thing behind a deleted resource no longer exists (a backend with one overrides this)."""

    def run(self, name: str, command: str, *args: str) -> CommandResult:
        """``reproman execute`` of a command on the resource."""
        result = resource_commands.execute(command, list(args), resref=name)
        assert isinstance(result, CommandResult), result
        return result

    def row(self, name: str, refresh: bool = False) -> dict[str, Any]:
        (row,) = resource_commands.ls([name], refresh=refresh)
        return row

    def assert_one_line(self, error: BaseException) -> None:
        message = str(error).strip()
        assert message and "\n" not in message, f"not one line: {message!r}"

    # -- create ------------------------------------------------------------------------------
    def test_create_records_the_resource_and_it_runs_commands(self, created: str) -> None:
        row = self.row(created)
        assert row["type"] == self.resource_type and row["id"], row
        assert row["status"] in self.running_statuses, row
        result = self.run(created, "sh", "-c", "printf '%s' \"$((6 * 7))\"")
        assert (result.returncode, result.stdout) == (0, "42")

    def test_create_of_a_taken_name_is_refused_with_nothing_changed(
        self, created: str, backend_parameters: Mapping[str, Any]
    ) -> None:
        before = resource_commands.ls(verbose=True)
        with pytest.raises(ResourceExistsError) as info:
            resource_commands.create(created, self.resource_type, dict(backend_parameters))
        self.assert_one_line(info.value)
        assert resource_commands.ls(verbose=True) == before

    def test_a_bad_backend_parameter_is_refused_before_anything_is_made(
        self, name: str, backend_parameters: Mapping[str, Any]
    ) -> None:
        before = resource_commands.ls(verbose=True)
        with pytest.raises(ReproManError) as info:
            resource_commands.create(name, self.resource_type, {**backend_parameters, "reproman_contract_no_such_parameter": "1"})
        self.assert_one_line(info.value)
        assert "reproman_contract_no_such_parameter" in str(info.value)
        assert resource_commands.ls(verbose=True) == before

    # -- refresh -----------------------------------------------------------------------------
    def test_refresh_says_what_the_backend_says(self, created: str) -> None:
        assert self.row(created, refresh=True)["status"] in self.running_statuses

    # -- start and stop ------------------------------------------------------------------------
    def test_stop_and_start(self, created: str) -> None:
        if not self.supports_start_stop:
            for action in (resource_commands.stop, resource_commands.start):
                with pytest.raises(ReproManError) as info:
                    action(created)
                self.assert_one_line(info.value)
            assert self.run(created, "true").returncode == 0, "refusing to stop broke the resource"
            return
        resource_commands.stop(created)
        assert self.row(created, refresh=True)["status"] in self.stopped_statuses
        resource_commands.start(created)
        assert self.row(created, refresh=True)["status"] in self.running_statuses
        assert self.run(created, "true").returncode == 0

    # -- delete --------------------------------------------------------------------------------
    def test_delete_forgets_the_resource_and_destroys_it(self, created: str) -> None:
        (record,) = resource_commands.ls([created], verbose=True)
        resource_commands.delete(created, skip_confirmation=True)
        with pytest.raises(ResourceNotFoundError) as info:
            resource_commands.ls([created])
        self.assert_one_line(info.value)
        with pytest.raises(ResourceNotFoundError):
            resource_commands.execute("true", [], resref=created)
        self.assert_gone(record)
