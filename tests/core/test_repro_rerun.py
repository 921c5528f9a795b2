"""``rerun``, ``diff JOB1 JOB2`` and ``rerun --verify`` on the real shell resource (issue 15)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reproman import api
from reproman.errors import JobError
from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli

N = 20
#: Subjobs whose command fails until the flag file exists (every third one).
FLAKY = [i for i in range(N) if i % 3 == 0]


def _jobid(result: object) -> str:
    return result.job.jobid  # type: ignore[attr-defined]


def test_deterministic_job_rerun_is_identical_and_diff_exits_0(workdir: Path) -> None:
    first = api.run(command="mkdir -p out && echo {p[n]} > out/{p[n]}.txt", batch_parameters=["n=1,2,3"],
                    outputs=["out/{p[n]}.txt"], follow=True)
    rerun = run_cli(["rerun", "--follow", _jobid(first)])
    assert rerun.returncode == 0, rerun.stderr
    second = rerun.stdout.split()[0]
    assert Registry().load(second).rerun_of == {"jobid": _jobid(first), "subjobs": None}
    diff = run_cli(["diff", _jobid(first), second])
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "3 identical" in diff.stdout and "Environments: identical" in diff.stdout


def test_output_embedding_the_date_differs_and_diff_exits_3_naming_it(workdir: Path) -> None:
    first = api.run(command="echo same > same.txt; date +%s%N > stamp.txt", outputs=["same.txt", "stamp.txt"],
                    follow=True)
    original = (workdir / "stamp.txt").read_bytes()
    rerun = run_cli(["rerun", "--follow", _jobid(first)])
    assert rerun.returncode == 0, rerun.stderr
    second = rerun.stdout.split()[0]
    diff = run_cli(["diff", _jobid(first), second])
    assert diff.returncode == 3, diff.stdout + diff.stderr
    assert "differs    stamp.txt" in diff.stdout and "same.txt" not in diff.stdout.split("\n", 1)[1]
    # The rerun did not replace the result it differs from; its version is kept beside it.
    assert (workdir / "stamp.txt").read_bytes() == original
    kept = workdir / ".reproman" / "jobs" / "local" / second / "fetched" / "stamp.txt"
    assert kept.read_bytes() != original
    _assert_kept_by_design(rerun.stderr, workdir / "stamp.txt", kept)


def _assert_kept_by_design(stderr: str, local: Path, kept: Path) -> None:
    """The rerun says it kept the original's output, not that the user changed it (nobody did), and does not
    suggest --overwrite (which would throw away what the rerun is compared with)."""
    assert f"kept the local {local}; the rerun's version is {kept}" in stderr, stderr
    assert "changed here" not in stderr and "--overwrite" not in stderr, stderr


def test_rerun_fetched_later_also_says_it_kept_the_originals_output(workdir: Path) -> None:
    """A detached rerun fetched by 'jobs --follow JOB' or 'jobs JOB' words its kept files as 'rerun --follow'."""
    first = api.run(command="date +%s%N > stamp.txt", outputs=["stamp.txt"], follow=True)
    original = (workdir / "stamp.txt").read_bytes()
    for fetch in (["jobs", "--follow"], ["jobs"]):
        rerun = run_cli(["rerun", _jobid(first)])
        assert rerun.returncode == 0, rerun.stderr
        second = rerun.stdout.split()[0]
        deadline = time.monotonic() + 60
        while (fetched := run_cli([*fetch, second])).returncode == 3 and time.monotonic() < deadline:
            time.sleep(0.5)  # 'jobs JOB': not finished yet, nothing fetched; ask again
        assert fetched.returncode == 0, fetched.stderr
        kept = workdir / ".reproman" / "jobs" / "local" / second / "fetched" / "stamp.txt"
        _assert_kept_by_design(fetched.stderr, workdir / "stamp.txt", kept)
        assert (workdir / "stamp.txt").read_bytes() == original


def test_rerun_failed_resubmits_exactly_the_failed_subjobs(workdir: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    first = api.run(
        command="mkdir -p out && echo {p[n]} > out/{p[n]}.txt && { [ $(( {p[n]} % 3 )) -ne 0 ] || [ -e FLAG ]; }"
        .replace("FLAG", str(flag)),
        batch_parameters=["n=" + ",".join(map(str, range(N)))], outputs=["out/{p[n]}.txt"], follow=True,
    )
    failed = sorted(f["index"] for f in first.failed)  # type: ignore[attr-defined]
    assert failed == FLAKY
    flag.touch()
    result = api.rerun(_jobid(first), failed=True, follow=True)
    assert result.status.ok
    assert result.job.n_subjobs == len(FLAKY)
    assert result.job.rerun_of == {"jobid": _jobid(first), "subjobs": FLAKY}
    assert [s.p["n"] for s in result.job.subjobs] == [str(i) for i in FLAKY]
    assert sorted(result.job.checksums) == sorted(f"out/{i}.txt" for i in FLAKY)
    # Compared on its own subjobs: the outputs it made match the original's.
    diff = api.diff(_jobid(first), result.job.jobid)
    assert diff.equal and [o.path for o in diff.outputs] == sorted(f"out/{i}.txt" for i in FLAKY)
    # Nothing left to rerun.
    with pytest.raises(JobError, match="no failed subjobs"):
        api.rerun(result.job.jobid, failed=True)


def test_rerun_verify_prints_the_comparison_and_exits_by_it(workdir: Path) -> None:
    first = api.run(command="echo stable > a.txt", outputs=["a.txt"], follow=True)
    same = run_cli(["rerun", "--verify", _jobid(first)])
    assert same.returncode == 0, same.stderr
    assert "1 identical" in same.stdout
    moving = api.run(command="date +%N > b.txt", outputs=["b.txt"], follow=True)
    differs = run_cli(["rerun", _jobid(moving), "--verify", "--json"])
    assert differs.returncode == 3, differs.stderr
    report = json.loads(differs.stdout)
    assert report["comparison"]["equal"] is False
    assert [o["status"] for o in report["comparison"]["outputs"]] == ["differs"]


def test_rerun_verify_json_lists_the_original_output_it_kept_as_kept_not_fetched(workdir: Path) -> None:
    """``--json`` listed the user's a.txt, left as it was, under ``fetched``; a script then trusted it was new."""
    first = api.run(command="date +%N > a.txt; echo same > b.txt", outputs=["a.txt", "b.txt"], follow=True)
    original = (workdir / "a.txt").read_text()
    verify = run_cli(["rerun", "--verify", "--json", _jobid(first)])
    assert verify.returncode == 3, verify.stderr
    report = json.loads(verify.stdout)
    new = report["jobid"]
    assert (workdir / "a.txt").read_text() == original
    rerun_copy = workdir / ".reproman" / "jobs" / "local" / new / "fetched" / "a.txt"
    assert report["kept"] == [{"local": str(workdir / "a.txt"), "fetched": str(rerun_copy)}], report["kept"]
    assert str(workdir / "a.txt") not in report["fetched"], report["fetched"]
    assert str(workdir / "b.txt") in report["fetched"], report["fetched"]


