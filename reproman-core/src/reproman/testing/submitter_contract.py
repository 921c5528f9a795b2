"""The contract every submitter must pass, whatever the scheduler behind it.

It drives the submitter the way users do, through ``run`` and ``jobs`` (the
command functions behind :func:`reproman.api.run` and
:func:`reproman.api.jobs`, which core never imports back) on a resource
where the scheduler runs, and
checks what users rely on: every subjob of an array runs once with its own
parameters and its outputs come back; a failing subjob is reported with its
exit code; throttling, splitting large arrays and launcher mode (from job
parameters and from the configuration) work where the submitter offers them
and are refused where it does not; one poll asks the scheduler once for many
jobs; ``jobs --cancel`` leaves every subjob reading "cancelled" and no
process of the job running; bad job parameters are refused with one line
before anything is submitted; the submission id is read strictly.

Use it by subclassing in the submitter's tests and giving the fixture
``submitter`` (its name), after whatever makes the scheduler answer::

    from reproman.testing.submitter_contract import SubmitterContract

    class TestMySubmitter(SubmitterContract):
        supports_launcher = False           # refused, and the suite checks it is
        submission_outputs = {"Submitted 42\\n": "42"}
        bad_submission_outputs = ("", "error: queue full\\n")

        @staticmethod
        def parse_submission_output(text):
            return my_submitter.parse_output(text)

        @pytest.fixture
        def submitter(self, my_scheduler_running):
            return "mysched"

Fixtures a subclass may override: ``resref`` (the resource, default the
local one), ``job_parameters`` (what every job of the suite passes, e.g. a
queue; ``max_poll_interval`` is set low so follows are quick) and
``project`` (the user's working directory). Optional features are class
attributes, ``True`` unless the subclass says otherwise: a submitter that
does not offer one must refuse it, and the suite checks that instead of
skipping. Methods a subclass may adapt for a resource that is not this
machine: :meth:`SubmitterContract.processes_of`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from reproman.errors import ReproManError
from reproman.jobs import commands as job_commands
from reproman.jobs.commands import RunResult
from reproman.jobs.contracts import FailureReason, State, Submitter
from reproman.resources import commands as resource_commands
from reproman.testing.cli import run_cli


class SubmitterContract:
    """Arrays, failures, throttle, split, launcher, one query per poll, cancel, refusals, ids."""

    # -- what the submitter offers (a feature it lacks must be refused) -----------------
    #: ``throttle=N``: at most N subjobs at once.
    supports_throttle: bool = True
    #: ``max_array_size=N``: a larger batch goes in as several submissions.
    supports_split: bool = True
    #: ``launcher=true`` (job parameter or ``[submitter-NAME] launcher = yes``): one allocation runs every subjob.
    supports_launcher: bool = True
    #: Job parameters the launcher needs besides ``launcher`` on this scheduler (e.g. ``throttle`` on PBS).
    launcher_parameters: Mapping[str, str] = {}
    #: The submitter reads its id from the scheduler's output; give the samples below, or say False.
    parses_scheduler_output: bool = True
    #: Scheduler output -> the submission id the submitter must read from it.
    submission_outputs: Mapping[str, str] = {}
    #: Outputs the submitter must refuse (a SubmissionError) rather than record a wrong id.
    bad_submission_outputs: Sequence[str] = ()

    # -- what the checks expect -------------------------------------------------------------
    #: A recorded submission id matches this in full.
    submission_id_pattern: str = r"\S+"
    #: Job parameters (name -> value) that must each be refused before anything is submitted.
    invalid_parameters: Mapping[str, str] = {"reproman_contract_no_such_parameter": "1", "num_processes": "0"}
    #: Remote commands one ``scheduler_states`` call may run: one queue query, one history query.
    max_scheduler_commands: int = 2
    #: Subjobs in the array test.
    array_size: int = 5
    #: Seconds a subjob of the suite may take to start.
    start_timeout: float = 300
    #: Seconds ``jobs --cancel`` may take to leave no process behind.
    cancel_timeout: float = 60

    # -- fixtures a subclass may override -----------------------------------------------------
    @pytest.fixture
    def resref(self) -> str | None:
        """The resource the scheduler answers on (None: the local resource)."""
        return None

    @pytest.fixture
    def job_parameters(self) -> Mapping[str, Any]:
        """Parameters every job of the suite passes (a queue, an account...)."""
        return {}

    @pytest.fixture
    def project(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resref: str | None) -> Iterator[Path]:
        """The user's working directory, the current directory; a HOME of its own when running locally."""
        if resref is None:
            home = tmp_path / "home"
            home.mkdir()
            monkeypatch.setenv("HOME", str(home))
        path = tmp_path / "project"
        path.mkdir()
        monkeypatch.chdir(path)
        yield path

    @pytest.fixture
    def runner(self, project: Path, resref: str | None, submitter: str,
               job_parameters: Mapping[str, Any]) -> Callable[..., RunResult]:
        """``runner(command, parameters={...}, **run_kwargs)``: ``run`` with the suite's settings."""
        def go(command: str, parameters: Mapping[str, Any] | None = None, **kwargs: Any) -> RunResult:
            merged = {"max_poll_interval": "1", **job_parameters, **(parameters or {})}
            kwargs.setdefault("orchestrator", "plain")
            result = job_commands.run(command=command, resref=resref, submitter=submitter, job_parameters=merged, **kwargs)
            assert isinstance(result, RunResult)
            return result
        return go

    @pytest.fixture
    def submitter_class(self, submitter: str) -> type[Submitter]:
        from reproman.plugins.manager import get_plugin_manager

        cls: type[Submitter] = get_plugin_manager().submitter(submitter).load()
        return cls

    @pytest.fixture
    def submissions(self, submitter_class: type[Submitter], monkeypatch: pytest.MonkeyPatch) -> list[str]:
        """Every :meth:`Submitter.submit` call from now on (the job ids), to show nothing was submitted."""
        calls: list[str] = []
        real = submitter_class.submit

        def counted(self: Submitter, job: Any, script_path: str) -> str:
            calls.append(job.jobid)
            return real(self, job, script_path)

        monkeypatch.setattr(submitter_class, "submit", counted)
        return calls

    @pytest.fixture
    def scheduler_queries(self, submitter_class: type[Submitter],
                          monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[str, ...], int]]:
        """Every :meth:`Submitter.scheduler_states` call from now on: the jobs asked about, the commands run."""
        calls: list[tuple[tuple[str, ...], int]] = []
        real = submitter_class.scheduler_states

        def counted(self: Submitter, jobs: Sequence[Any], wanted: Any = None) -> Any:
            session = self.session
            plain = session.execute_command
            ran = 0

            def counting(*args: Any, **kwargs: Any) -> Any:
                nonlocal ran
                ran += 1
                return plain(*args, **kwargs)

            session.execute_command = counting  # type: ignore[method-assign]
            try:
                return real(self, jobs, wanted)
            finally:
                del session.execute_command
                calls.append((tuple(j.jobid for j in jobs), ran))

        monkeypatch.setattr(submitter_class, "scheduler_states", counted)
        return calls

    # -- steps a subclass may adapt ---------------------------------------------------------------
    def processes_of(self, resref: str | None, tag: str) -> list[str]:
        """Processes on the resource whose command line holds ``tag`` (as ``PID CMDLINE``).

        Asked on the resource with :func:`reproman.resource_commands.execute`, which is
        where the scheduler runs the subjobs on single-host test
        installations; a cluster whose subjobs run on other nodes overrides
        this.
        """
        # "[x]" in the pattern keeps the probe from matching itself.
        pattern = f"{tag[:-1]}[{tag[-1]}]"
        probe = (f"for f in /proc/[0-9]*/cmdline; do c=$(tr '\\0' ' ' < \"$f\" 2>/dev/null) || continue; "
                 f"case $c in *{pattern}*) echo \"${{f%/cmdline}} $c\";; esac; done; true")
        result = resource_commands.execute("sh", ["-c", probe], resref=resref)
        return [line for line in str(getattr(result, "stdout", "")).splitlines() if line.strip()]

    def stop_leftovers(self, resref: str | None, tag: str) -> None:
        """Kill what a failed cancel left running (by process id, tagged processes only): a failing test leaks nothing."""
        pids = [line.split()[0].rsplit("/", 1)[-1] for line in self.processes_of(resref, tag)]
        if pids:
            resource_commands.execute("kill", ["-KILL", *pids], resref=resref)

    def submission_count(self, submission_id: str) -> int:
        """How many scheduler submissions a recorded id stands for (batch submitters join them with commas)."""
        return len([part for part in submission_id.split(",") if part])

    @staticmethod
    def parse_submission_output(text: str) -> str:
        """The submitter's reading of its scheduler's submission output; subclasses that parse give it."""
        raise NotImplementedError("give parse_submission_output, or set parses_scheduler_output = False")

    # -- helpers --------------------------------------------------------------------------------
    def subjob_rows(self, jobid: str) -> list[dict[str, Any]]:
        (row,) = job_commands.jobs([jobid], action="show", status=True)
        assert not row.get("error"), row
        rows: list[dict[str, Any]] = row["subjobs_status"]["subjobs"]
        return rows

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.5)

    def assert_all_succeeded(self, result: RunResult, n: int) -> None:
        assert result.status is not None and result.status.finished, "the follow did not see the job finish"
        states = [(s.index, s.state, s.exit_code) for s in result.status.subjobs]
        assert states == [(i, State.SUCCEEDED, 0) for i in range(n)], result.status.summary()
        assert result.ok

    def assert_outputs(self, project: Path, n: int) -> None:
        found = sorted(os.listdir(project / "out"), key=lambda name: int(name.split(".")[0]))
        assert found == [f"{i}.txt" for i in range(n)]
        for i in range(n):
            assert (project / "out" / f"{i}.txt").read_text() == f"subjob {i}\n"

    def assert_refused(self, runner: Callable[..., RunResult], submissions: list[str],
                       parameters: Mapping[str, Any]) -> str:
        """``parameters`` are refused with one line, and nothing reached the scheduler or the registry."""
        with pytest.raises(ReproManError) as info:
            runner("echo never > never.txt", parameters=parameters, outputs=["never.txt"])
        message = str(info.value)
        assert message.strip() and "\n" not in message.strip(), f"not one line: {message!r}"
        assert submissions == [], f"{parameters} reached the scheduler"
        assert job_commands.jobs() == [], f"{parameters} left a job record"
        return message

    #: The array test's command: each subjob writes its own parameter into its own output.
    ARRAY_COMMAND = "mkdir -p out && printf 'subjob %s\\n' {p[i]} > out/{p[i]}.txt"

    def batch(self, n: int) -> dict[str, list[str]]:
        return {"i": [str(i) for i in range(n)]}

    # -- arrays -----------------------------------------------------------------------------------
    def test_array_runs_every_subjob_once_with_its_outputs(self, runner: Callable[..., RunResult],
                                                         project: Path) -> None:
        n = self.array_size
        result = runner(self.ARRAY_COMMAND, batch_parameters=self.batch(n), outputs=["out"], follow=True)
        self.assert_all_succeeded(result, n)
        self.assert_outputs(project, n)
        assert re.fullmatch(self.submission_id_pattern, str(result.job.submission_id)), result.job.submission_id

    def test_failing_subjob_reports_its_exit_code(self, runner: Callable[..., RunResult]) -> None:
        codes = ["0", "3", "00", "42"]  # distinct values (a batch refuses repeats); "00" exits 0 as well
        result = runner("sh -c 'echo failing >&2; exit {p[code]}'", batch_parameters={"code": codes}, follow=True)
        assert result.status is not None and result.status.finished
        got = [(s.state, s.exit_code, s.reason) for s in result.status.subjobs]
        assert got == [
            (State.SUCCEEDED, 0, None) if int(code) == 0 else (State.FAILED, int(code), FailureReason.EXIT_CODE)
            for code in codes
        ], result.status.summary()
        assert not result.ok
        assert len(result.failed) == 2, result.failed

    # -- throttle and split -------------------------------------------------------------------------
    def test_throttle_limits_subjobs_running_at_once(self, runner: Callable[..., RunResult], project: Path,
                                                     submissions: list[str]) -> None:
        if not self.supports_throttle:
            self.assert_refused(runner, submissions, {"throttle": "1"})
            return
        n = 3
        command = ("s=$(date +%s.%N); sleep 2; e=$(date +%s.%N); mkdir -p t && echo \"$s $e\" > t/{p[i]}")
        result = runner(command, parameters={"throttle": "1"}, batch_parameters=self.batch(n), outputs=["t"],
                        follow=True)
        self.assert_all_succeeded(result, n)
        spans = sorted(tuple(map(float, (project / "t" / str(i)).read_text().split())) for i in range(n))
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end - 0.1, f"throttle=1, yet subjobs overlapped: {spans}"

    def test_split_large_array_runs_every_subjob(self, runner: Callable[..., RunResult], project: Path,
                                                 submissions: list[str]) -> None:
        if not self.supports_split:
            self.assert_refused(runner, submissions, {"max_array_size": "2"})
            return
        n = 5
        parameters = {"max_array_size": "2", **({"throttle": "2"} if self.supports_throttle else {})}
        result = runner(self.ARRAY_COMMAND, parameters=parameters, batch_parameters=self.batch(n),
                        outputs=["out"], follow=True)
        self.assert_all_succeeded(result, n)
        self.assert_outputs(project, n)
        assert self.submission_count(str(result.job.submission_id)) == 3, result.job.submission_id

    # -- launcher -------------------------------------------------------------------------------------
    def test_launcher_runs_every_subjob_in_one_submission(self, runner: Callable[..., RunResult], project: Path,
                                                         submissions: list[str]) -> None:
        if not self.supports_launcher:
            self.assert_refused(runner, submissions, {"launcher": "true", **self.launcher_parameters})
            return
        n = 4
        result = runner(self.ARRAY_COMMAND, parameters={"launcher": "true", **self.launcher_parameters},
                        batch_parameters=self.batch(n), outputs=["out"], follow=True)
        self.assert_all_succeeded(result, n)
        self.assert_outputs(project, n)
        assert self.submission_count(str(result.job.submission_id)) == 1, result.job.submission_id

    def test_launcher_from_the_configuration_is_followed_as_a_launcher(
        self, runner: Callable[..., RunResult], project: Path, submitter: str, monkeypatch: pytest.MonkeyPatch,
        submissions: list[str],
    ) -> None:
        """``[submitter-NAME] launcher = yes`` means launcher mode for the script AND for following it.

        Subjobs waiting inside the launcher are unknown to the scheduler as
        subjobs; a submitter that forgets the configured launcher when it
        reads the queue takes them for forgotten, and (with ``[jobs]
        lost_after = 0``) for lost.
        """
        from reproman.config import reset_config
        from reproman.plugins.manager import get_plugin_manager

        declared = get_plugin_manager().submitter(submitter).job_parameters
        if not self.supports_launcher:
            assert "launcher" not in declared, "supports_launcher = False, yet the submitter declares 'launcher'"
            return
        assert "launcher" in declared, "supports_launcher, yet the submitter does not declare the 'launcher' parameter"
        monkeypatch.setenv(f"REPROMAN_SUBMITTER-{submitter.upper()}_LAUNCHER", "yes")
        monkeypatch.setenv("REPROMAN_JOBS_LOST_AFTER", "0")
        reset_config()
        n = 3
        command = "sleep 1; " + self.ARRAY_COMMAND
        result = runner(command, parameters={**self.launcher_parameters, "throttle": "1"} if self.supports_throttle
                        else dict(self.launcher_parameters), batch_parameters=self.batch(n), outputs=["out"],
                        follow=True)
        self.assert_all_succeeded(result, n)
        self.assert_outputs(project, n)
        assert self.submission_count(str(result.job.submission_id)) == 1, result.job.submission_id

    # -- one query per poll ----------------------------------------------------------------------------
    def test_one_scheduler_query_per_poll_for_many_jobs(
        self, runner: Callable[..., RunResult], resref: str | None,
        scheduler_queries: list[tuple[tuple[str, ...], int]],
    ) -> None:
        tag = _tag()
        jobs = [runner(f"sleep {tag}", batch_parameters=self.batch(2)).job for _ in range(3)]
        try:
            scheduler_queries.clear()
            rows = job_commands.jobs([j.jobid for j in jobs], status=True)
            assert len(rows) == 3 and not any(r.get("error") for r in rows), rows
            assert len(scheduler_queries) == 1, f"scheduler asked {len(scheduler_queries)} times in one poll"
            (asked, commands), = scheduler_queries
            assert sorted(asked) == sorted(j.jobid for j in jobs)
            assert 1 <= commands <= self.max_scheduler_commands, f"{commands} commands for one poll of 3 jobs"
        finally:
            job_commands.jobs([j.jobid for j in jobs], action="cancel")
            try:
                self.wait_for(lambda: not self.processes_of(resref, tag), self.cancel_timeout, "the jobs to stop")
            finally:
                self.stop_leftovers(resref, tag)

    # -- cancel -----------------------------------------------------------------------------------------------
    def test_cancel_reads_cancelled_and_leaves_no_process(self, runner: Callable[..., RunResult],
                                                         resref: str | None) -> None:
        tag = _tag()
        n = 3
        result = runner(f"sleep {tag}", batch_parameters=self.batch(n))
        jobid = result.job.jobid
        try:
            self.wait_for(lambda: self.processes_of(resref, tag), self.start_timeout, "a subjob to start")
        finally:
            (row,) = job_commands.jobs([jobid], action="cancel")
        assert row.get("cancelled") is True and not row.get("error"), row
        try:
            self.wait_for(lambda: not self.processes_of(resref, tag), self.cancel_timeout,
                          f"no process of the cancelled job (tag {tag}) to be left")
        finally:
            self.stop_leftovers(resref, tag)

        def all_finished() -> list[dict[str, Any]] | None:
            rows = self.subjob_rows(jobid)
            return rows if all(r["state"] in ("succeeded", "failed") for r in rows) else None

        rows = self.wait_for(all_finished, self.cancel_timeout, "every subjob to read finished")
        assert [(r["state"], r["reason"]) for r in rows] == [("failed", "cancelled")] * n, rows
        # The outcome was recorded: it reads the same from the record alone, and stays so.
        time.sleep(1)
        (again,) = job_commands.jobs([jobid], action="show")
        assert [(f["index"], f["reason"]) for f in again["failed"]] == [(i, "cancelled") for i in range(n)], again
        assert again["outcome"] and "cancel" in again["outcome"], again["outcome"]
        assert not self.processes_of(resref, tag), "a cancelled subjob started later"

    # -- refusals ----------------------------------------------------------------------------------------------
    def test_invalid_job_parameters_are_refused_before_submission(
        self, runner: Callable[..., RunResult], submissions: list[str]
    ) -> None:
        assert self.invalid_parameters, "declare at least one invalid job parameter"
        for name, value in sorted(self.invalid_parameters.items()):
            message = self.assert_refused(runner, submissions, {name: value})
            assert name in message or value in message, f"{name}={value}: the message names neither: {message}"

    def test_cli_refuses_a_bad_parameter_with_one_line(self, project: Path, resref: str | None,
                                                       submitter: str) -> None:
        name, value = sorted(self.invalid_parameters.items())[0]
        args = ["run", "--submitter", submitter, "--jp", f"{name}={value}"]
        args += ["-r", resref] if resref else []
        result = run_cli([*args, "--", "echo", "never"], cwd=project, timeout=120)
        assert result.returncode != 0
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert "Traceback" not in result.stderr and lines, result.stderr
        assert len([ln for ln in lines if not ln.lstrip().lower().startswith("hint")]) == 1, result.stderr
        assert job_commands.jobs() == []

    # -- submission ids --------------------------------------------------------------------------------------
    def test_submission_output_is_read_strictly(self) -> None:
        from reproman.errors import SubmissionError

        if not self.parses_scheduler_output:
            assert not self.submission_outputs and not self.bad_submission_outputs
            return
        assert self.submission_outputs and self.bad_submission_outputs, (
            "give submission_outputs and bad_submission_outputs samples (or parses_scheduler_output = False)")
        for text, expected in self.submission_outputs.items():
            assert self.parse_submission_output(text) == expected, text
        for text in self.bad_submission_outputs:
            with pytest.raises(SubmissionError):
                self.parse_submission_output(text)


def _tag() -> str:
    """A sleep duration no other process on the machine has: the job's processes are found by it."""
    return str(50000 + int.from_bytes(os.urandom(3), "big") % 900000)
