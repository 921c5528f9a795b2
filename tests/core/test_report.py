"""``reproman jobs --report``: the HTML job report, from real local jobs.

Content is checked here (what the page says and that it needs no network);
tests/integration/test_report_browser.py opens a Slurm job's report in a real
headless Chromium. The subjob times come from marker files the runscript
makes, so their test lives here too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from reproman import api
from reproman.jobs import outcome, timing
from reproman.jobs.commands import RunResult
from reproman.jobs.contracts import FailureReason, Usage
from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli

pytest.importorskip("plotly", reason="the report extra (pip install 'reproman-core[report]') is not installed")


def _run(**kwargs: Any) -> RunResult:
    result = api.run(**kwargs)
    assert isinstance(result, RunResult)
    return result


def _report(jobid: str, out: Path, *extra: str) -> Any:
    result = run_cli(["jobs", "--report", jobid, "-o", str(out), *extra])
    return result


@pytest.fixture
def failed_batch(workdir: Path) -> RunResult:
    """Eight subjobs; subjob 4 (x=e) fails with exit 3; its files kept on the resource, to be read live."""
    values = "a,b,c,d,e,f,g,h"
    return _run(command="sleep 0.1; [ {p[x]} != e ] || exit 3",
                batch_parameters=[f"x={values}"], follow=True, keep_remote=True)


def test_report_of_a_failed_batch(failed_batch: RunResult, workdir: Path) -> None:
    out = workdir / "report.html"
    result = _report(failed_batch.job.jobid, out)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stderr and result.stdout == ""
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>\n<!-- ReproMan job report -->")
    # Self-contained: plotly.js inlined, nothing fetched from anywhere.
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import", text)
    assert "Plotly.newPlot" in text and len(text) > 1_000_000
    assert 'id="timeline"' in text
    # The facts, the failing subjob with its parameter, its reason and its stderr path.
    for expected in ("7 succeeded", "1 failed", "local (shell)", "plain", failed_batch.job.command.replace("'", "&#x27;")):
        assert expected in text, expected
    failures = text[text.index("<h2>Failures</h2>"):text.index("<h2>Resource usage</h2>")]
    assert "<td>4</td><td>non-zero exit</td><td>3</td>" in failures and "<td>x=e</td>" in failures
    assert "stderr.4" in failures
    assert "Unavailable (the resource keeps no accounting)." in text
    assert "States and times from resource &#x27;local&#x27;" in text  # asked live, not the fetched copy


def test_timeline_spans_come_from_the_runscript_markers(failed_batch: RunResult) -> None:
    from reproman.report.collect import collect

    job = Registry().load(failed_batch.job.jobid)
    data = collect(job)
    assert [r.state for r in data.subjobs].count("succeeded") == 7
    assert data.queued is not None
    for row in data.subjobs:
        assert row.start is not None and row.end is not None, row
        assert data.queued <= row.start <= row.end <= data.generated
    from reproman.report.render import timeline_figure

    figure = timeline_figure(data)
    names = [(trace["type"], trace["name"]) for trace in figure["data"]]
    assert names == [("bar", "queued"), ("bar", "succeeded"), ("bar", "failed"), ("scatter", "failed")]
    failed = figure["data"][2]
    assert failed["y"] == [4] and failed["marker"]["color"] == "#e53935"
    assert len(figure["data"][1]["y"]) == 7 and figure["data"][3]["y"] == [4]
    # Bars are one row thick whatever the gaps between a trace's rows (plotly's
    # default width is the smallest gap: failures far apart would be huge).
    assert all(t["width"] == 0.8 for t in figure["data"] if t["type"] == "bar")
    assert figure["layout"]["yaxis"]["range"] == [7.5, -0.5]


def test_started_markers_and_final_status_times(workdir: Path) -> None:
    result = _run(command="sleep 0.3", follow=True, keep_remote=True)
    job_dir = Path(result.job.job_dir)
    raw = timing.read_remote(api_session(), str(job_dir))
    spans = timing.combine(raw, {0: True})
    span = spans[0]
    assert span.start is not None and span.end is not None
    assert 0.25 <= span.end - span.start < 5
    # The environment capture's record of the subjob is kept in the start marker (no file of its own).
    assert (job_dir / "started.0").read_text().startswith("host=")
    # While a subjob runs (or after it was killed) its status file says "running"
    # and is only a start: combine() must not take it for an end.
    assert timing.combine({"status": {0: 10.0}}, {0: False})[0] == timing.SubjobTimes(start=10.0, end=None)
    assert timing.parse_times("started.2 5.5\nstatus.2 7.25\nstatus.x 1\nrunscript 1.0\ngarbage\n") == {
        "started": {2: 5.5}, "status": {2: 7.25}, "runscript": {0: 1.0}}


def api_session() -> Any:
    from reproman.resources.shell import ShellSession

    return ShellSession()


def test_report_of_a_running_job(workdir: Path) -> None:
    """Made while subjobs run: they are drawn up to now, and nothing is waited for."""
    from reproman.report.collect import collect
    from reproman.report.render import timeline_figure

    result = _run(command="sleep {p[t]}", batch_parameters=["t=0,30"])
    job = result.job
    try:
        deadline = time.monotonic() + 20
        while True:
            data = collect(Registry().load(job.jobid))
            if data.counts()["running"] == 1 and data.counts()["succeeded"] == 1:
                break
            assert time.monotonic() < deadline, data.counts()
            time.sleep(0.2)
        running = next(t for t in timeline_figure(data)["data"] if t["name"] == "running")
        assert running["y"] == [1] and running["x"][0] > 0
        out = workdir / "running.html"
        assert _report(job.jobid, out).returncode == 0
        assert "1 running" in out.read_text(encoding="utf-8")
    finally:
        api.jobs(queries=[job.jobid], action="cancel")


def test_report_falls_back_to_the_fetched_copy(failed_batch: RunResult, workdir: Path) -> None:
    """The resource no longer has the job directory (a cleaned scratch space)."""
    shutil.rmtree(failed_batch.job.job_dir)
    out = workdir / "r.html"
    result = _report(failed_batch.job.jobid, out, "--json")
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert written["counts"]["failed"] == 1 and written["counts"]["succeeded"] == 7
    assert "fetched copy" in written["source"]
    text = out.read_text(encoding="utf-8")
    assert "The resource could not be asked" in text and "<td>x=e</td>" in text


def _record_usage(jobid: str, reason: FailureReason | None = None) -> None:
    """Store usage in the job record's outcomes, as core does when a scheduler's accounting answers
    (the local shell keeps no accounting); with ``reason``, also what a scheduler said of subjob 4."""
    registry = Registry()
    job = registry.load(jobid)
    outcome.record_usage(job, {i: Usage(node="n1", elapsed=2.0 + i, cpu_time=1.5, max_rss=50 * 1024**2)
                               for i in range(8)})
    if reason is not None:
        old = outcome.recorded(job, 4)
        assert old is not None
        job.subjobs[4].outcome = attrs.evolve(old, reason=reason, detail="said by the scheduler").to_dict()
    job.usage_available = True
    registry.save(job)


def test_usage_from_the_record(failed_batch: RunResult, workdir: Path) -> None:
    _record_usage(failed_batch.job.jobid)
    out = workdir / "u.html"
    assert _report(failed_batch.job.jobid, out).returncode == 0
    text = out.read_text(encoding="utf-8")
    assert "Unavailable (" not in text
    # The subjob that traced the node's environment is left out of the totals, and said so.
    from reproman.jobs.environment import tracing_subjobs
    from reproman.report.render import _figure_value

    traced = tracing_subjobs(Registry().load(failed_batch.job.jobid).environment)
    assert "8 of 8 subjobs have accounting figures" in text
    assert f"total CPU time: {_figure_value('cpu_s', 1.5 * (8 - len(traced)))};" in text, traced
    assert ("left out of the totals" in text) == bool(traced)
    assert "largest peak RSS: 50.0 MiB" in text and "nodes: n1" in text


def test_fetched_job_keeps_reasons_and_usage_offline(failed_batch: RunResult, workdir: Path) -> None:
    """The resource no longer has the job: reasons and usage come from the record, nothing is asked."""
    _record_usage(failed_batch.job.jobid, FailureReason.WALLTIME)
    shutil.rmtree(failed_batch.job.job_dir)
    out = workdir / "offline.html"
    result = _report(failed_batch.job.jobid, out, "--json")
    assert result.returncode == 0, result.stderr
    assert "fetched copy" in json.loads(result.stdout)["source"]
    text = out.read_text(encoding="utf-8")
    failures = text[text.index("<h2>Failures</h2>"):text.index("<h2>Resource usage</h2>")]
    assert "<td>4</td><td>walltime exceeded</td><td>3</td><td>said by the scheduler</td>" in failures
    assert "8 of 8 subjobs have accounting figures" in text and "nodes: n1" in text


def test_text_from_the_job_is_escaped(workdir: Path) -> None:
    result = _run(command="echo '</script><script>alert(1)</script>' && exit 4", follow=True)
    out = workdir / "e.html"
    assert _report(result.job.jobid, out).returncode == 0
    text = out.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in text
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in text


def test_existing_files_are_not_replaced(failed_batch: RunResult, workdir: Path) -> None:
    precious = workdir / "results.csv"
    precious.write_text("a,b\n1,2\n")
    result = _report(failed_batch.job.jobid, precious)
    assert result.returncode == 2
    assert "not a ReproMan report" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert precious.read_text() == "a,b\n1,2\n"
    # An earlier report is replaced, atomically (no temporary file left behind).
    out = workdir / "again.html"
    assert _report(failed_batch.job.jobid, out).returncode == 0
    first = out.stat().st_mtime_ns
    assert _report(failed_batch.job.jobid, out).returncode == 0
    assert out.stat().st_mtime_ns >= first
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith(".again")) == []


def test_default_path_and_usage_errors(failed_batch: RunResult, workdir: Path) -> None:
    jobid = failed_batch.job.jobid
    result = run_cli(["jobs", "--report", jobid[-6:]])
    assert result.returncode == 0, result.stderr
    assert (workdir / f"reproman-report-{jobid}.html").is_file()
    for args in (["jobs", "--report"], ["jobs", "--report", jobid, jobid], ["jobs", jobid, "-o", "x.html"],
                 ["jobs", "--report", "nosuchjob"], ["jobs", "--report", jobid, "-o", str(workdir / "no" / "x.html")]):
        bad = run_cli(args)
        assert bad.returncode != 0, args
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr, bad.stderr


def test_without_plotly_one_line_says_what_to_install(failed_batch: RunResult, workdir: Path) -> None:
    code = ("import sys; sys.modules['plotly'] = None; sys.modules['plotly.io'] = None; "
            "from reproman.cli.main import main; sys.exit(main(sys.argv[1:]))")
    import subprocess

    result = subprocess.run([sys.executable, "-c", code, "jobs", "--report", failed_batch.job.jobid],
                            capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "reproman-core[report]" in result.stderr
    assert not list(workdir.glob("reproman-report-*"))


def test_other_commands_never_import_the_report() -> None:
    import subprocess

    code = ("import sys; from reproman.cli.main import main; main(['jobs', '--json']); "
            "print(sorted(m for m in sys.modules if m.startswith(('plotly', 'reproman.report'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_cancelled_and_lost_are_drawn_apart_from_failed(failed_batch: RunResult) -> None:
    """A cancelled and a lost subjob get their own colour and legend entry, and their own badge count."""
    from reproman.report.collect import collect
    from reproman.report.render import COLOURS, timeline_figure

    data = collect(Registry().load(failed_batch.job.jobid))
    rows = list(data.subjobs)
    rows[0] = attrs.evolve(rows[0], state="failed", reason="cancelled")
    rows[1] = attrs.evolve(rows[1], state="failed", reason=FailureReason.LOST.value)
    data = attrs.evolve(data, subjobs=tuple(rows))
    bars = {t["name"]: t for t in timeline_figure(data)["data"] if t["type"] == "bar"}
    assert bars["cancelled"]["y"] == [0] and bars["lost"]["y"] == [1] and bars["failed"]["y"] == [4]
    assert len({bars[n]["marker"]["color"] for n in ("cancelled", "lost", "failed")}) == 3
    assert COLOURS["cancelled"] != COLOURS["failed"]
    assert {k: v for k, v in data.counts().items() if v} == {"succeeded": 5, "failed": 1, "cancelled": 1, "lost": 1}
