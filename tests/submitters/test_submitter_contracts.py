"""Every batch submitter of this package against :class:`reproman.testing.submitter_contract.SubmitterContract`.

Slurm and Grid Engine run for real (tools/ci/slurm.sh, tools/ci/sge.sh).
PBS Pro, Torque, HTCondor and LSF run against the FAKE commands of
:mod:`reproman.testing.fakesched` (none of those schedulers can be installed
here): those classes are checked against the documented command-line
behaviour of ``qsub``/``qstat``/``qdel``, ``condor_submit``/``condor_q``/
``condor_history``/``condor_rm`` and ``bsub``/``bjobs``/``bkill``, not
against a live cluster.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reproman.config import reset_config
from reproman.testing.submitter_contract import SubmitterContract
from reproman_submitters.condor import parse_terse
from reproman_submitters.lsf import parse_bsub_output
from reproman_submitters.pbs import parse_qsub_output
from reproman_submitters.sge import parse_qsub_terse
from reproman_submitters.slurm import parse_sbatch_parsable

#: Values no scheduler directive may carry, refused before a script is written.
BAD_DIRECTIVES = {"queue": "short\n#SBATCH --exclusive", "memory": "lots", "walltime": "soon"}


class TestSlurmContract(SubmitterContract):
    submission_id_pattern = r"\d+(,\d+)*"
    submission_outputs = {"123\n": "123", "4567;cluster-a\n": "4567"}
    bad_submission_outputs = ("", "Submitted batch job 123\n", "123\n124\n", "sbatch: error: Batch job submission failed\n")
    parse_submission_output = staticmethod(parse_sbatch_parsable)
    invalid_parameters = {"reproman_contract_no_such_parameter": "1", "num_processes": "0", **BAD_DIRECTIVES}
    # One task wide: the test node's two CPUs are shared with other tests, and a two-task allocation can wait long.
    launcher_parameters = {"throttle": "1"}

    @pytest.fixture
    def submitter(self, slurm: None) -> str:
        return "slurm"


class TestSGEContract(SubmitterContract):
    submission_id_pattern = r"\d+(,\d+)*"
    submission_outputs = {"123\n": "123", "124.1-5:1\n": "124"}
    bad_submission_outputs = ("", 'Your job 123 ("x") has been submitted\n', "123\n124\n")
    parse_submission_output = staticmethod(parse_qsub_terse)
    invalid_parameters = {"reproman_contract_no_such_parameter": "1", "num_processes": "0", "qos": "high",
                          **BAD_DIRECTIVES}
    # One slot wide: the cell's two slots are shared with other tests.
    launcher_parameters = {"throttle": "1"}

    @pytest.fixture
    def submitter(self, sge: None) -> str:
        return "sge"


class _FakePBS(SubmitterContract):
    submission_id_pattern = r"\d+(\[\])?\.fakeserver(,\d+(\[\])?\.fakeserver)*"
    submission_outputs = {"100[].fakeserver\n": "100[].fakeserver", "101.pbs01.example.org\n": "101.pbs01.example.org"}
    bad_submission_outputs = ("", "qsub: Job rejected by all possible destinations\n", "100.a\n101.b\n")
    parse_submission_output = staticmethod(parse_qsub_output)
    invalid_parameters = {"reproman_contract_no_such_parameter": "1", "num_processes": "0", "qos": "high",
                          **BAD_DIRECTIVES}
    # Without a way to ask the server how wide a node is, a PBS launcher needs throttle.
    launcher_parameters = {"throttle": "2"}


class TestPBSProContract(_FakePBS):
    """PBS Pro / OpenPBS through the fake qsub/qstat/qdel (documented behaviour, not a live server)."""

    @pytest.fixture
    def submitter(self, fake_scheduler: Path) -> str:
        return "pbs"


class TestTorqueContract(_FakePBS):
    """Torque through the fake qsub/qstat/qdel (documented behaviour, not a live server)."""

    @pytest.fixture
    def submitter(self, fake_scheduler: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        monkeypatch.setenv("FAKE_PBS_FLAVOR", "torque")
        monkeypatch.setenv("REPROMAN_SUBMITTER-PBS_FLAVOR", "torque")
        reset_config()
        return "pbs"


class TestCondorContract(SubmitterContract):
    """HTCondor through the fake condor_* tools (documented behaviour, not a live pool).

    One cluster holds any number of procs, and there is no allocation to
    launch in: ``max_array_size`` and ``launcher`` are refused.
    """

    supports_split = False
    supports_launcher = False
    submission_id_pattern = r"\d+"
    submission_outputs = {"7.0 - 7.4\n": "7", "12.0 - 12.0\n": "12"}
    bad_submission_outputs = ("", "7.0 - 8.4\n", "Submitting job(s).\n1 job(s) submitted to cluster 7.\n")
    invalid_parameters = {"reproman_contract_no_such_parameter": "1", "num_processes": "0", "queue": "short",
                          "memory": "lots", "walltime": "soon"}

    @staticmethod
    def parse_submission_output(text: str) -> str:
        return parse_terse(text)[0]

    @pytest.fixture
    def submitter(self, fake_scheduler: Path) -> str:
        return "condor"


class TestLSFContract(SubmitterContract):
    """IBM Spectrum LSF through the fake bsub/bjobs/bkill (documented behaviour, not a live cluster)."""

    submission_id_pattern = r"\d+(,\d+)*"
    submission_outputs = {"Job <123> is submitted to default queue <normal>.\n": "123",
                          "Job <9> is submitted to queue <short>.\n": "9"}
    bad_submission_outputs = ("", "Job not submitted.\n", "Job <1> is submitted to queue <a>.\nJob <2> is submitted "
                              "to queue <a>.\n")
    parse_submission_output = staticmethod(parse_bsub_output)
    invalid_parameters = {"reproman_contract_no_such_parameter": "1", "num_processes": "0", "qos": "high",
                          **BAD_DIRECTIVES}
    launcher_parameters = {"throttle": "2"}

    @pytest.fixture
    def submitter(self, fake_scheduler: Path) -> str:
        return "lsf"
