"""A YODA-style hierarchy through every DataLad orchestrator on the local shell resource.

Inputs in one subdataset, outputs in another and in one nested two levels
deep: single job, a 20-subjob batch, a failing subjob, ``datalad rerun`` of
each batch commit, ``datalad status`` clean after every step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datalad_testlib import ORCHESTRATORS

from reproman_orchestrators_datalad import testing as yoda


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_yoda_single_batch_failure_and_reruns(yoda_ds: Path, runner: yoda.Runner, orchestrator: str) -> None:
    run = runner(orchestrator)
    yoda.single_job(yoda_ds, run, orchestrator)
    result = yoda.batch(yoda_ds, run, orchestrator)
    if orchestrator.endswith("-run"):
        yoda.rerun(yoda_ds, result)
    failing = yoda.failing_batch(yoda_ds, run, orchestrator)
    if orchestrator.endswith("-run"):
        yoda.rerun(yoda_ds, failing)
    # The dataset (and the pair clone, with the rerun's new subdataset commits) serve the next job.
    again = run("sh code/count.sh inputs/s05.csv outputs/derived/again.txt", inputs=[yoda.CODE, "inputs/s05.csv"],
                outputs=["outputs/derived/again.txt"])
    assert again.status.ok and yoda.rows(yoda_ds / "outputs" / "derived" / "again.txt") == 4
    yoda.assert_clean(yoda_ds)
