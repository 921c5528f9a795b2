"""The guide's example plugin against ReproMan's contract suites, plus what the suites do not cover yet.

Run from a checkout with the plugin installed (``nox -s docs`` does this)::

    pip install './reproman-core[testing]' ./docs/examples/reproman-example
    python -m pytest docs/examples/reproman-example/tests
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.errors import TracingError
from reproman.resources.session import CommandResult, Session
from reproman.testing.cli import run_cli
from reproman.testing.orchestrator_contract import OrchestratorContract
from reproman.testing.resource_contract import ResourceContract
from reproman.testing.session_contract import FullSessionContract
from reproman.testing.submitter_contract import SubmitterContract
from reproman_example.session import LocalDirSession
from reproman_example.tracer import UsrLocalTracer

# -- the resource and its session ------------------------------------------------------


class TestLocalDirSession(FullSessionContract):
    @pytest.fixture
    def session(self, tmp_path: Path) -> Iterator[Session]:
        root = tmp_path / "root"
        root.mkdir()
        with LocalDirSession(str(root)) as s:
            yield s

    @pytest.fixture
    def remote_tmp(self, session: Session) -> Iterator[str]:
        path = session.execute_command("mktemp -d", check=True).stdout.strip()
        yield path
        session.remove(path, recursive=True)


class TestLocalDirResource(ResourceContract):
    resource_type = "local-dir"
    supports_start_stop = False  # a directory is neither started nor stopped

    @pytest.fixture
    def backend_parameters(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "box"), "make": True}


def test_relative_paths_resolve_in_the_directory(tmp_path: Path) -> None:
    api.create("box", "local-dir", {"path": str(tmp_path / "box"), "make": True})
    assert api.execute("sh", ["-c", "pwd; echo made > here.txt"], resref="box").stdout.strip() == str(tmp_path / "box")
    assert (tmp_path / "box" / "here.txt").read_text() == "made\n"


def test_create_records_the_absolute_path_and_refuses_a_missing_directory(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    api.create("rel", "local-dir", ["path=d"])
    (row,) = api.ls(["rel"], verbose=True)
    assert row["path"] == str(tmp_path / "d")
    result = run_cli(["create", "nope", "-t", "local-dir", "-b", "path=missing"], cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "is not a directory" in result.stderr


def test_plugins_check_passes_and_lists_every_component() -> None:
    result = run_cli(["plugins", "--check"])
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {r["distribution"]: r for r in api.plugins()}
    assert rows["reproman-example"]["components"] == {
        "resource type": ["local-dir"], "session type": ["local-dir"], "submitter": ["serial"],
        "orchestrator": ["copy"], "tracer": ["usrlocal"],
    }


# -- the submitter and the orchestrator: users' results stay safe ----------------------


class TestSerialCopyResultSafety(OrchestratorContract):
    batch_outputs = 50

    @pytest.fixture
    def resref(self, tmp_path: Path) -> str:
        api.create("box", "local-dir", {"path": str(tmp_path / "box"), "make": True})
        return "box"

    @pytest.fixture
    def submitter(self) -> str:
        return "serial"

    @pytest.fixture
    def orchestrator(self) -> str:
        return "copy"


class TestSerialSubmitterContract(SubmitterContract):
    # One subjob at a time is all it does: no throttle, no array to split, no allocation to launch in.
    # The suite checks that each is refused rather than ignored.
    supports_throttle = False
    supports_split = False
    supports_launcher = False
    # Its submission id is the loop's process id, which the shell that starts it prints.
    parses_scheduler_output = False
    submission_id_pattern = r"[1-9][0-9]*"
    # scheduler_states asks about every job in one command.
    max_scheduler_commands = 1

    @pytest.fixture
    def submitter(self) -> str:
        return "serial"


def test_subjobs_run_one_after_another_in_index_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = api.run(command="echo start {p[i]} >> order.txt; sleep 0.2; echo end {p[i]} >> order.txt",
                     batch_parameters={"i": ["0", "1", "2"]}, outputs=["order.txt"], submitter="serial",
                     orchestrator="copy", follow=True)
    assert result.ok
    assert (tmp_path / "order.txt").read_text().split("\n")[:-1] == [
        f"{what} {i}" for i in range(3) for what in ("start", "end")]


def _count_commands(session: LocalDirSession, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commands ``session`` runs from now on: one entry per remote command."""
    calls: list[str] = []
    real = session._execute

    def counting(command: str, **kwargs: Any) -> CommandResult:
        calls.append(command)
        return real(command, **kwargs)

    monkeypatch.setattr(session, "_execute", counting)
    return calls


# -- the tracer ------------------------------------------------------------------------


@pytest.fixture
def usr_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /usr/local, named by the tracer's setting."""
    from reproman.config import reset_config

    prefix = tmp_path / "usr-local"
    (prefix / "bin").mkdir(parents=True)
    monkeypatch.setenv("REPROMAN_USRLOCAL_PREFIXES", str(prefix))
    reset_config()
    return prefix


def test_retrace_claims_files_under_the_prefix_with_their_checksums(usr_local: Path, tmp_path: Path) -> None:
    tool = usr_local / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho v1\n")
    other = tmp_path / "elsewhere.txt"
    other.write_text("not mine\n")
    spec = api.retrace(path=[str(tool), str(other)])
    entry = spec.get_distribution("usrlocal")
    assert entry["files"] == [{"path": str(tool),
                               "sha256": "667f61a069b75f1f57fc561623da00e013e144221e8ea54de2803da9dd8aa952"}]
    assert str(tool) not in spec.files and str(other) in spec.files


def test_diff_and_satisfies(usr_local: Path) -> None:
    tool, lib = usr_local / "bin" / "tool", usr_local / "lib.so"
    tool.write_text("v1\n")
    lib.write_text("lib\n")
    both = api.retrace(path=[str(tool), str(lib)])
    only_tool = api.retrace(path=[str(tool)])
    tool.write_text("v2\n")
    changed = api.retrace(path=[str(tool), str(lib)])
    assert api.diff(both, both).equal
    report = api.diff(both, changed)
    assert not report.equal and [d.key for c in report.comparisons for d in c.differences] == [str(tool)]
    assert api.diff(both, only_tool, satisfies=True).equal, "both files satisfy the need for one"
    assert not api.diff(only_tool, both, satisfies=True).equal, "one file does not satisfy the need for two"
    assert not api.diff(changed, only_tool, satisfies=True).equal, "same path, other content"


def test_identify_asks_once_for_many_files(usr_local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for i in range(500):
        path = usr_local / f"f {i}"
        path.write_text(str(i))
        paths.append(str(path))
    session = LocalDirSession("/")
    calls = _count_commands(session, monkeypatch)
    result = UsrLocalTracer(session).identify(paths)
    assert len(calls) == 1
    assert result.claimed == frozenset(paths)


def test_install_says_it_cannot(usr_local: Path) -> None:
    with pytest.raises(TracingError, match="cannot be installed"):
        UsrLocalTracer.install(LocalDirSession("/"), {"name": "usrlocal", "files": []})