def test_diff_of_two_jobs_without_outputs_says_nothing_to_compare_and_exits_1(workdir: Path) -> None:
    """Two jobs with no recorded output diffed as "none recorded", exit 0: a script read "the results agree"."""
    first = api.run(command="echo a", follow=True)
    unproduced = api.run(command="true", outputs=["never.txt"], follow=True)
    for argv in (["diff", _jobid(first), _jobid(unproduced)], ["diff", "--json", _jobid(unproduced), _jobid(first)]):
        diff = run_cli(argv)
        assert diff.returncode == 1, (argv, diff.returncode, diff.stdout, diff.stderr)
        assert diff.stdout == "" and diff.stderr.count("\n") == 1 and "Traceback" not in diff.stderr, diff.stderr
        assert "recorded output" in diff.stderr and "so there is nothing to compare" in diff.stderr, diff.stderr
    with_output = api.run(command="echo b > b.txt", outputs=["b.txt"], follow=True)
    assert run_cli(["diff", _jobid(first), _jobid(with_output)]).returncode == 3, "one side's output: a difference"
    jobs_before = len(Registry().entries())
    verify = run_cli(["rerun", "--verify", _jobid(first)])
    assert verify.returncode == 1 and verify.stdout == "", verify.stdout + verify.stderr
    assert f"job {_jobid(first)} has no outputs, so a rerun would have nothing to compare" in verify.stderr
    assert len(Registry().entries()) == jobs_before, "refused before anything was submitted"


