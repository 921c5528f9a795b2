"""Every job records where it ran and what it produced (issue 15), on the real shell resource."""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.jobs import capture, checksums
from reproman.jobs.commands import RunResult
from reproman.jobs.environment import parse_context
from reproman.jobs.registry import Registry
from reproman.jobs.spec import JobSpec


def _run(**kwargs: Any) -> JobSpec:
    result = api.run(follow=True, **kwargs)
    assert isinstance(result, RunResult)
    assert result.status is not None
    return Registry().load(result.job.jobid)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _single_environment(job: JobSpec) -> dict[str, Any]:
    environments = job.environment["environments"]
    assert len(environments) == 1, environments.keys()
    return next(iter(environments.values()))


def test_batch_records_one_environment_and_every_output_checksum(workdir: Path) -> None:
    job = _run(command="mkdir -p out && printf 'n=%s\\n' {p[n]} > out/{p[n]}.txt",
               batch_parameters=["n=" + ",".join(map(str, range(8)))], outputs=["out/{p[n]}.txt"])
    assert job.capture == "environment"
    assert sorted(job.checksums) == [f"out/{n}.txt" for n in range(8)]
    for rel, recorded in job.checksums.items():
        local = workdir / rel
        assert recorded == {"size": local.stat().st_size, "sha256": _sha(local)}
    env = _single_environment(job)
    # The subjobs' "mkdir" resolves through the runscript's PATH and dpkg knows which package has it.
    assert env["executable"]["name"] == "mkdir" and env["executable"]["path"].endswith("/mkdir")
    packages = {p["name"] for d in env["spec"]["distributions"] if d["name"] == "debian" for p in d["packages"]}
    assert "coreutils" in packages
    assert env["os"]["id"] and env["kernel"].startswith(os.uname().sysname)
    assert env["cpu"]["count"] == os.cpu_count()
    subjobs = job.environment["subjobs"]
    assert [s["index"] for s in subjobs] == list(range(8))
    assert {s["environment"] for s in subjobs} == set(job.environment["environments"])
    assert {s["host"] for s in subjobs} == {Path("/proc/sys/kernel/hostname").read_text().strip()}
    assert all(s["state"] == "succeeded" and s["exit_code"] == 0 for s in subjobs)
    assert job.extra["verified"] == {"matched": 8, "mismatched": [], "absent": []}


def test_concurrent_subjobs_on_one_node_trace_once(workdir: Path, tmp_path: Path) -> None:
    # The node capture runs uname once; a uname first on PATH counts how many subjobs did it.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    counter = tmp_path / "uname-calls"
    (bindir / "uname").write_text(f"#!/bin/sh\necho x >> {counter}\nexec /bin/uname \"$@\"\n")
    (bindir / "uname").chmod(0o755)
    job = _run(command="echo {p[n]} > o{p[n]}", batch_parameters=["n=" + ",".join(map(str, range(20)))],
               outputs=["o{p[n]}"], job_parameters={"num_processes": "8", "env": f"PATH={bindir}:/usr/bin:/bin"})
    assert counter.read_text().count("x") == 1
    env_dir = workdir / ".reproman" / "jobs" / "local" / job.jobid / "env"
    assert len(list(env_dir.glob("n.*.lock"))) == 1
    assert len(list(env_dir.glob("n.*.spec.json"))) == 1
    assert len([p for p in env_dir.parent.glob("started.*") if p.read_text().startswith("host=")]) == 20
    assert len(job.environment["environments"]) == 1


