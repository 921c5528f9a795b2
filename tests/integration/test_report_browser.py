"""The job report in a real browser: a 100-subjob Slurm array with one failing subjob, in headless Chromium.

Needs the real Slurm (tools/ci/slurm.sh), Debian's chromium (tools/ci/chromium.sh)
and the report extra (plotly); under CI a missing one is a failure. Chromium
exits 0 even when a page's JavaScript throws, so its console log (on stderr
with ``--enable-logging=stderr``) is searched for uncaught errors, and the
DOM it dumps after running the scripts must hold the drawn timeline.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from reproman import api
from reproman.jobs.commands import RunResult
from reproman.testing.cli import run_cli
from reproman.testing.services import service_missing

pytest.importorskip("plotly", reason="the report extra (pip install 'reproman-core[report]') is not installed")

FAILED_RGB = "rgb(229, 57, 53)"  # COLOURS["failed"] in reproman.report.render


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        service_missing("chromium is not installed (tools/ci/chromium.sh installs it)")
    assert path is not None
    return path


def browse(chromium: str, page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    """Open ``page`` headless (``--screenshot=PNG`` or ``--dump-dom``); console messages go to stderr."""
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            *mode, page.as_uri()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def script_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Uncaught" in line or re.search(r"CONSOLE.*\bError\b", line)]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_browser_check_sees_script_errors(chromium: str, tmp_path: Path) -> None:
    """The check below must be able to fail: a page whose script throws is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><div id='timeline'></div>"
                    "<script>throw new Error('boom from the page')</script></body></html>")
    result = browse(chromium, page, tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0  # chromium itself does not tell
    assert any("boom from the page" in line for line in script_errors(result.stderr)), result.stderr[-2000:]


def test_report_of_a_slurm_array_renders(workdir: Path, slurm: None, chromium: str, tmp_path: Path) -> None:
    values = ",".join(str(i) for i in range(100))
    # The command carries markup: the page must show it as text, never run it.
    result = api.run(
        command="echo '</script><b>{p[i]}</b>'; [ {p[i]} -ne 42 ] || exit 5",
        submitter="slurm",
        batch_parameters=[f"i={values}"],
        job_parameters={"root_directory": str(tmp_path / "slurm root"), "directives": "--oversubscribe"},
        follow=True,
    )
    assert isinstance(result, RunResult) and result.status is not None
    assert result.status.counts()["succeeded"] == 99
    assert [(f["index"], f["exit_code"]) for f in result.failed] == [(42, 5)]

    report = workdir / "report.html"
    made = run_cli(["jobs", "--report", result.job.jobid, "-o", str(report)])
    assert made.returncode == 0, made.stderr

    shot = tmp_path / "report.png"
    screenshot = browse(chromium, report, tmp_path / "profile-1", f"--screenshot={shot}", "--window-size=1280,1800")
    assert screenshot.returncode == 0, screenshot.stderr[-2000:]
    assert script_errors(screenshot.stderr) == [], screenshot.stderr[-2000:]
    assert png_size(shot) == (1280, 1800) and shot.stat().st_size > 30_000

    dom = browse(chromium, report, tmp_path / "profile-2", "--dump-dom")
    assert script_errors(dom.stderr) == [], dom.stderr[-2000:]
    html = dom.stdout
    # plotly drew into the timeline element: its class, its SVG, one bar per span.
    timeline = re.search(r'<div[^>]*id="timeline"[^>]*>', html)
    assert timeline is not None and "js-plotly-plot" in timeline.group(0)
    assert "main-svg" in html
    assert html.count('class="point"') >= 200  # 100 queued spans + 100 run spans
    assert FAILED_RGB in html
    legend = re.findall(r'class="legendtext"[^>]*>([^<]+)<', html)
    assert legend == ["queued", "succeeded", "failed"]
    # The failure is listed with its parameter; the markup in the command stays text.
    assert "<td>42</td><td>non-zero exit</td><td>5</td>" in html and "<td>i=42</td>" in html
    assert "<b>42</b>" not in html and "&lt;/script&gt;&lt;b&gt;" in html
