"""The built-in ``local`` submitter against the submitter contract suite, on this machine."""

from __future__ import annotations

import pytest

from reproman.testing.submitter_contract import SubmitterContract


class TestLocalSubmitterContract(SubmitterContract):
    # local runs num_processes subjobs at once and has no scheduler to split for or launch in.
    supports_throttle = False
    supports_split = False
    supports_launcher = False
    # Its id is the launcher's process id, printed by the shell it starts it from.
    parses_scheduler_output = False
    submission_id_pattern = r"[1-9][0-9]*"
    invalid_parameters = {
        "reproman_contract_no_such_parameter": "1",
        "num_processes": "0",
        "memory": "4G",  # a scheduler directive the local submitter cannot honour
    }
    max_scheduler_commands = 1

    @pytest.fixture
    def submitter(self) -> str:
        return "local"
