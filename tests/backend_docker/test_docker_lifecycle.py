"""Create, connect, stop, start, delete real containers, through the class, the API and the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_testlib import TEST_LABEL, unique_name

from reproman import api
from reproman.resources.base import NOT_FOUND
from reproman_backend_docker.resource import LABEL, DockerContainer

Make = Callable[..., DockerContainer]


@pytest.fixture
def api_resource(docker_client: Any, busybox_image: str) -> Iterator[str]:
    """A container made through ``reproman.api.create`` (so recorded in the inventory); removed afterwards."""
    name = unique_name("rmt-api")
    api.create(name, "docker-container", [f"image={busybox_image.split(':')[0]}", f"labels={TEST_LABEL}"])
    yield name
    try:
        docker_client.api.remove_container(name, force=True)
    except Exception:
        pass


def test_create_records_engine_state(api_resource: str, docker_client: Any) -> None:
    rows = api.ls(api_resource, verbose=True)
    assert len(rows) == 1
    row = rows[0]
    container = docker_client.containers.get(row["id"])
    assert row["status"] == "running" == container.status
    assert row["image"] == "reproman-test-busybox:latest"  # untagged name recorded as :latest
    assert container.labels[LABEL] == api_resource and "=".join(["reproman-test", container.labels["reproman-test"]]) == TEST_LABEL
    assert container.name == api_resource


def test_stop_start_delete_through_api(api_resource: str, docker_client: Any) -> None:
    assert api.stop(api_resource).status == "exited"
    assert api.ls(api_resource)[0]["status"] == "exited"
    assert api.start(api_resource).status == "running"
    assert api.execute("echo", ["hi"], resref=api_resource).stdout == "hi\n"
    container_id = api.ls(api_resource)[0]["id"]
    api.delete(api_resource, skip_confirmation=True)
    assert [r["name"] for r in api.ls()] == ["local"]
    with pytest.raises(Exception, match="No such container"):
        docker_client.containers.get(container_id)


def test_ls_refresh_reports_engine_state(api_resource: str, docker_client: Any) -> None:
    docker_client.containers.get(api_resource).stop(timeout=1)
    assert api.ls(api_resource)[0]["status"] == "running"  # recorded, stale
    assert api.ls(api_resource, refresh=True)[0]["status"] == "exited"
    docker_client.api.remove_container(api_resource, force=True)
    assert api.ls(api_resource, refresh=True)[0]["status"] == NOT_FOUND


def test_resource_resolved_by_id_prefix(api_resource: str) -> None:
    container_id = api.ls(api_resource)[0]["id"]
    assert api.execute("true", resref=container_id[:8]).returncode == 0


def test_connect_by_name_or_id_prefix(make_container: Make) -> None:
    made = make_container()
    assert made.id
    by_name = DockerContainer(made.name)
    by_name.connect()
    assert (by_name.id, by_name.status) == (made.id, "running")
    by_prefix = DockerContainer("other-name", id=made.id[:10])
    by_prefix.connect()
    assert by_prefix.id == made.id


def test_stop_is_quick(make_container: Make) -> None:
    import time

    resource = make_container()
    started = time.monotonic()
    resource.stop()
    assert resource.status == "exited"
    assert time.monotonic() - started < 5, "the idle process should exit on SIGTERM, not wait for the kill timeout"
    resource.start()
    assert resource.status == "running"
    with resource.get_session() as session:
        assert session.execute_command("echo back").stdout == "back\n"


def test_parameters_reach_the_container(make_container: Make, tmp_path: Path) -> None:
    (tmp_path / "shared.txt").write_text("from host")
    tmp_path.chmod(0o755)  # readable by the container's unprivileged user
    resource = make_container(
        environment=["RM_ONE=1", "RM_TWO=a b"],
        working_dir="/work",
        user="65534:65534",
        volumes=[f"{tmp_path}:/data:ro"],
        seccomp_unconfined=True,
    )
    with resource.get_session() as session:
        result = session.execute_command('printf "%s|%s|%s|%s" "$RM_ONE" "$RM_TWO" "$(pwd)" "$(id -u)"')
        assert result.stdout == "a b".join(["1|", "|/work|65534"])
        assert session.read("/data/shared.txt") == "from host"
        assert session.execute_command("touch /data/x").returncode != 0  # read-only bind
    info = resource._client().api.inspect_container(resource.id)
    assert "seccomp=unconfined" in info["HostConfig"]["SecurityOpt"]


def test_put_as_non_root_user_owns_files(make_container: Make, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    resource = make_container(user="65534:65534", working_dir="/tmp")
    with resource.get_session() as session:
        session.put(str(tmp_path / "f"), "mine/deeper/f")
        assert session.execute_command("stat -c %u:%g /tmp/mine /tmp/mine/deeper/f").stdout.split() == [
            "65534:65534", "65534:65534"]
        session.execute_command("echo more >> /tmp/mine/deeper/f", check=True)  # writable by the container's user
        session.execute_command("touch /tmp/mine/new /tmp/mine/deeper/new", check=True)  # parents are the user's


def test_put_many_new_directories_as_non_root_user(make_container: Make, tmp_path: Path) -> None:
    """Thousands of new parent directories: made by the user in a few bounded command lines, not one."""
    from reproman_backend_docker.session import command_batches, deepest_parents

    (tmp_path / "f").write_text("x")
    resource = make_container(user="65534:65534", working_dir="/tmp")
    targets = [f"/tmp/many/{'d' * 60}{i}/sub/f" for i in range(3000)]
    assert len(list(command_batches(deepest_parents(targets)))) > 1  # the limit is really reached
    with resource.get_session() as session:
        session.put_many([(tmp_path / "f", t) for t in targets])
        owners = session.execute_command("find /tmp/many -exec stat -c %u {} + | sort | uniq -c").stdout.split()
        assert owners == [str(1 + 3000 * 3), "65534"]  # /tmp/many, and each dN, dN/sub, dN/sub/f


def test_cli_create_execute_exit_code_and_delete(busybox_image: str, docker_client: Any) -> None:
    name = unique_name("rmt-cli")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reproman", *args], capture_output=True, text=True, timeout=120)

    try:
        created = cli("create", name, "-t", "docker-container", "-b", f"image={busybox_image}",
                      "-b", f"labels={TEST_LABEL}")
        assert created.returncode == 0, created.stderr
        result = cli("execute", "-r", name, "sh", "-c", "echo out; echo err >&2; exit 42")
        assert (result.returncode, result.stdout, result.stderr) == (42, "out\n", "err\n")
        assert cli("execute", "-r", name, "reproman-no-such-command").returncode == 127
        assert cli("delete", "-y", name).returncode == 0
    finally:
        try:
            docker_client.api.remove_container(name, force=True)
        except Exception:
            pass


def test_start_unpauses_a_paused_container(api_resource: str, docker_client: Any) -> None:
    """Trial R, 10: the hint for a paused container said 'reproman start', which then failed in the Engine."""
    docker_client.containers.get(api_resource).pause()
    assert api.start(api_resource).status == "running"
    assert api.execute("echo", ["back"], resref=api_resource).stdout == "back\n"


def test_a_removed_container_with_unfetched_jobs_can_be_deleted(api_resource: str, docker_client: Any,
                                                                 tmp_path: Path) -> None:
    """Trial R, 10: delete refused ("fetch them first") jobs that could never be fetched: their container was gone."""
    done = subprocess.run([sys.executable, "-m", "reproman", "run", "-r", api_resource, "-o", "x", "sh", "-c",
                           "sleep 30; echo 1 > x"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    docker_client.api.remove_container(api_resource, force=True)
    deleted = subprocess.run([sys.executable, "-m", "reproman", "delete", "-y", api_resource],
                             capture_output=True, text=True, timeout=120)
    assert deleted.returncode == 0, deleted.stderr
    assert "no longer exists" in deleted.stderr and done.stdout.strip() in deleted.stderr, deleted.stderr
    assert api_resource not in [r["name"] for r in api.ls()]


def test_stop_names_the_jobs_it_ends(api_resource: str, tmp_path: Path) -> None:
    """Trial R, 10: a stop under a running job was silent; the job then read lost."""
    done = subprocess.run([sys.executable, "-m", "reproman", "run", "-r", api_resource, "sh", "-c", "sleep 30"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    stopped = subprocess.run([sys.executable, "-m", "reproman", "stop", api_resource],
                             capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert f"while it held 1 job ({done.stdout.strip()}) not fetched yet" in stopped.stderr, stopped.stderr
