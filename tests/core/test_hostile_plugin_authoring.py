"""Plugin authors' mistakes (trial D): a broken plugin is reported and skipped, everything else keeps working.

Each test installs a small plugin distribution (dist-info + hook module on
PYTHONPATH) and runs the real CLI as a user would, without
REPROMAN_PLUGINS_STRICT (which turns every such problem into an error, for
ReproMan's own tests).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from textwrap import dedent

import pytest

from reproman.testing.cli import run_cli

HEAD = """
import os, signal, subprocess
from reproman.plugins import hookimpl
from reproman.plugins.records import ResourceType, SubmitterType
"""


def install(tmp_path: Path, body: str, name: str = "trial") -> dict[str, str]:
    """A distribution ``reproman-NAME`` whose entry point registers ``reproman_NAME_hooks``; the env to use it."""
    site = tmp_path / f"site-{name}"
    dist = site / f"reproman_{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: reproman-{name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[reproman]\n{name} = reproman_{name}_hooks\n")
    (site / f"reproman_{name}_hooks.py").write_text(HEAD + dedent(body))
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "REPROMAN_PLUGINS_STRICT": ""}


def plugins_rows(env: dict[str, str]) -> list[dict]:
    result = run_cli(["plugins", "--json"], env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def check(env: dict[str, str]) -> tuple[int, list[str], str]:
    result = run_cli(["plugins", "--check"], env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr.splitlines(), result.stdout


BASELINE: dict[str, int] = {}


def baseline_components() -> int:
    if not BASELINE:
        rows = json.loads(run_cli(["plugins", "--check", "--json"]).stdout)
        BASELINE["n"] = len([r for r in rows if r["kind"] != "plugin" and r["name"]])
    return BASELINE["n"]


@pytest.mark.parametrize("returned", ["{'name': 'x'}", "['not a record']", "[ResourceType(name='r', description='d', "
                                      "factory='reproman.resources.shell:ShellResource')]"])
def test_wrong_return_type_is_reported_and_skipped(workdir: Path, tmp_path: Path, returned: str) -> None:
    env = install(tmp_path, f"""
        @hookimpl
        def reproman_submitters():
            return {returned}
        """)
    ran = run_cli(["run", "--follow", "-o", "out", "sh", "-c", "echo ok > out"], cwd=workdir, env=env)
    assert ran.returncode == 0, ran.stderr
    assert (workdir / "out").read_text() == "ok\n"
    assert "plugin 'trial' from reproman-trial 0.1" in ran.stderr and "REPROMAN_PLUGINS_DISABLE=trial" in ran.stderr
    assert "it must return SubmitterType records" in ran.stderr
    (row,) = [r for r in plugins_rows(env) if r["plugin"] == "trial"]
    assert "must return SubmitterType records" in row["error"]
    code, errors, _ = check(env)
    assert code == 1 and any("reproman-trial" in e for e in errors)


def test_duplicate_component_name_skips_the_plugin_one(workdir: Path, tmp_path: Path) -> None:
    env = install(tmp_path, """
        from reproman.jobs.local import LocalSubmitter

        class Mine(LocalSubmitter):
            name = "mine"

        @hookimpl
        def reproman_submitters():
            return [SubmitterType(name="local", description="mine", factory="reproman.jobs.local:LocalSubmitter"),
                    SubmitterType(name="mine", description="fine", factory="reproman_trial_hooks:Mine")]
        """)
    for submitter in ("local", "mine"):
        ran = run_cli(["run", "--submitter", submitter, "true"], cwd=workdir, env=env)
        assert ran.returncode == 0, ran.stderr
        assert "submitter 'local' is already offered by reproman-core" in ran.stderr
    code, errors, summary = check(env)
    assert code == 1 and len(errors) == 1 and "'local' is already offered" in errors[0]
    assert summary.startswith(f"Checked {baseline_components() + 1} components of ")  # core's local, plus 'mine'
    (row,) = [r for r in plugins_rows(env) if r["plugin"] == "trial"]
    assert row["components"] == {"submitter": ["mine"]} and "already offered" in row["error"]


def test_raising_hook_is_listed_once(tmp_path: Path) -> None:
    env = install(tmp_path, """
        @hookimpl
        def reproman_resource_types():
            raise RuntimeError("boom")
        """)
    rows = [r for r in plugins_rows(env) if r["distribution"] == "reproman-trial"]
    assert len(rows) == 1 and "RuntimeError: boom" in rows[0]["error"]
    table = run_cli(["plugins"], env=env).stdout
    assert table.count("reproman-trial") == 1 and "FAILED" in table


def test_hooks_that_are_never_called_are_flagged(tmp_path: Path) -> None:
    env = install(tmp_path, """
        @hookimpl
        def reproman_submitter():
            return []

        def reproman_resource_types():
            return []
        """)
    code, errors, _ = check(env)
    assert code == 1
    text = "\n".join(errors)
    assert "reproman_submitter is not a ReproMan hook, so it is never called (did you mean reproman_submitters?)" in text
    assert "reproman_resource_types lacks the @hookimpl decorator" in text
    assert "offers no components" in text


def test_submitter_missing_required_methods_is_flagged(tmp_path: Path) -> None:
    env = install(tmp_path, """
        from reproman.plugins import Submitter

        class Half(Submitter):
            name = "half"
            def submission_script(self, job):
                return ""

        @hookimpl
        def reproman_submitters():
            return [SubmitterType(name="half", description="no submit, no cancel", factory="reproman_trial_hooks:Half")]
        """)
    code, errors, _ = check(env)
    assert code == 1
    assert any("submitter 'half'" in e and "does not implement cancel, submit" in e for e in errors), errors


def test_disabling_an_unknown_plugin_warns(tmp_path: Path) -> None:
    result = run_cli(["run", "--list"], env={"REPROMAN_PLUGINS_DISABLE": "backend_dockr", "REPROMAN_PLUGINS_STRICT": ""})
    assert result.returncode == 0
    assert "REPROMAN_PLUGINS_DISABLE names no installed plugin: backend-dockr" in result.stderr


def test_resource_whose_connect_raises(tmp_path: Path) -> None:
    env = install(tmp_path, """
        from reproman.resources.shell import ShellResource

        class Broken(ShellResource):
            def connect(self):
                raise RuntimeError("connect exploded")

        @hookimpl
        def reproman_resource_types():
            return [ResourceType(name="broken", description="connect raises", factory="reproman_trial_hooks:Broken")]
        """)
    assert run_cli(["create", "box", "-t", "shell"], env=env).returncode == 0
    assert run_cli(["create", "tb5", "-t", "broken"], env=env).returncode == 0, "create does not connect"
    listed = run_cli(["ls", "--refresh", "--json"], env=env)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    status = {r["name"]: r["status"] for r in json.loads(listed.stdout)}
    assert status["tb5"] == "CONNECTION ERROR" and status["box"] == "ONLINE" and status["local"] == "ONLINE"
    refused = run_cli(["delete", "-y", "tb5"], env=env)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "--force" in refused.stderr
    forced = run_cli(["delete", "-y", "-f", "tb5"], env=env)
    assert forced.returncode == 0, forced.stderr
    assert "tb5" not in run_cli(["ls"], env=env).stdout


def test_cancelled_marker_wins_over_a_submitter_that_sees_nothing(workdir: Path, tmp_path: Path) -> None:
    """A submitter without scheduler_states whose cancel leaves the status files saying "running"."""
    env = install(tmp_path, """
        from reproman.plugins import Submitter

        class Blind(Submitter):
            name = "blind"
            def submission_script(self, job):
                return "for i in $(seq 0 %d); do sh runscript $i & done; wait\\n" % (job.n_subjobs - 1)
            def submit(self, job, script_path):
                proc = subprocess.Popen(["sh", script_path], cwd=job.job_dir, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                return str(proc.pid)
            def cancel(self, job):
                os.killpg(int(job.submission_id), signal.SIGKILL)  # no trap runs: no final status line

        @hookimpl
        def reproman_submitters():
            return [SubmitterType(name="blind", description="no scheduler_states", factory="reproman_trial_hooks:Blind")]
        """)
    ran = run_cli(["run", "--submitter", "blind", "--bp", "i=1,2,3", "sleep", "60"], cwd=workdir, env=env)
    assert ran.returncode == 0, ran.stderr
    jobid = ran.stdout.split()[0]
    deadline = time.monotonic() + 30
    while "3 running" not in run_cli(["jobs", "--status", jobid], cwd=workdir, env=env).stdout:
        assert time.monotonic() < deadline, "the subjobs never started"
        time.sleep(0.2)
    assert run_cli(["jobs", "--cancel", jobid], cwd=workdir, env=env).returncode == 0
    status = run_cli(["jobs", "--status", jobid], cwd=workdir, env=env)
    assert "3 cancelled" in status.stdout, status.stdout
    deleted = run_cli(["jobs", "--delete", jobid], cwd=workdir, env=env)
    assert deleted.returncode == 0, deleted.stderr
