"""The Python API (issue 13, case 6): bad arguments are UsageErrors, the API's own objects work."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.errors import ReproManError, UsageError
from reproman.resources.inventory import inventory_path

#: Wrong arguments for every API function, one call each.
BAD_CALLS: list[tuple[str, Callable[[], Any]]] = [
    ("create-no-type", lambda: api.create("x", None, [])),  # type: ignore[arg-type]
    ("create-no-name", lambda: api.create(None, "shell", [])),  # type: ignore[arg-type]
    ("create-params-int", lambda: api.create("x", "shell", 5)),  # type: ignore[arg-type]
    ("create-params-items", lambda: api.create("x", "shell", [1])),  # type: ignore[list-item]
    ("delete-none", lambda: api.delete(None)),  # type: ignore[arg-type]
    ("delete-resref-type", lambda: api.delete("x", resref_type="path")),
    ("delete-force-text", lambda: api.delete("x", force="yes")),  # type: ignore[arg-type]
    ("start-int", lambda: api.start(5)),  # type: ignore[arg-type]
    ("stop-list", lambda: api.stop(["x"])),  # type: ignore[arg-type]
    ("login-none", lambda: api.login(None)),  # type: ignore[arg-type]
    ("execute-args-text", lambda: api.execute("true", "abc")),  # type: ignore[arg-type]
    ("execute-command-list", lambda: api.execute(["true"])),  # type: ignore[arg-type]
    ("ls-int", lambda: api.ls(resrefs=3)),  # type: ignore[arg-type]
    ("backend-parameters", lambda: api.backend_parameters([None])),  # type: ignore[list-item]
    ("run-command-int", lambda: api.run(command=5)),  # type: ignore[arg-type]
    ("run-bp-int-key", lambda: api.run(command="true", batch_parameters={1: "a"})),  # type: ignore[dict-item]
    ("run-jp-int", lambda: api.run(command="true", job_parameters=7)),  # type: ignore[arg-type]
    ("run-inputs-dict", lambda: api.run(command="true", inputs={"a": 1})),  # type: ignore[arg-type]
    ("run-follow", lambda: api.run(command="true", follow="later")),
    ("run-batch-spec", lambda: api.run(command="true", batch_spec=5)),  # type: ignore[arg-type]
    ("jobs-int", lambda: api.jobs(queries=5)),  # type: ignore[arg-type]
    ("jobs-action", lambda: api.jobs(action="explode")),
    ("jobs-all-text", lambda: api.jobs(all_="yes")),  # type: ignore[arg-type]
    ("retrace-path-int", lambda: api.retrace(path=[1])),  # type: ignore[list-item]
    ("retrace-resref-int", lambda: api.retrace(path=["/bin/sh"], resref=5)),
    ("diff-none", lambda: api.diff(None, None)),  # type: ignore[arg-type]
    ("diff-satisfies", lambda: api.diff("a", "b", satisfies="yes")),  # type: ignore[arg-type]
    ("install-empty", lambda: api.install("local", [])),
    ("rerun-int", lambda: api.rerun(5)),  # type: ignore[arg-type]
    ("rerun-failed-text", lambda: api.rerun("job", failed="yes")),  # type: ignore[arg-type]
    ("install-int", lambda: api.install("local", 5)),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("call", [c for _, c in BAD_CALLS], ids=[n for n, _ in BAD_CALLS])
def test_bad_arguments_are_usage_errors(call: Callable[[], Any], workdir: Path) -> None:
    with pytest.raises(UsageError, match="argument|follow|action|no command|needs"):
        call()
    assert not inventory_path().exists()


def test_every_api_function_has_a_bad_call() -> None:
    names = {name.split("-")[0].replace("backend", "backend_parameters") for name, _ in BAD_CALLS}
    assert set(api.__all__) - {"plugins"} <= names, set(api.__all__) - names


def test_api_objects_are_accepted_back(workdir: Path) -> None:
    spec = api.retrace(path=["/bin/sh"])
    assert api.diff(spec, spec).equal
    assert api.diff(spec, spec, satisfies=True).equal
    spec_file = workdir / "env.yml"
    spec.write(spec_file)
    assert api.diff(spec, str(spec_file)).equal and api.diff(spec_file, spec).equal

    box = api.create("box", "shell", [])
    assert api.execute("sh", ["-c", "exit 3"], resref=box).returncode == 3
    assert api.ls(resrefs=["box"])[0]["name"] == "box"
    result = api.run(command=["sh", "-c", "echo {p[a]} > out-{p[a]}"], batch_parameters={"a": 5},
                     outputs=["out-{p[a]}"], follow=True)
    assert (workdir / "out-5").read_text() == "5\n"
    shown = api.jobs(queries=result, action="show")
    assert [row["jobid"] for row in shown] == [result.job.jobid]
    assert api.jobs(queries=[result.job, shown[0]], action="list")[0]["jobid"] == result.job.jobid
    assert api.delete(box, skip_confirmation=True) == "box"


def test_no_api_function_leaks_a_non_reproman_error_for_none_arguments(workdir: Path) -> None:
    for name in api.__all__:
        func = getattr(api, name)
        params = [p for p in inspect.signature(func).parameters.values() if p.default is inspect.Parameter.empty]
        if not params:
            continue
        try:
            func(*[None] * len(params))
        except ReproManError:
            pass
