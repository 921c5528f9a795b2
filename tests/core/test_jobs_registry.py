"""The local job registry: atomic records, malformed files, lookups."""

from __future__ import annotations

import pytest

from reproman import api
from reproman.cli.main import main
from reproman.errors import JobNotFoundError
from reproman.jobs.registry import BrokenRecord, Registry
from reproman.jobs.spec import JobSpec


def _job(jobid: str) -> JobSpec:
    return JobSpec(jobid=jobid, command="true", resource_name="local", resource_type="shell",
                   submitter="local", orchestrator="plain")


def test_round_trip_and_find() -> None:
    registry = Registry()
    for jobid in ("20240101-000000-aaaaaa", "20240101-000000-bbbbbb", "20240102-000000-aaaacc"):
        registry.save(_job(jobid))
    assert registry.load("20240101-000000-aaaaaa").command == "true"
    assert [e.jobid for e in registry.find(["bbbb"])] == ["20240101-000000-bbbbbb"]
    assert len(registry.find(None, all_=True)) == 3
    with pytest.raises(JobNotFoundError, match="matches several jobs: 20240101-000000-aaaaaa, 20240102-000000-aaaacc"):
        registry.find(["aaaa"])
    with pytest.raises(JobNotFoundError, match="no job matches"):
        registry.find(["zzz"])
    # A full ID wins over substring matches of longer IDs.
    registry.save(_job("20240101-000000-aaaaaa-2"))
    assert [e.jobid for e in registry.find(["20240101-000000-aaaaaa"])] == ["20240101-000000-aaaaaa"]


def test_no_temporary_files_left() -> None:
    registry = Registry()
    registry.save(_job("20240101-000000-aaaaaa"))
    assert [p.name for p in registry.root.iterdir()] == ["20240101-000000-aaaaaa.yaml"]


def test_malformed_record_is_reported_not_fatal(capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry()
    registry.save(_job("20240101-000000-aaaaaa"))
    broken = registry.root / "20240101-000000-broken.yaml"
    broken.write_text("jobid: [unclosed\n")
    (registry.root / "20240101-000000-notajob.yaml").write_text("- just a list\n")
    entries = registry.entries()
    assert [type(e) for e in entries] == [JobSpec, BrokenRecord, BrokenRecord]
    rows = api.jobs()
    assert [r["status"] for r in rows] == ["registered", "malformed", "malformed"]
    assert "malformed YAML" in rows[1]["error"]
    assert main(["jobs"]) == 0
    out, err = capsys.readouterr()
    assert "20240101-000000-aaaaaa" in out and "broken" in err
    # In the words of every other warning (trial I: a lower-case "warning:" stood out).
    assert all(line.startswith("reproman: WARNING: job record ") for line in err.splitlines() if "malformed" in line)
    assert sum("malformed" in line for line in err.splitlines()) == 2, err
    assert broken.exists(), "a malformed record must not be deleted behind the user's back"
    # ...but the user can delete it explicitly.
    assert api.jobs(["broken"], action="delete") == [{"jobid": "20240101-000000-broken", "deleted": True}]
    assert not broken.exists()


def test_actions_need_a_job() -> None:
    from reproman.errors import UsageError

    with pytest.raises(UsageError, match="--all"):
        api.jobs(action="fetch")
    with pytest.raises(UsageError, match="unknown action"):
        api.jobs(action="explode")


def test_hand_written_yaml_record_is_read() -> None:
    registry = Registry()
    registry.root.mkdir(parents=True, exist_ok=True)
    registry.path("20240101-000000-yaml00").write_text(
        "# written by hand\njobid: 20240101-000000-yaml00\ncommand: echo {p[x]}\nresource_name: local\n"
        "resource_type: shell\nsubmitter: local\norchestrator: plain\nsubjobs:\n  - command: echo 1\n    p: {x: 1}\n"
    )
    job = registry.load("20240101-000000-yaml00")
    assert job.subjobs[0].p == {"x": 1} and job.n_subjobs == 1
