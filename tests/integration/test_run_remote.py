"""``reproman run`` on resources that share nothing with this process but what the orchestrator moves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reproman import api
from reproman.testing.cli import run_cli


def _batch(resref: str, root: str, **extra: object) -> object:
    return api.run(
        command="mkdir -p out; cat data/in.txt > out/{p[n]}.txt; echo {p[n]} >> out/{p[n]}.txt; hostname >> out/{p[n]}.txt",
        resref=resref,
        batch_parameters=["n=1,2,3"],
        inputs=["data/in.txt"],
        outputs=["out/{p[n]}.txt"],
        job_parameters={"root_directory": root, **extra},  # type: ignore[dict-item]
        follow=True,
    )


def _check_outputs(workdir: Path) -> None:
    for n in (1, 2, 3):
        lines = (workdir / "out" / f"{n}.txt").read_text().splitlines()
        assert lines[:2] == ["payload", str(n)]


def test_batch_over_ssh_stages_inputs_and_fetches_outputs(workdir: Path, ssh_resource: str, tmp_path: Path) -> None:
    (workdir / "data").mkdir()
    (workdir / "data" / "in.txt").write_text("payload\n")
    result = _batch(ssh_resource, str(tmp_path / "remote root"))
    assert result.status.ok  # type: ignore[attr-defined]
    _check_outputs(workdir)
    listed = api.jobs(action="list")
    assert [row["resource"] for row in listed] == [ssh_resource]


def test_failure_over_ssh_names_stderr_and_exits_nonzero(workdir: Path, ssh_resource: str, tmp_path: Path) -> None:
    result = run_cli(["run", "--follow", "-r", ssh_resource, "--jp", f"root_directory={tmp_path / 'r'}",
                      "--", "sh", "-c", "echo broken >&2; exit 4"])
    assert result.returncode == 1
    assert "stderr.0" in result.stderr and "Traceback" not in result.stderr
    fetched = next(workdir.rglob("stderr.0"))
    assert fetched.read_text() == "broken\n"


def test_slurm_over_ssh(workdir: Path, ssh_resource: str, slurm: None, tmp_path: Path) -> None:
    (workdir / "data").mkdir()
    (workdir / "data" / "in.txt").write_text("payload\n")
    result = api.run(
        command="mkdir -p out; cat data/in.txt > out/{p[n]}.txt; echo {p[n]} >> out/{p[n]}.txt; echo $SLURM_ARRAY_TASK_ID >> out/{p[n]}.txt",
        resref=ssh_resource, submitter="slurm",
        batch_parameters=["n=1,2,3"], inputs=["data/in.txt"], outputs=["out/{p[n]}.txt"],
        job_parameters={"root_directory": str(tmp_path / "slurm root"), "walltime": "00:05:00"},
        follow=True,
    )
    assert result.status.ok
    _check_outputs(workdir)
    task_ids = {(workdir / "out" / f"{n}.txt").read_text().splitlines()[2] for n in (1, 2, 3)}
    assert task_ids == {"0", "1", "2"}


def test_batch_in_docker_container(workdir: Path, make_container: Callable[[], str]) -> None:
    name = make_container()
    (workdir / "data").mkdir()
    (workdir / "data" / "in.txt").write_text("payload\n")
    result = _batch(name, "/tmp/reproman-root")
    assert result.status.ok  # type: ignore[attr-defined]
    _check_outputs(workdir)
    container_host = (workdir / "out" / "1.txt").read_text().splitlines()[2]
    assert container_host != __import__("socket").gethostname()


@pytest.mark.parametrize("follow", ["delete"])
def test_follow_delete_removes_the_container(workdir: Path, make_container: Callable[[], str], follow: str) -> None:
    name = make_container()
    result = api.run(command="echo done > done.txt", resref=name, outputs=["done.txt"],
                     job_parameters={"root_directory": "/tmp/r"}, follow=follow)
    assert result.status.ok and (workdir / "done.txt").read_text() == "done\n"
    assert name not in {row["name"] for row in api.ls()}


def test_job_record_names_the_image_and_retrace_describes_it(
    workdir: Path, make_container: Callable[[], str], debian_image: str
) -> None:
    name = make_container()
    result = api.run(command="true", resref=name, job_parameters={"root_directory": "/tmp/r"}, follow=True)
    recorded = result.job.extra["resource"]  # type: ignore[attr-defined]
    assert recorded["image"] == debian_image and recorded["image_id"].startswith("sha256:")
    spec = api.retrace(path=[recorded["image_id"]])
    images = next(d for d in spec.distributions if d["name"] == "docker")["images"]
    assert [img["id"] for img in images] == [recorded["image_id"]]
    assert debian_image in images[0]["repo_tags"]
