"""DataLad orchestrators on SSH and Docker resources with a YODA-style hierarchy.

Over SSH (a real sshd on loopback) every orchestrator runs a single job, a
20-subjob batch and a failing subjob, each batch commit is rerun with
``datalad rerun``, and ``datalad status`` is clean after every step. In a
Debian container without git, ``datalad-local-run`` does the same and the
other orchestrators are refused before anything is staged, with the
orchestrator that does work there.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.testing.cli import run_cli
from reproman.testing.services import require_executable, service_missing

yoda = pytest.importorskip("reproman_orchestrators_datalad.testing")

ORCHESTRATORS = ["datalad-pair", "datalad-pair-run", "datalad-no-remote", "datalad-local-run"]
_IDENTITY = {
    "GIT_AUTHOR_NAME": "ReproMan Tests", "GIT_AUTHOR_EMAIL": "tests@reproman.invalid",
    "GIT_COMMITTER_NAME": "ReproMan Tests", "GIT_COMMITTER_EMAIL": "tests@reproman.invalid",
}


@pytest.fixture(scope="module")
def datalad_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An sshd whose sessions find this environment's DataLad, as a cluster's login shell would.

    A resource's non-interactive shell has the system PATH; DataLad lives in
    the test virtualenv, so the server adds it with ``SetEnv PATH=...``.
    """
    from reproman_backend_ssh.testing import LocalSSHD, find_sshd

    require_executable("git-annex", "DataLad orchestrators: apt-get install git-annex")
    if find_sshd() is None:
        service_missing("sshd not installed (tools/ci/sshd.sh installs openssh-server)")
    bindir = os.path.dirname(sys.executable)
    path = f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    class DataladSSHD(LocalSSHD):
        def _write_files(self) -> None:
            super()._write_files()
            with open(self.config, "a") as config:
                config.write(f"SetEnv PATH={path}\n")

    server = DataladSSHD(tmp_path_factory.mktemp("sshd"))
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        server.stop()
        service_missing(f"could not start sshd: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def yoda_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_executable("git-annex", "DataLad orchestrators: apt-get install git-annex")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _IDENTITY.items():
            mp.setenv(key, value)
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        return yoda.make_yoda(tmp_path_factory.mktemp("yoda") / "study")


@pytest.fixture
def yoda_ds(yoda_template: Path, tmp_path: Path, isolated_user: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = isolated_user / ".config" / "git"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config").write_text("[user]\n\tname = ReproMan Tests\n\temail = tests@reproman.invalid\n")
    ds = yoda.copy_dataset(yoda_template, tmp_path / "study")
    monkeypatch.chdir(ds)
    return ds


def _runner(resref: str, orchestrator: str, root: str) -> Callable[..., Any]:
    def run(command: str, *, inputs: list[str] = (), outputs: list[str] = (),  # type: ignore[assignment]
            batch: list[str] | None = None, message: str | None = None) -> Any:
        return api.run(command=command, resref=resref, orchestrator=orchestrator, message=message,
                       inputs=list(inputs), outputs=list(outputs), batch_parameters=batch,
                       job_parameters={"root_directory": root}, follow=True)

    return run


@pytest.fixture
def datalad_ssh(datalad_sshd: Any) -> str:
    name = f"ssh-{uuid.uuid4().hex[:6]}"
    api.create(name, "ssh", {k: str(v) for k, v in datalad_sshd.session_params().items()})
    return name


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_yoda_over_ssh(yoda_ds: Path, datalad_ssh: str, tmp_path: Path, orchestrator: str) -> None:
    run = _runner(datalad_ssh, orchestrator, str(tmp_path / "remote root"))
    yoda.single_job(yoda_ds, run, orchestrator)
    result = yoda.batch(yoda_ds, run, orchestrator)
    if orchestrator.endswith("-run"):
        yoda.rerun(yoda_ds, result)
    failing = yoda.failing_batch(yoda_ds, run, orchestrator)
    if orchestrator.endswith("-run"):
        yoda.rerun(yoda_ds, failing)


def test_local_run_in_a_container_without_git(yoda_ds: Path, make_container: Callable[[], str]) -> None:
    name = make_container()
    run = _runner(name, "datalad-local-run", "/tmp/reproman-root")
    yoda.single_job(yoda_ds, run, "datalad-local-run")
    result = yoda.batch(yoda_ds, run, "datalad-local-run")
    yoda.rerun(yoda_ds, result)
    failing = yoda.failing_batch(yoda_ds, run, "datalad-local-run")
    yoda.rerun(yoda_ds, failing)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run", "datalad-no-remote"])
def test_container_without_git_is_refused_with_what_works_there(
    yoda_ds: Path, make_container: Callable[[], str], orchestrator: str
) -> None:
    name = make_container()
    head = yoda.head(yoda_ds)
    proc = run_cli(["run", "-r", name, "--orchestrator", orchestrator, "--jp", "root_directory=/tmp/reproman-root",
                    "-i", "inputs/s00.csv", "-o", "outputs/x.txt", "--", "sh", "-c", "cat inputs/s00.csv > outputs/x.txt"])
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"resource {name} lacks git, git-annex and DataLad, which {orchestrator} needs there" in lines[0]
    assert "--orchestrator datalad-local-run" in lines[0]
    # Nothing staged, nothing registered, nothing changed here.
    staged = api.execute("sh", ["-c", "ls -A /tmp/reproman-root 2>/dev/null | wc -l"], resref=name)
    assert staged.stdout.strip() == "0"
    assert api.jobs() == [] and yoda.head(yoda_ds) == head
    yoda.assert_clean(yoda_ds)
