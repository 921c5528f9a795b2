"""What the orchestrators need on the resource: probed in one command, refused in one line.

The refusals on a real container without git are in
``tests/integration/test_datalad_resources.py``; here the probe runs on
the local shell resource, and the verdicts are checked on probe outputs a
resource could print.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from datalad_testlib import ORCHESTRATORS, run_job

from reproman.errors import OrchestratorError
from reproman_orchestrators_datalad import requirements
from reproman_orchestrators_datalad.requirements import DATALAD_TOOLS, PLAIN_TOOLS, check, parse, probe_script


def _probe(tools: tuple[requirements.Tool, ...], path: str) -> dict[str, str]:
    out = subprocess.run(["sh", "-c", probe_script(tools)], capture_output=True, text=True,
                         env={"PATH": path}).stdout
    return parse(out)


def test_probe_reads_real_versions(datalad_tools: None) -> None:
    import os

    found = _probe(DATALAD_TOOLS + PLAIN_TOOLS, os.environ["PATH"])
    assert found["git"].startswith("git version ") and found["git-annex"][0].isdigit()
    assert found["datalad"].startswith("datalad ") and found["find"] == found["tar"] == "present"
    check(DATALAD_TOOLS, found, orchestrator="datalad-pair", resource="local")


def test_probe_reports_missing_tools_as_empty(tmp_path: Path) -> None:
    only_sh = tmp_path / "bin"
    only_sh.mkdir()
    (only_sh / "sh").symlink_to("/bin/sh")
    found = _probe(DATALAD_TOOLS, str(only_sh))
    assert found == {"git": "", "git-annex": "", "datalad": ""}


def test_missing_tools_name_all_and_suggest_local_run() -> None:
    with pytest.raises(OrchestratorError) as caught:
        check(DATALAD_TOOLS, {"git": "git version 2.39.5", "git-annex": "", "datalad": ""},
              orchestrator="datalad-pair", resource="box")
    assert caught.value.args[0] == "resource box lacks git-annex and DataLad, which datalad-pair needs there"
    assert "--orchestrator datalad-local-run" in (caught.value.hint or "")


def test_old_versions_are_named_with_the_minimum() -> None:
    with pytest.raises(OrchestratorError, match=r"resource hpc has git-annex 7.20190219 \(needs 8.20200309 or newer\), "
                                                r"which datalad-no-remote needs there"):
        check(DATALAD_TOOLS, {"git": "git version 2.30.2", "git-annex": "7.20190219", "datalad": "datalad 0.18.1"},
              orchestrator="datalad-no-remote", resource="hpc")


def test_local_run_needs_only_find_and_tar() -> None:
    check(PLAIN_TOOLS, {"find": "present", "tar": "present"}, orchestrator="datalad-local-run", resource="box")
    with pytest.raises(OrchestratorError, match="resource box lacks find, which datalad-local-run needs there"):
        check(PLAIN_TOOLS, {"find": "", "tar": "present"}, orchestrator="datalad-local-run", resource="box")


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_missing_tool_refuses_before_anything_is_staged(
    dataset: Path, root: Path, orchestrator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the resource's probe says git-annex and find are missing."""
    from reproman import api

    real = requirements.probe_script
    monkeypatch.setattr(requirements, "probe_script",
                        lambda tools: real(tools).replace("command -v git-annex", "false").replace(
                            "command -v find", "false"))
    with pytest.raises(OrchestratorError, match=f"lacks .*, which {orchestrator} needs there"):
        run_job(root, orchestrator, "true", inputs=["data/f0.csv"])
    assert api.jobs() == [] and not root.exists()
