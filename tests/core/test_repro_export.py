"""``reproman jobs --export JOB DIR``: the crate validates as a Process Run Crate (issue 15).

Validated with ``roc-validator`` at the REQUIRED level of the
``process-run-crate-0.5`` profile (and the RO-Crate 1.1 profile it extends).
The validator resolves the RO-Crate JSON-LD context over the network, which
this machine does not have: ``data/ro-crate-1.1-context.jsonld`` is that
document (as shipped in the ``rocrate`` 0.9.0 wheel, CC0), served for its
URL and nothing else; every other request fails as it would offline.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.testing.cli import run_cli
from reproman.testing.services import in_ci

CONTEXT_URL = "https://w3id.org/ro/crate/1.1/context"
CONTEXT_FILE = Path(__file__).parent / "data" / "ro-crate-1.1-context.jsonld"


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        if in_ci():
            pytest.fail(f"{module} is not installed (nox installs it for core's tests)", pytrace=False)
        pytest.skip(f"{module} is not installed")


@pytest.fixture
def validate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    _require("rocrate")
    _require("rocrate_validator")
    import requests
    from urllib3.response import HTTPResponse

    def send(self: Any, request: Any, **_kwargs: Any) -> Any:
        if request.url.rstrip("/") != CONTEXT_URL:
            raise requests.ConnectionError(f"offline: {request.url}")
        raw = HTTPResponse(body=io.BytesIO(CONTEXT_FILE.read_bytes()), headers={"Content-Type": "application/ld+json"},
                           status=200, preload_content=False, request_url=request.url)
        return requests.adapters.HTTPAdapter().build_response(request, raw)

    monkeypatch.setattr(requests.Session, "send", send)
    from rocrate_validator import services
    from rocrate_validator.models import Severity, ValidationSettings

    def run(crate: Path) -> list[str]:
        settings = ValidationSettings(rocrate_uri=str(crate), profile_identifier="process-run-crate-0.5",
                                      requirement_severity=Severity.REQUIRED, cache_path=crate.parent / "http-cache")
        result = services.validate(settings)
        return [f"{i.check.identifier if i.check else '?'}: {i.message}" for i in result.get_issues()]

    yield run


def _graph(crate: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((crate / "ro-crate-metadata.json").read_text())
    return {e["@id"]: e for e in data["@graph"]}


def _ids(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v["@id"] for v in values]


def test_exported_crate_validates_and_describes_the_run(workdir: Path, tmp_path: Path, validate: Any) -> None:
    (workdir / "in").mkdir()
    (workdir / "in" / "a.txt").write_text("input a\n")
    job = api.run(command="mkdir -p out && cat in/a.txt > out/{p[n]}.txt && echo {p[n]} >> out/{p[n]}.txt",
                  batch_parameters=["n=1,2"], inputs=["in/a.txt"], outputs=["out/{p[n]}.txt"], follow=True)
    jobid = job.job.jobid
    crate = tmp_path / "crate"
    result = run_cli(["jobs", "--export", jobid, str(crate)])
    assert result.returncode == 0, result.stderr
    assert validate(crate) == []
    graph = _graph(crate)
    root = graph["./"]
    assert _ids(root["conformsTo"]) == ["https://w3id.org/ro/wfrun/process/0.5"]
    actions = [graph[i] for i in _ids(root["mentions"])]
    assert [a["@type"] for a in actions] == ["CreateAction", "CreateAction"]
    for n, action in zip((1, 2), actions):
        assert graph[_ids(action["instrument"])[0]]["@type"] == "SoftwareApplication"
        assert _ids(action["object"]) == ["in/a.txt"]
        (output,) = _ids(action["result"])
        assert output == f"out/{n}.txt"
        recorded = job.job.checksums[output]
        # checksums are the job's; the content in the crate is the job's
        import hashlib

        assert graph[output]["sha256"] == recorded["sha256"] == hashlib.sha256((crate / output).read_bytes()).hexdigest()
        assert action["actionStatus"] == "http://schema.org/CompletedActionStatus"
        env_names = {graph[i]["name"] for i in _ids(action["environment"])}
        assert {"host", "environment"} <= env_names
    # The environment spec and node facts are attached, about the actions that ran in them.
    (env_id,) = job.job.environment["environments"]
    spec = crate / "environments" / f"{env_id}.yaml"
    assert "distributions:" in spec.read_text()
    assert set(_ids(graph[f"environments/{env_id}.yaml"]["about"])) == {a["@id"] for a in actions}
    # The spec in the crate is usable as it is: diff against itself.
    assert api.diff(str(spec), str(spec)).equal


def test_locally_edited_output_is_described_not_shipped(workdir: Path, tmp_path: Path, validate: Any) -> None:
    job = api.run(command="echo result > r.txt; date +%N > failed.txt; exit 3", outputs=["r.txt", "failed.txt"],
                  follow=True)
    (workdir / "r.txt").write_text("edited by hand\n")
    crate = tmp_path / "crate"
    from reproman.jobs.export import export

    export(job.job.jobid, str(crate))
    assert validate(crate) == []
    graph = _graph(crate)
    assert not (crate / "r.txt").exists()
    described = graph["#output-r.txt"]
    assert "modified locally" in described["description"]
    assert described["sha256"] == job.job.checksums["r.txt"]["sha256"]
    (action,) = [graph[i] for i in _ids(graph["./"]["mentions"])]
    assert action["actionStatus"] == "http://schema.org/FailedActionStatus" and "exit code 3" in action["error"]


def test_export_refuses_a_used_directory_and_unfetched_jobs(workdir: Path, tmp_path: Path) -> None:
    _require("rocrate")
    done = api.run(command="echo a > a.txt", outputs=["a.txt"], follow=True)
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine\n")
    result = run_cli(["jobs", "--export", done.job.jobid, str(used)])
    assert result.returncode == 2 and "is not an empty directory" in result.stderr
    assert (used / "keep.txt").read_text() == "mine\n"
    pending = api.run(command="sleep 30", outputs=[])
    try:
        result = run_cli(["jobs", "--export", pending.job.jobid, str(tmp_path / "new")])
        assert result.returncode == 1 and "has not been fetched" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        api.jobs([pending.job.jobid], action="cancel")


def test_export_into_anything_already_there_is_one_line_usage_error_and_changes_nothing(workdir: Path,
                                                                                     tmp_path: Path) -> None:
    """As ``jobs --report -o`` refuses a file that is there: exit 2, one line saying what to do, nothing written.

    (A link to nothing read "dang: File exists", exit 1, with no word of what to do.)
    """
    _require("rocrate")
    jobid = api.run(command="echo a > a.txt", outputs=["a.txt"], follow=True).job.jobid  # type: ignore[union-attr]
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine\n")
    (tmp_path / "file").write_text("a file\n")
    (tmp_path / "to-full").symlink_to(full)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    for name in ("full", "file", "to-full", "dangling"):
        result = run_cli(["jobs", "--export", jobid, str(tmp_path / name)])
        assert result.returncode == 2, (name, result.returncode, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert (f"{tmp_path / name} exists and is not an empty directory. Name a new directory for the crate."
                in result.stderr), result.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (full / "keep.txt").read_text() == "mine\n" and (tmp_path / "file").read_text() == "a file\n"
    assert os.readlink(tmp_path / "dangling") == str(tmp_path / "nowhere") and not (tmp_path / "nowhere").exists()


def test_a_fetched_job_that_produced_no_output_exports_and_compares(workdir: Path, tmp_path: Path) -> None:
    """Trial J: a fetched job without output files (its subjobs failed or were cancelled first) read as
    'not fetched' for --export and 'fetched before checksums existed' for diff: a loop of fetches."""
    _require("rocrate")
    job = api.run(command="exit 4", outputs=["never.txt"], follow=True).job
    assert job.status == "fetched" and job.checksums == {}
    result = run_cli(["jobs", "--export", job.jobid, str(tmp_path / "crate")])
    assert result.returncode == 0, result.stderr
    compared = run_cli(["diff", job.jobid, job.jobid])
    # Compared, not refused as unfetched: no output on either side is "nothing to compare" (exit 1), never "equal".
    assert compared.returncode == 1 and "nothing to compare" in compared.stderr, compared.stderr
    assert "not fetched" not in compared.stderr and "checksums" not in compared.stderr, compared.stderr


def test_names_that_are_not_utf8_are_carried_byte_exact(workdir: Path, tmp_path: Path, validate: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial K: an input (and output) named with bytes that are not UTF-8 crashed the export in rocrate's
    quote(). The crate names them as URIs do, bytes percent-encoded, and holds the files under their own
    bytes; the readable ``name`` shows each such byte as ``\\xNN``."""
    import hashlib
    import os

    (workdir / "in").mkdir()
    bad = b"in/bad\xff\xfename.txt"
    (workdir / os.fsdecode(bad)).write_bytes(b"\x00\xff input")
    (workdir / "in" / "plain.txt").write_bytes(b"plain\n")
    (workdir / os.fsdecode(b"d\xfd")).mkdir()  # an input directory whose own name and content are not UTF-8
    (workdir / os.fsdecode(b"d\xfd/sub")).mkdir()
    (workdir / os.fsdecode(b"d\xfd/sub/in\xfc.bin")).write_bytes(b"deep\xfc")
    job = api.run(command="sha256sum < {p[f]!q} > {p[f]!q}.sum", batch_parameters=["f=in/*"],
                  inputs=["{p[f]}", os.fsdecode(b"d\xfd")], outputs=["{p[f]}.sum"], follow=True)
    assert job.ok
    crate = tmp_path / "crate"
    result = run_cli(["jobs", "--export", job.job.jobid, str(crate)])
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    # roc-validator looks for a data entity's file under its @id, then under unquote(@id), which decodes the
    # bytes as UTF-8 (U+FFFD for the rest): it misses exactly the files whose names are not UTF-8, and
    # finds nothing else wrong.
    not_utf8 = ["d%FD/", "d%FD/sub/", "d%FD/sub/in%FC.bin", "in/bad%FF%FEname.txt", "in/bad%FF%FEname.txt.sum"]
    assert validate(crate) == [f"ro-crate-1.1_12.1: The RO-Crate does not include the Data Entity '{i}' as part "
                               "of its payload" for i in not_utf8]
    # Decoding the percent-escapes to bytes, as RFC 3986 has them, it finds them all: the crate is valid.
    import urllib.parse

    from rocrate_validator.rocrate import base

    monkeypatch.setattr(base, "unquote", lambda text: urllib.parse.unquote(text, errors="surrogateescape"))
    assert validate(crate) == []
    graph = _graph(crate)
    for name, uri in ((bad, "in/bad%FF%FEname.txt"), (bad + b".sum", "in/bad%FF%FEname.txt.sum")):
        assert graph[uri]["@type"] == "File" and graph[uri]["name"] == name.decode("utf-8", "backslashreplace")
        assert (crate / os.fsdecode(name)).read_bytes() == (workdir / os.fsdecode(name)).read_bytes()
    assert graph["in/bad%FF%FEname.txt.sum"]["sha256"] == hashlib.sha256(
        (crate / os.fsdecode(bad + b".sum")).read_bytes()).hexdigest()
    assert (crate / os.fsdecode(b"d\xfd/sub/in\xfc.bin")).read_bytes() == b"deep\xfc"
    assert graph["d%FD/"]["@type"] == "Dataset"
    assert _ids(graph["d%FD/"]["hasPart"]) == ["d%FD/sub/"]
    assert _ids(graph["d%FD/sub/"]["hasPart"]) == ["d%FD/sub/in%FC.bin"]
    actions = [graph[i] for i in _ids(graph["./"]["mentions"])]
    objects = {o for a in actions for o in _ids(a["object"])}
    assert {"in/bad%FF%FEname.txt", "in/plain.txt", "d%FD/"} <= objects
    assert (crate / "in" / "plain.txt").read_bytes() == b"plain\n"
    # The job record is strict JSON too: a lone surrogate (what json.dumps writes for such a byte) makes
    # strict parsers refuse the whole file. Its names read as the crate's do, \xNN per byte.
    record = json.loads((crate / "reproman-job.json").read_bytes().decode("utf-8"))

    def strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [*value, *(s for v in value.values() for s in strings(v))]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    for text in strings(record):
        text.encode("utf-8")  # raises on a lone surrogate
    assert bad.decode("utf-8", "backslashreplace") + ".sum" in record["checksums"], sorted(record["checksums"])
