"""Damaged and hostile files (issue 13, cases 4 and 5): one line naming the file, nothing changed.

Binary (non-UTF-8) files, files too large to be what they claim, YAML
alias bombs and bracket nests in every file ReproMan reads; a damaged job
record is listed as damaged and removed with ``jobs --delete``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error, checksums

from reproman import yamlio
from reproman.errors import SpecError
from reproman.paths import config_dir, data_dir
from reproman.resources.inventory import inventory_path
from reproman.testing.cli import run_cli

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe" * 10

#: 10 levels of 10 aliases each: 10**10 values once expanded, 1 KiB on disk.
BOMB = "\n".join(
    ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
) + "\n"
BOMB_LIST = "- " + BOMB.replace("\n", "\n  ").rstrip() + "\n"
BRACKETS = "[" * 100_000 + "]" * 100_000


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def _watched(workdir: Path) -> list[Path]:
    return [config_dir(), data_dir(), workdir]


@pytest.mark.parametrize("content", [BINARY, BOMB, BRACKETS, b"x: " + b"9" * 5000 + b"\n", "a: &a [*a]\n"],
                         ids=["binary", "alias-bomb", "brackets", "huge-int", "recursive"])
def test_damaged_inventory(workdir: Path, content: bytes | str) -> None:
    path = _write(inventory_path(), content)
    before = checksums(*_watched(workdir))
    started = time.monotonic()
    for argv in (["ls"], ["create", "box", "-t", "shell"], ["execute", "-r", "box", "true"], ["delete", "-y", "box"]):
        line = assert_one_line_error(run_cli(argv))
        assert str(path) in line and "inventory left untouched" in line, line
    assert time.monotonic() - started < 30
    assert checksums(*_watched(workdir)) == before


def test_inventory_larger_than_the_limit(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(inventory_path(), "box:\n  type: shell\n" + "# padding\n" * 2_000_000)
    line = assert_one_line_error(run_cli(["ls"]))
    assert str(path) in line and "larger than 16 MiB" in line


@pytest.mark.parametrize("content", [BINARY, "[general]\n" + "x = 1\n" * 200_000, "no section\n"],
                         ids=["binary", "too-large", "malformed"])
def test_damaged_config(workdir: Path, content: bytes | str) -> None:
    user = _write(config_dir() / "reproman.cfg", content)
    extra = _write(workdir / "extra.cfg", content)
    before = checksums(*_watched(workdir))
    for argv, path in ((["ls"], user), (["-c", str(extra), "ls"], user)):
        line = assert_one_line_error(run_cli(argv))
        assert str(path) in line, line
    user.unlink()
    line = assert_one_line_error(run_cli(["-c", str(extra), "ls"]))
    assert str(extra) in line
    assert (config_dir() / "reproman.cfg").exists() is False
    before.pop(str(user))
    assert checksums(*_watched(workdir)) == before


def _two_jobs(workdir: Path) -> tuple[str, str]:
    first = run_cli(["run", "true"])
    second = run_cli(["run", "true"])
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    return first.stdout.strip(), second.stdout.strip()


@pytest.mark.parametrize("content", [
    BINARY, BOMB, BRACKETS, '{"jobid": ["a"], "command": 1}', "[1, 2]",
    '{"jobid": "20200101-000000-000000", "command": "x", "resource_name": "local", "resource_type": "shell",'
    ' "submitter": "local", "orchestrator": "plain"}',
    '{"jobid": "%s", "command": "x", "resource_name": "local", "resource_type": "shell", "submitter": "local",'
    ' "orchestrator": "plain", "subjobs": [{"command": 5}]}',
    '{"jobid": "%s", "command": "x", "resource_name": "local", "resource_type": "shell", "submitter": "local",'
    ' "orchestrator": "plain", "parameters": [1]}',
], ids=["binary", "alias-bomb", "brackets", "wrong-types", "a-list", "other-jobid", "subjob-command", "parameters"])
def test_damaged_job_record_is_listed_and_deleted(workdir: Path, content: bytes | str) -> None:
    good, bad = _two_jobs(workdir)
    record = data_dir() / "jobs" / f"{bad}.yaml"
    _write(record, content.replace("%s", bad) if isinstance(content, str) else content)
    # Polling may record the good job's final outcome in its own record (states are facts once seen);
    # nothing else may change, the damaged record least of all.
    good_record = str(data_dir() / "jobs" / f"{good}.yaml")

    def state() -> dict[str, str]:
        return {k: v for k, v in checksums(*_watched(workdir)).items() if k != good_record}

    before = state()
    for argv in (["jobs"], ["jobs", "--json"], ["jobs", "--show"], ["jobs", "--status"]):
        listing = run_cli(argv)
        assert listing.returncode == 0, (argv, listing.stderr)
        assert "Traceback" not in listing.stderr and good in listing.stdout and bad in listing.stdout + listing.stderr
    rows = {r["jobid"]: r for r in json.loads(run_cli(["jobs", "--json"]).stdout)}
    assert rows[bad]["status"] == "malformed" and rows[bad]["path"] == str(record)
    assert rows[good]["status"] == "submitted"
    fetch = run_cli(["jobs", bad])
    assert fetch.returncode == 1 and "Traceback" not in fetch.stderr and bad in fetch.stderr
    assert state() == before

    deleted = run_cli(["jobs", "--delete", bad])
    assert deleted.returncode == 0, deleted.stderr
    assert not record.exists()
    assert [r["jobid"] for r in json.loads(run_cli(["jobs", "--json"]).stdout)] == [good]


@pytest.mark.parametrize("field", ["job_dir", "resource_name"])
@pytest.mark.parametrize("action", ["fetch", "delete"])
def test_a_record_edited_to_name_another_directory_never_has_it_removed(workdir: Path, tmp_path: Path,
                                                                        field: str, action: str) -> None:
    """A fetch and ``--delete`` remove the job directory with ``rm -rf``: only the one ReproMan made.

    Trial H edited ``job_dir`` in a job's record to a directory of theirs;
    the next fetch of the finished job (or ``--delete`` of the cancelled
    one) deleted it, subdirectories and all. Such a record is damaged:
    listed as such, and deletable without touching anything else.
    """
    command = ["sh", "-c", "echo 1 > o.txt"] if action == "fetch" else ["sleep", "60"]
    job = run_cli(["run", "-o", "o.txt", *command]).stdout.strip()
    record = data_dir() / "jobs" / f"{job}.yaml"
    if action == "fetch":  # finished, its outcome recorded by a status check
        deadline = time.monotonic() + 60
        while "succeeded" not in run_cli(["jobs", "--status", job]).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    else:
        assert run_cli(["jobs", "--cancel", job]).returncode == 0
    precious = tmp_path / "mine" / job  # named like the job: what a walk out through the resource name reaches
    (precious / "sub").mkdir(parents=True)
    (precious / "sub" / "thesis.tex").write_text("years of work\n")
    data = json.loads(record.read_text())
    if field == "job_dir":
        data["job_dir"] = str(precious)
    else:
        data["resource_name"] = "../../../../../../../../../../.." + str(precious.parent)
        data["job_dir"] = data["root_directory"] + "/.reproman/jobs/" + data["resource_name"] + "/" + job
    record.write_text(json.dumps(data))

    result = run_cli(["jobs", job] if action == "fetch" else ["jobs", "--delete", job])
    assert (precious / "sub" / "thesis.tex").read_text() == "years of work\n"
    assert "Traceback" not in result.stderr
    if action == "delete":
        assert result.returncode == 0 and not record.exists(), result.stderr
    else:
        assert result.returncode == 1 and "not a valid job record" in result.stderr, result.stderr
        rows = {r["jobid"]: r for r in json.loads(run_cli(["jobs", "--json"]).stdout)}
        assert rows[job]["status"] == "malformed"


def test_batch_spec_alias_bomb_fails_fast_without_memory(workdir: Path) -> None:
    spec = _write(workdir / "batch.yaml", BOMB_LIST)
    before = checksums(*_watched(workdir))
    started = time.monotonic()
    line = assert_one_line_error(run_cli(["run", "--batch-spec", str(spec), "echo", "{p[a9]}"], timeout=60), code=1)
    assert time.monotonic() - started < 20
    assert str(spec) in line and "aliases expand to more than 1,000,000 values" in line
    assert checksums(*_watched(workdir)) == before


@pytest.mark.parametrize(("name", "content"), [
    ("binary", BINARY), ("bomb", BOMB), ("brackets", BRACKETS), ("list", "- a\n- b\n"),
    ("mapping-for-int", "num_processes: {x: 1}\n"), ("bool-for-text", "working_directory: true\n"),
    ("env-list-of-lists", "env: [[1]]\n"), ("huge-int", "num_processes: " + "9" * 5000 + "\n"),
    ("zero-processes", "num_processes: 0\n"), ("env-name", "env: {'A;touch x;B': 1}\n"),
])
def test_job_spec_files(workdir: Path, name: str, content: bytes | str) -> None:
    spec = _write(workdir / f"{name}.yaml", content)
    before = checksums(*_watched(workdir))
    line = assert_one_line_error(run_cli(["run", "--js", str(spec), "true"], timeout=60))
    assert str(spec) in line, line
    assert checksums(*_watched(workdir)) == before


@pytest.mark.parametrize(("name", "content"), [
    ("binary", BINARY), ("bomb", BOMB), ("brackets", BRACKETS), ("compact", "distributions: {a: b}\n"),
    ("files", "files: 5\n"), ("versions", "distributions:\n  - name: debian\n    packages:\n      - {name: [1]}\n"),
    ("nested", "distributions:\n  - name: conda\n    environments: [{path: 5, packages: 7}]\n"),
])
def test_environment_specs_for_diff_and_install(workdir: Path, name: str, content: bytes | str) -> None:
    spec = _write(workdir / f"{name}.yaml", content)
    good = _write(workdir / "good.yaml", "version: 0.0.1\nfiles: [/bin/sh]\n")
    before = checksums(*_watched(workdir))
    for argv in (["diff", str(spec), str(good)], ["diff", "--satisfies", str(good), str(spec)],
                 ["install", "local", str(spec)]):
        line = assert_one_line_error(run_cli(argv, timeout=60), code=1)
        assert str(spec) in line, line
    assert checksums(*_watched(workdir)) == before


def test_yaml_bounds_directly() -> None:
    with pytest.raises(SpecError, match="aliases expand"):
        yamlio.load(BOMB, "bomb.yaml")
    started = time.monotonic()
    with pytest.raises(SpecError, match="brackets nested more than 200 deep"):
        yamlio.load(BRACKETS, "deep.yaml")
    with pytest.raises(SpecError, match="nested more than 100 levels|nested too deeply"):
        yamlio.load("".join(" " * i + "- \n" for i in range(0, 300, 1)).replace("- \n", "-\n"), "block.yaml")
    assert time.monotonic() - started < 5
    # A large file without aliases is not a bomb, however many values it has.
    many = "".join(f"- {i}\n" for i in range(1_100_000 // 10))
    assert len(yamlio.load(many, "many.yaml")) == 110_000
