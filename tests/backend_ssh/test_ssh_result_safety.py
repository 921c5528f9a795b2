"""The result-safety suite on an ``ssh`` resource (real sshd) with the plain orchestrator.

``batch_outputs = 1000``: a 1,000-subjob batch whose every subjob writes
its own output is fetched over ssh in one transfer (it once failed with
"Argument list too long" at 500).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from reproman import api
from reproman.testing.result_safety import ResultSafetyContract


class TestSSHPlainResults(ResultSafetyContract):
    batch_outputs = 1000

    @pytest.fixture
    def resref(self, ssh_params: dict[str, Any]) -> str:
        name = f"ssh-{uuid.uuid4().hex[:6]}"
        api.create(name, "ssh", {k: str(v) for k, v in ssh_params.items() if v is not None})
        return name
