"""Close the reproducibility loop on Docker and Slurm (issue 15): record, rerun, diff.

The same scenarios run in a Debian container that has python3 (made from
the test image with ``apt-get install python3`` and ``docker commit``, once
per base image), and through the real single-node Slurm, where the record
must come from the node the task ran on (the scheduler's IDs prove it).
The shell resource runs them in ``tests/core/test_repro_rerun.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli
from reproman.testing.services import service_missing

N = 20
FLAKY = [i for i in range(N) if i % 3 == 0]


@pytest.fixture(scope="session")
def python_image(docker_client: Any, debian_image: str) -> str:
    """The Debian test image plus Debian's python3, committed once per base image."""
    base = docker_client.images.get(debian_image)
    tag = f"reproman-test-debian-python3:{base.id.split(':')[-1][:12]}"
    try:
        docker_client.images.get(tag)
        return tag
    except Exception:
        pass
    container = docker_client.containers.run(debian_image, "sleep infinity", detach=True,
                                              labels={"reproman-repro-build": "1"})
    try:
        code, output = container.exec_run(
            ["sh", "-c", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3"])
        if code != 0:
            service_missing(f"cannot install python3 into {debian_image}: {output.decode()[-300:]}")
        repo, _, version = tag.partition(":")
        container.commit(repository=repo, tag=version)
    finally:
        container.remove(force=True)
    return tag


@pytest.fixture
def python_container(python_image: str) -> Iterator[str]:
    name = f"py-{uuid.uuid4().hex[:6]}"
    api.create(name, "docker-container", {"image": python_image, "labels": "reproman-repro-test=1"})
    yield name
    api.delete(name, skip_confirmation=True, force=True)


Target = dict[str, Any]


@pytest.fixture(params=["docker", "slurm"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """Where a scenario runs: ``resref`` plus ``run`` keyword arguments."""
    if request.param == "docker":
        name = request.getfixturevalue("python_container")
        return {"resref": name, "job_parameters": {"root_directory": "/tmp/reproman-root"}, "kind": "docker"}
    request.getfixturevalue("slurm")
    return {"resref": None, "submitter": "slurm", "kind": "slurm",
            "job_parameters": {"root_directory": str(tmp_path / "slurm root"), "walltime": "00:05:00"}}


def _run(target: Target, **kwargs: Any) -> Any:
    options = {k: v for k, v in target.items() if k != "kind"}
    return api.run(follow=True, **options, **kwargs)


def test_deterministic_rerun_diff_exits_0_and_record_comes_from_the_node(workdir: Path, target: Target) -> None:
    first = _run(target, command="mkdir -p out && echo {p[n]} > out/{p[n]}.txt", batch_parameters=["n=1,2,3"],
                 outputs=["out/{p[n]}.txt"])
    assert first.status.ok
    job = Registry().load(first.job.jobid)
    (env,) = job.environment["environments"].values()
    assert env["spec_status"] in ("traced", "cached"), env["spec_status"]
    packages = {p["name"] for d in env["spec"]["distributions"] if d["name"] == "debian" for p in d["packages"]}
    assert "coreutils" in packages  # mkdir, traced on the node
    subjobs = job.environment["subjobs"]
    if target["kind"] == "slurm":
        assert {s["scheduler"]["SLURM_ARRAY_TASK_ID"] for s in subjobs} == {"0", "1", "2"}
        assert {s["scheduler"]["SLURM_ARRAY_JOB_ID"] for s in subjobs} == {job.submission_id}
    else:
        assert env["resource"]["image_id"].startswith("sha256:")
        assert all(s["host"] != Path("/proc/sys/kernel/hostname").read_text().strip() for s in subjobs)
    rerun = api.rerun(first.job.jobid, follow=True)
    assert rerun.status.ok
    diff = run_cli(["diff", first.job.jobid, rerun.job.jobid])
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "3 identical" in diff.stdout


def test_output_with_the_date_diff_exits_3_and_names_it(workdir: Path, target: Target) -> None:
    first = _run(target, command="echo same > same.txt; date +%s%N > when.txt", outputs=["same.txt", "when.txt"])
    rerun = api.rerun(first.job.jobid, follow=True)
    diff = run_cli(["diff", first.job.jobid, rerun.job.jobid])
    assert diff.returncode == 3, diff.stdout + diff.stderr
    assert "differs    when.txt" in diff.stdout and "1 identical, 1 differs" in diff.stdout


def test_rerun_failed_resubmits_exactly_the_failed_subjobs(workdir: Path, target: Target) -> None:
    flag = "/tmp/reproman-flag-" + uuid.uuid4().hex[:8]
    command = ("mkdir -p out && echo {p[n]} > out/{p[n]}.txt && { [ $(( {p[n]} % 3 )) -ne 0 ] || [ -e FLAG ]; }"
               .replace("FLAG", flag))
    first = _run(target, command=command, batch_parameters=["n=" + ",".join(map(str, range(N)))],
                 outputs=["out/{p[n]}.txt"])
    assert sorted(f["index"] for f in first.failed) == FLAKY
    api.execute("touch", [flag], resref=target["resref"])
    try:
        rerun = api.rerun(first.job.jobid, failed=True, follow=True)
    finally:
        api.execute("rm", ["-f", flag], resref=target["resref"])
    assert rerun.status.ok and rerun.job.n_subjobs == len(FLAKY)
    assert rerun.job.rerun_of == {"jobid": first.job.jobid, "subjobs": FLAKY}
    assert sorted(rerun.job.checksums) == sorted(f"out/{i}.txt" for i in FLAKY)
    assert api.diff(first.job.jobid, rerun.job.jobid).equal


def test_container_environment_differs_from_the_host_and_diff_shows_packages(
    workdir: Path, python_container: str
) -> None:
    command = "python3 -c 'print(6 * 7)' > answer.txt"
    here = api.run(command=command, outputs=["answer.txt"], follow=True)
    there = api.run(command=command, outputs=["answer.txt"], resref=python_container, follow=True,
                    job_parameters={"root_directory": "/tmp/reproman-root"})
    assert here.status.ok and there.status.ok
    report = api.diff(here.job.jobid, there.job.jobid)
    assert report.equal  # same output ...
    assert not report.environment_equal  # ... from different environments
    host_env, = Registry().load(here.job.jobid).environment["environments"].values()
    ctr_env, = Registry().load(there.job.jobid).environment["environments"].values()
    assert ctr_env["executable"]["path"] == "/usr/bin/python3"

    def versions(env: dict[str, Any]) -> dict[str, str]:
        return {p["name"]: p["version"] for d in env["spec"].get("distributions", []) if d["name"] == "debian"
                for p in d["packages"]}

    container_only = {n for n, v in versions(ctr_env).items() if versions(host_env).get(n) != v}
    assert any(n.startswith("python3") for n in container_only), container_only
    text = run_cli(["diff", here.job.jobid, there.job.jobid]).stdout
    assert any(name in text for name in container_only), text
    assert "Debian package" in text


def test_node_without_python3_says_so(workdir: Path, make_container: Callable[[], str]) -> None:
    name = make_container()  # the plain Debian test image: no python3, no strace
    result = api.run(command="echo hi > hi.txt", outputs=["hi.txt"], resref=name, follow=True, trace=True,
                     job_parameters={"root_directory": "/tmp/r"})
    job = Registry().load(result.job.jobid)
    (env,) = job.environment["environments"].values()
    assert env["spec_status"] == "none: no python3 on this node"
    assert env["os"]["id"] == "debian" and env["executable"]["path"]
    (subjob,) = job.environment["subjobs"]
    assert subjob["trace"]["status"] == "none: strace is not installed on this node"
    assert job.checksums["hi.txt"]["size"] == 3  # checksums need no Python
