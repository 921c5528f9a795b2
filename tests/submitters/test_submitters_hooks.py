"""Registration: records are cheap, names are right, job_parameters match what each module honours."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reproman.jobs.parameters import JOB_PARAMETERS
from reproman.plugins.manager import get_plugin_manager
from reproman.plugins.records import load_object
from reproman_submitters import hooks
from reproman_submitters.common import chunk_offsets, chunks, memory_mb, walltime_seconds

NAMES = ("slurm", "pbs", "condor", "lsf", "sge")


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_consistent(name):
    record = get_plugin_manager().submitter(name)
    assert record.distribution == "reproman-submitters"
    cls = record.load()
    assert cls.name == name
    assert set(record.job_parameters) == set(cls.supported)
    assert set(record.job_parameters) <= {p.name for p in JOB_PARAMETERS}


def test_hooks_import_no_scheduler_module():
    code = ("import sys, reproman_submitters.hooks as h; h.reproman_submitters(); "
            "print(sorted(m for m in sys.modules if m.startswith('reproman_submitters.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['reproman_submitters.hooks']"


def test_factories_resolve():
    for record in hooks.reproman_submitters():
        assert load_object(record.factory).name == record.name


def test_chunks_are_recomputable():
    assert chunks(5, None) == [(0, 5)]
    assert chunks(1500, 1000) == [(0, 750), (750, 750)]
    assert chunks(7, 3) == [(0, 3), (3, 2), (5, 2)]
    for n, size in ((7, 3), (1001, 1000), (500, 7)):
        pieces = chunks(n, size)
        assert all(count <= size for _o, count in pieces)
        assert chunk_offsets(n, len(pieces)) == pieces


def test_units():
    assert memory_mb("4G") == 4096 and memory_mb("500M") == 500 and memory_mb("2GB") == 2048
    assert memory_mb("1.5g") == 1536 and memory_mb("100") == 100
    assert walltime_seconds("1:00:00") == 3600 and walltime_seconds("2-00:00:10") == 172810
    assert walltime_seconds("90") == 90 and walltime_seconds("01:30") == 90
