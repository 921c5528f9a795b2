"""Every fault the issue names ends as a one-line ReproMan error (or, for a missing command, exit 127)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from docker_testlib import unique_name

from reproman.errors import ReproManError, ResourceConnectionError, ResourceError, SessionError
from reproman.resources.base import CONNECTION_ERROR, NOT_FOUND
from reproman_backend_docker.resource import DockerContainer
from reproman_backend_docker.session import DockerSession

Make = Callable[..., DockerContainer]
DOWN = "unix:///nonexistent/reproman-docker.sock"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and len(text) < 400, text
    return text


def test_engine_down_on_create(docker_client: Any) -> None:
    resource = DockerContainer("rmt-down", engine_url=DOWN)
    with pytest.raises(ResourceConnectionError) as info:
        resource.create()
    text = one_line(info.value)
    assert DOWN in text and "No such file or directory" in text and "dockerd" in text


def test_engine_down_from_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    resource = DockerContainer("rmt-down")
    with pytest.raises(ResourceConnectionError) as info:
        resource.create()
    assert "tcp://127.0.0.1:1" in one_line(info.value) and "refused" in str(info.value)
    resource.connect()
    assert resource.status == CONNECTION_ERROR


def test_engine_down_status_and_session(docker_client: Any) -> None:
    resource = DockerContainer("rmt-down", id="0123456789ab", engine_url=DOWN)
    resource.connect()
    assert resource.status == CONNECTION_ERROR
    assert resource.refresh_status() == CONNECTION_ERROR
    with pytest.raises(ResourceConnectionError):
        resource.get_session()
    with pytest.raises(ResourceConnectionError):
        DockerSession("whatever", engine_url=DOWN)
    with pytest.raises(ResourceConnectionError):
        resource.delete()


@pytest.mark.parametrize("pull", ["missing", "always", "never"])
def test_image_missing(docker_client: Any, pull: str) -> None:
    resource = DockerContainer("rmt-noimage", image="reproman-no-such-image", pull=pull)
    with pytest.raises(ResourceError) as info:
        resource.create()
    text = one_line(info.value)
    assert "reproman-no-such-image:latest" in text and "not in the Docker Engine" in text
    assert ("pull=never" in text) == (pull == "never")
    assert not docker_client.containers.list(all=True, filters={"name": "rmt-noimage"})


def test_pull_always_falls_back_to_local_image(make_container: Make) -> None:
    resource = make_container(pull="always")  # no registry is reachable, the local copy serves
    assert resource.status == "running"


def test_image_without_idle_command(docker_client: Any, make_container: Make) -> None:
    import io
    import tarfile

    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w") as tar:
        info = tarfile.TarInfo("etc")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    name = unique_name("rmt-no-sleep")
    repository = unique_name("reproman-test-empty")  # the Engine is shared: an image of this test's own
    docker_client.api.import_image_from_data(empty.getvalue(), repository=repository, tag="latest")
    try:
        with pytest.raises(ResourceError) as info_:
            make_container(name=name, image=repository)
        assert name in one_line(info_.value)
        assert not docker_client.containers.list(all=True, filters={"name": name})  # cleaned up
    finally:
        docker_client.images.remove(f"{repository}:latest", force=True)


def test_name_taken_in_engine(make_container: Make) -> None:
    first = make_container()
    with pytest.raises(ResourceError) as info:
        make_container(name=first.name)
    assert "already has a container" in one_line(info.value)


def test_container_removed_behind_our_back(make_container: Make, docker_client: Any) -> None:
    resource = make_container()
    session = resource.get_session()
    docker_client.api.remove_container(resource.id, force=True)
    with pytest.raises(SessionError) as info:
        session.execute_command("true")
    assert "no longer exists" in one_line(info.value)
    with pytest.raises(SessionError):
        session.get("/etc/passwd", "x")
    resource.connect()
    assert resource.status == NOT_FOUND
    with pytest.raises(ResourceError) as info2:
        resource.get_session()
    assert "no longer exists" in one_line(info2.value)
    with pytest.raises(ResourceError):
        resource.start()
    resource.delete()  # nothing left to delete is fine: the inventory entry can go
    assert resource.status == NOT_FOUND


def test_stopped_container(make_container: Make) -> None:
    resource = make_container()
    session = resource.get_session()
    resource.stop()
    with pytest.raises(SessionError) as info:
        session.execute_command("true")
    assert "not running" in one_line(info.value) and "reproman start" in str(info.value)
    with pytest.raises(ResourceError) as info2:
        resource.get_session()
    assert "exited" in one_line(info2.value)


def test_command_not_found_is_exit_127(shared_container: DockerContainer) -> None:
    with shared_container.get_session() as session:
        result = session.execute_command(["reproman-no-such-command"])
        assert result.returncode == 127 and "not found" in result.stderr
        assert session.execute_command("reproman-no-such-command --flag").returncode == 127


def test_get_missing_path(shared_container: DockerContainer, tmp_path: Any) -> None:
    with shared_container.get_session() as session:
        with pytest.raises(SessionError) as info:
            session.get("/no/such/path", str(tmp_path / "x"))
        assert "no such file or directory" in one_line(info.value)


def test_all_errors_are_reproman_errors() -> None:
    assert issubclass(ResourceConnectionError, ReproManError) and issubclass(SessionError, ReproManError)