def test_diff_of_a_job_not_fetched_is_one_line_error(workdir: Path) -> None:
    fetched = api.run(command="echo a > a.txt", outputs=["a.txt"], follow=True)
    pending = api.run(command="sleep 30; echo b > a.txt", outputs=["a.txt"])
    try:
        diff = run_cli(["diff", _jobid(fetched), _jobid(pending)])
        assert diff.returncode == 1
        assert diff.stderr.count("\n") == 1, diff.stderr
        assert f"job {_jobid(pending)} is not fetched yet" in diff.stderr, diff.stderr
        assert f"'reproman jobs --follow {_jobid(pending)}'" in diff.stderr, diff.stderr
        assert "checksums" not in diff.stderr and "Traceback" not in diff.stderr
    finally:
        api.jobs([_jobid(pending)], action="cancel")


def test_rerun_verify_of_an_original_not_fetched_submits_nothing(workdir: Path) -> None:
    """Before: the rerun was submitted and run, and only then did --verify say it could not compare."""
    pending = api.run(command="sleep 30; echo b > b.txt", outputs=["b.txt"])
    try:
        before = [e.jobid for e in Registry().entries()]
        verify = run_cli(["rerun", "--verify", _jobid(pending)])
        assert verify.returncode == 1, verify.stdout + verify.stderr
        assert verify.stderr.count("\n") == 1 and "Traceback" not in verify.stderr, verify.stderr
        assert f"job {_jobid(pending)} is not fetched yet" in verify.stderr, verify.stderr
        assert (f"'reproman jobs --follow {_jobid(pending)}', then 'reproman rerun --verify {_jobid(pending)}'"
                in verify.stderr), verify.stderr
        assert verify.stdout == ""
        assert [e.jobid for e in Registry().entries()] == before  # nothing submitted
    finally:
        api.jobs([_jobid(pending)], action="cancel")


def test_rerun_verify_of_a_job_fetched_without_checksums_submits_nothing(workdir: Path) -> None:
    first = api.run(command="echo a > a.txt", outputs=["a.txt"], follow=True)
    registry = Registry()
    old = registry.load(_jobid(first))
    old.checksums = {}  # a record fetched before ReproMan recorded checksums
    old.extra.pop("checksummed", None)
    registry.save(old)
    verify = run_cli(["rerun", "--verify", old.jobid])
    assert verify.returncode == 1 and "has no recorded output checksums" in verify.stderr, verify.stderr
    assert [e.jobid for e in Registry().entries()] == [old.jobid]


def test_diff_names_the_argument_that_is_neither_a_job_nor_a_file(workdir: Path) -> None:
    """Before: 'diff JOB nosuchjob' said 'cannot read file JOB', blaming the valid argument."""
    job = _jobid(api.run(command="echo a > a.txt", outputs=["a.txt"], follow=True))
    short = job[-6:]
    for args in ([short, "nosuchjob"], ["nosuchjob", short]):
        diff = run_cli(["diff", *args])
        assert diff.returncode == 2, diff.stderr
        assert diff.stderr.startswith("reproman: error: 'nosuchjob' is neither a job nor a readable spec file")
        assert short not in diff.stderr and diff.stderr.count("\n") == 1, diff.stderr
    spec = workdir / "env.yml"
    spec.write_text("version: 0.0.1\nfiles: [/bin/sh]\n")
    mixed = run_cli(["diff", short, str(spec)])
    assert mixed.returncode == 2 and f"'{short}' is a job but '{spec}' is a file" in mixed.stderr, mixed.stderr
    neither = run_cli(["diff", "nosuchjob", "nosuchfile"])  # no job named: still the spec diff's own error
    assert neither.returncode != 0 and "nosuchjob" in neither.stderr and "Traceback" not in neither.stderr