def test_secret_looking_variables_reach_the_job_but_are_stored_nowhere(workdir: Path, tmp_path: Path) -> None:
    secret = "hunter2-do-not-store"
    job = _run(command='printf %s "$API_TOKEN" | sha256sum > out.txt; echo "$PLAIN" >> out.txt',
               outputs=["out.txt"], job_parameters={"env": f"API_TOKEN={secret},PLAIN=visible"}, keep_remote=True)
    seen = (workdir / "out.txt").read_text().split()
    assert seen[0] == hashlib.sha256(secret.encode()).hexdigest() and seen[-1] == "visible"  # the job saw both
    assert job.parameters["env"]["PLAIN"] == "visible"
    assert job.parameters["env"]["API_TOKEN"] != secret
    # Nowhere: the registry, the fetched logs and record, the job directory kept on the resource, a crate.
    pytest.importorskip("rocrate")
    api_crate = tmp_path / "crate"
    from reproman.jobs.export import export_job

    export_job(job, api_crate)
    roots = [Path(os.environ["XDG_DATA_HOME"]), workdir, Path(job.job_dir), api_crate]
    leaks = [p for root in roots for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == []
    assert not (Path(job.job_dir) / capture.SECRETS_FILE).exists()  # removed at fetch


def test_a_rerun_needs_the_secret_from_the_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reproman.errors import UsageError

    job = _run(command='echo "$DB_PASSWORD" | wc -c > n.txt', outputs=["n.txt"],
               job_parameters={"env": "DB_PASSWORD=s3cret"})
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    with pytest.raises(UsageError, match="DB_PASSWORD"):
        api.rerun(job.jobid)
    monkeypatch.setenv("DB_PASSWORD", "s3cret")
    again = api.rerun(job.jobid, follow=True)
    assert again.status.ok
    assert again.job.checksums == job.checksums


def test_steady_state_reuses_the_trace_until_the_program_changes(workdir: Path, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    program = bindir / "myprog"
    program.write_text("#!/bin/sh\necho v1 > \"$1\"\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    # Installed a while ago (a trace treats anything changed in the second before it began as new).
    os.utime(program, (program.stat().st_mtime - 60,) * 2)
    params = {"env": f"PATH={bindir}:/usr/bin:/bin"}

    def run_once() -> dict[str, Any]:
        job = _run(command="myprog out.txt", outputs=["out.txt"], job_parameters=params)
        return _single_environment(job)

    first = run_once()
    assert first["spec_status"] == "traced"
    assert first["executable"] == {"name": "myprog", "path": str(program), "interpreter": "/bin/sh"}
    assert str(program) in first["spec"]["files"]  # no package owns it: recorded as a file
    second = run_once()
    assert second["spec_status"] == "cached" and second["spec"] == first["spec"]
    # Changing the program (a watched path) invalidates the cached trace.
    program.write_text("#!/bin/sh\necho v2 > \"$1\"\n")
    future = program.stat().st_mtime + 5
    os.utime(program, (future, future))
    third = run_once()
    assert third["spec_status"] == "traced"


def test_capture_off_records_nothing_and_costs_nothing(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROMAN_RUN_CAPTURE", "off")
    from reproman.config import reset_config

    reset_config()
    job = _run(command="echo x > x.txt", outputs=["x.txt"])
    assert job.capture == "off" and job.checksums == {} and job.environment == {}
    runscript = (workdir / ".reproman" / "jobs" / "local" / job.jobid / "runscript").read_text()
    assert "rm_" not in runscript


def test_odd_output_names_are_checksummed_exactly(workdir: Path) -> None:
    names = ["sp ace.txt", "back\\slash.txt", "new\nline.txt", "caf\u00e9.txt", "-dash.txt"]
    script = "mkdir -p odd && cd odd && " + " && ".join(f"printf %s {shlex.quote(n)} > {shlex.quote(n)}" for n in names)
    script += " && n=$(printf 'bad\\377.txt') && printf %s x > \"$n\""
    job = _run(command=script, outputs=["odd"])
    assert sorted(job.checksums) == sorted([f"odd/{n}" for n in names] + ["odd/bad\udcff.txt"])
    for name in names:
        assert job.checksums[f"odd/{name}"]["sha256"] == hashlib.sha256(name.encode()).hexdigest()
    assert job.checksums["odd/bad\udcff.txt"]["sha256"] == hashlib.sha256(b"x").hexdigest()
    assert job.extra["verified"]["mismatched"] == []


def test_fetch_reports_an_output_altered_in_transfer(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Fault injection: the file changes on the resource between the checksum step and the transfer."""
    from reproman.jobs.plain import PlainOrchestrator

    real_fetch = PlainOrchestrator.fetch

    def corrupting_fetch(self: PlainOrchestrator) -> list[str]:
        Path(self.job.working_directory, "data.txt").write_text("altered\n")
        return real_fetch(self)

    monkeypatch.setattr(PlainOrchestrator, "fetch", corrupting_fetch)
    job = _run(command="echo original > data.txt", outputs=["data.txt"])
    assert job.extra["verified"]["mismatched"] == ["data.txt"]
    assert any("does not match the checksum" in r.getMessage() for r in caplog.records)


def test_run_trace_records_each_subjobs_opened_files(workdir: Path) -> None:
    import shutil

    if shutil.which("strace") is None:
        pytest.skip("strace is not installed here")
    result = api.run(command="cat /etc/os-release > os.txt", outputs=["os.txt"], follow=True, trace=True)
    job = Registry().load(result.job.jobid)
    assert job.capture == "trace"
    (subjob,) = job.environment["subjobs"]
    assert subjob["trace"]["status"] == "traced" and subjob["trace"]["opened"] > 0
    spec = job.environment["traces"][subjob["trace"]["spec"]]
    packages = {p["name"] for d in spec["distributions"] if d["name"] == "debian" for p in d["packages"]}
    assert "coreutils" in packages  # cat


# -- the pieces, on their own ---------------------------------------------------------------
@pytest.mark.parametrize(("command", "expected"), [
    ("python analyse.py", "python"),
    ("FOO=1 BAR=2 ./run.sh x", "./run.sh"),
    ("exec env python3 -c 'print(1)'", "python3"),
    ("mkdir -p out; cat a > out/b", "mkdir"),
    ("'my prog' --flag", "my prog"),
    ("echo 'unbalanced", "echo"),
])
def test_executable_name(command: str, expected: str) -> None:
    assert capture.executable_name(command) == expected


def test_context_string_parses_back_into_variables() -> None:
    ctx = "exe=python;path=/a:/b;ld=;modules=gcc/12:openmpi/4;modulefiles=/m/gcc;venv=/v;conda="
    assert parse_context(ctx) == ("python", {"PATH": "/a:/b", "LOADEDMODULES": "gcc/12:openmpi/4",
                                             "_LMFILES_": "/m/gcc", "VIRTUAL_ENV": "/v"})


def test_incomplete_checksum_answers_record_nothing() -> None:
    assert checksums.parse(b"./a\0./b\0", b"aa  ./a\n", b"1\n2\n") == {}
    assert checksums.parse(b"./a\0", b"\\" + b"ab" * 32 + b"  ./a\\n\n", b"3\n") == {"a": {"size": 3, "sha256": "ab" * 32}}


def test_node_tool_is_sent_again_after_a_staging_transfer_that_failed(workdir: Path) -> None:
    from reproman.errors import ReproManError
    from reproman.jobs.nodetool import TOOLS_SUBDIR

    root = Path(os.environ["HOME"]) / ".reproman" / "run-root"
    tools = root / TOOLS_SUBDIR
    tools.parent.mkdir(parents=True)
    tools.write_text("a file where the tools directory goes: the transfer carrying the tool fails\n")
    with pytest.raises(ReproManError):
        api.run(command="echo one > one.txt", outputs=["one.txt"], follow=True)
    assert Registry().entries() == []
    tools.unlink()
    # An executable on PATH (echo is a shell builtin: nothing to trace unless a venv is active).
    job = _run(command="sh -c 'echo two > two.txt'", outputs=["two.txt"])
    env = _single_environment(job)
    # Had the failed transfer been taken for a sent tool, this job would have found it missing.
    assert "missing" not in str(env.get("spec_status")), env.get("spec_status")
    assert env["spec"]["distributions"], "the node tool ran and traced the executable"
    assert list(tools.glob("reproman-node-*.pyz")), "the second submission sent the tool"


@pytest.mark.parametrize("fmt", ["gnu", "ustar", "pax", "posix", "oldgnu"])
def test_collected_tar_streams_read_the_same_with_the_fast_reader(tmp_path: Path, fmt: str) -> None:
    """The collection step's tar stream is read by a small reader; anything it cannot read goes to tarfile."""
    import shutil
    import subprocess

    from reproman.jobs.provenance import _plain_tar_files, _tar_files

    if not shutil.which("tar"):
        pytest.skip("no tar on this machine") if not os.environ.get("CI") else pytest.fail("no tar")
    env = tmp_path / "env"
    (env / "sub").mkdir(parents=True)
    (env / "empty").write_bytes(b"")
    (env / "block").write_bytes(b"x" * 512)
    (env / "odd").write_bytes(bytes(range(256)) * 3)
    (env / "sub" / "n\xe9 name").write_bytes(b"latin")
    deep = env / ("d" * 90) / ("e" * 20)
    deep.mkdir(parents=True)
    (deep / "f").write_bytes(b"in a path longer than 100 bytes: ustar puts its head in the prefix field")
    streams = {"plain": ["env/empty", "env/block", "env/odd", "env/sub"], "all": ["env"]}
    for members in streams.values():
        out = subprocess.run(["tar", f"--format={fmt}", "-cf", "-", *members], cwd=tmp_path, capture_output=True,
                             check=True).stdout
        expected = _tar_files(out)
        fast = _plain_tar_files(out)
        assert fast is None or fast == expected
        assert {name for name, _ in expected} >= {"env/empty", "env/block", "env/odd"}
    plain = subprocess.run(["tar", f"--format={fmt}", "-cf", "-", *streams["plain"]], cwd=tmp_path,
                           capture_output=True, check=True).stdout
    if fmt in ("gnu", "ustar", "oldgnu"):
        assert _plain_tar_files(plain) == _tar_files(plain), "short names and plain files take the fast path"
    broken = bytearray(plain)
    broken[0] ^= 1  # the first header's checksum no longer matches
    assert _plain_tar_files(bytes(broken)) is None
    assert _plain_tar_files(plain[:700]) is None, "a truncated stream is left to tarfile (which says what is wrong)"
