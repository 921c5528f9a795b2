"""Fuzz job parameter values through every submitter's script (issue 13, case 3).

Whatever the values of the job parameters that reach directives (and the
job directory), a submitter either refuses them with a
:class:`~reproman.errors.SubmissionError` (or ``ConfigError``, or ``UsageError`` for a value that is no
number or size) before
writing, or writes a script whose lines are exactly those of the same job
with harmless values: a value can change what a directive says, never add
a line the batch shell would run.
"""

from __future__ import annotations

import os
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reproman.errors import ConfigError, SubmissionError, UsageError
from reproman.jobs.spec import JobSpec, Subjob
from reproman.resources.shell import ShellSession
from reproman_submitters.condor import CondorSubmitter
from reproman_submitters.lsf import LSFSubmitter
from reproman_submitters.pbs import PBSSubmitter
from reproman_submitters.sge import SGESubmitter
from reproman_submitters.slurm import SlurmSubmitter

SCALE = float(os.environ.get("REPROMAN_FUZZ_SCALE", "1"))
SUBMITTERS = [SlurmSubmitter, PBSSubmitter, CondorSubmitter, LSFSubmitter, SGESubmitter]

TEXT = st.text(alphabet=st.sampled_from(string.printable + "\x00\x1b\x85\u2028\u2029\u00e9#$\"'`\\;&|"), max_size=30)
VALUES: dict[str, Any] = {
    "queue": TEXT, "account": TEXT, "qos": TEXT, "memory": st.one_of(TEXT, st.sampled_from(["4G", "500M", "1.5T"])),
    "walltime": st.one_of(TEXT, st.sampled_from(["01:00:00", "2-00:00:00", "90"])),
    "num_processes": st.integers(-3, 10**6), "num_nodes": st.integers(-3, 100), "gpus": st.integers(-1, 8),
    "throttle": st.integers(-1, 50), "launcher": st.booleans(),
    "directives": st.lists(st.one_of(TEXT, TEXT.map(lambda t: "--" + t), TEXT.map(lambda t: "x = " + t)), max_size=3),
}


def _job(name: str, parameters: dict[str, Any], root: str) -> JobSpec:
    return JobSpec(jobid="20260101-000000-abcdef", command="true", resource_name="local", resource_type="shell",
                   submitter=name, orchestrator="plain", parameters=parameters,
                   subjobs=[Subjob(command="true"), Subjob(command="false")], root_directory=root,
                   working_directory=f"{root}/w", job_dir=f"{root}/.reproman/jobs/local/20260101-000000-abcdef")


def _shape(script: str, directive_prefix: str | None) -> list[str]:
    """The script with each directive's content blanked: what a value must not change."""
    shape = []
    for line in script.split("\n"):
        if directive_prefix and line.startswith(directive_prefix + " "):
            shape.append(directive_prefix)
        elif directive_prefix is None and " = " in line:
            shape.append(line.split(" = ", 1)[0].strip() if not line.startswith("#") else "#")
        elif line.startswith("# "):
            shape.append("#")
        else:
            shape.append(line)
    return shape


PREFIX = {"slurm": "#SBATCH", "pbs": "#PBS", "lsf": "#BSUB", "condor": None, "sge": "#$"}


@pytest.mark.parametrize("cls", SUBMITTERS, ids=lambda c: c.name)
def test_fuzz_parameter_values_cannot_add_lines(cls: Any) -> None:
    sub = cls(ShellSession())
    keys = sorted(cls.supported & set(VALUES))

    @settings(max_examples=max(1, int(100 * SCALE)), deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(params=st.fixed_dictionaries({}, optional={k: VALUES[k] for k in keys}),
           root=st.one_of(st.just("/tmp/run root"), TEXT.map(lambda t: "/tmp/" + t)))
    def check(params: dict[str, Any], root: str) -> None:
        try:
            script = sub.submission_script(_job(cls.name, params, root))
        except (SubmissionError, ConfigError, UsageError):
            return
        benign = {k: v for k, v in params.items() if k != "directives"}
        for key in ("queue", "account", "qos"):
            if benign.get(key):  # an empty one stays empty: "no queue" (SGE's launcher asks qstat about a named one)
                benign[key] = "q"
        for key in ("memory", "walltime"):
            if key in benign:
                benign[key] = {"memory": "1G", "walltime": "01:00:00"}[key]
        if "directives" in params:
            harmless = "x = 1" if cls is CondorSubmitter else "--x"
            benign["directives"] = [harmless if d.strip() else d for d in params["directives"]]
        reference = sub.submission_script(_job(cls.name, benign, root))
        assert _shape(script, PREFIX[cls.name]) == _shape(reference, PREFIX[cls.name]), script

    check()