def test_environment_fact_absent_or_null_is_no_difference(workdir: Path) -> None:
    """A host capture writes the executable's ``"interpreter": null``, the Docker one leaves the key out: the
    diff printed an 'executable' difference whose two sides read the same. Fault injected into the record
    (the same shapes the two captures write), on two real jobs."""
    first = _jobid(api.run(command="echo a > a.txt", outputs=["a.txt"], follow=True))
    second = _jobid(api.run(command="echo a > a.txt", outputs=["a.txt"], follow=True))
    registry = Registry()
    left, right = registry.load(first), registry.load(second)
    (env_l,) = left.environment["environments"].values()
    (env_r,) = right.environment["environments"].values()
    env_l["executable"] = {**env_l["executable"], "interpreter": None}
    env_r["executable"] = {k: v for k, v in env_r["executable"].items() if k != "interpreter"}
    registry.save(left)
    registry.save(right)
    diff = run_cli(["diff", first, second])
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "executable" not in diff.stdout and "Environments: identical" in diff.stdout, diff.stdout
    env_r["executable"]["interpreter"] = "/bin/bash"  # a real difference is still one
    registry.save(right)
    diff = run_cli(["diff", first, second, "--json"])
    facts = json.loads(diff.stdout)["environments"][0]["facts"]
    assert [f["fact"] for f in facts] == ["executable"], facts


def test_diff_of_spec_files_still_works_beside_jobs(workdir: Path) -> None:
    spec = workdir / "env.yml"
    spec.write_text("version: 0.0.1\nfiles: [/bin/sh]\n")
    other = workdir / "other.yml"
    other.write_text("version: 0.0.1\nfiles: [/bin/ls]\n")
    assert run_cli(["diff", str(spec), str(spec)]).returncode == 0
    assert run_cli(["diff", str(spec), str(other)]).returncode == 3


def test_rerun_usage_errors_are_one_line(workdir: Path) -> None:
    missing = run_cli(["rerun", "nosuchjob"])
    assert missing.returncode == 1 and "no job matches 'nosuchjob'" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_follow = run_cli(["rerun", "--follow", "nosuchjob"])
    assert bad_follow.returncode == 1 and "no job matches" in bad_follow.stderr


def test_rerun_failed_names_the_subjobs_as_every_other_message_does(workdir: Path) -> None:
    """Trial K: 'a rerun of subjobs 36, 73 of JOB' named them by 0-based index; elsewhere they are n=37."""
    first = run_cli(["run", "--follow", "--bp", "n=1..8", "sh", "-c", "test {p[n]} != 2 && test {p[n]} != 7"])
    assert first.returncode == 1, first.stderr
    rerun = run_cli(["rerun", "--failed", first.stdout.splitlines()[0]])
    assert rerun.returncode == 0, rerun.stderr
    assert f"a rerun of subjobs n=2, n=7 of job {first.stdout.splitlines()[0]}" in rerun.stderr


def test_rerun_verify_says_an_input_changed_between_the_runs(workdir: Path) -> None:
    """Trial K: an edited input made 'rerun --verify' report a differing output and nothing else."""
    (workdir / "data").mkdir()
    (workdir / "data" / "d1.txt").write_text("one\n")
    (workdir / "params.txt").write_text("alpha\n")
    first = run_cli(["run", "--follow", "-i", "data", "-i", "params.txt", "-o", "det.txt",
                     "sh", "-c", "cat params.txt data/d1.txt > det.txt"])
    assert first.returncode == 0, first.stderr
    jobid = first.stdout.splitlines()[0]
    same = run_cli(["rerun", "--verify", jobid])
    assert same.returncode == 0, same.stderr
    assert "Inputs changed" not in same.stdout
    (workdir / "data" / "d1.txt").write_text("one, edited\n")
    moved = run_cli(["rerun", "--verify", jobid])
    assert moved.returncode == 3, moved.stderr
    assert "differs    det.txt" in moved.stdout
    assert "Inputs changed between the two submissions (size or modification time): data\n" in moved.stdout
    rerun_id = next(line for line in moved.stdout.splitlines() if line.strip() and " " not in line.strip())
    diff = run_cli(["diff", "--json", jobid, rerun_id])
    assert diff.returncode == 3, diff.stderr
    assert json.loads(diff.stdout)["inputs_changed"] == ["data"]
    (record,) = [j for j in Registry().entries() if j.jobid == jobid]
    assert set(record.input_state) == {"data", "params.txt"}
    assert record.input_state["data"]["files"] == 1
