"""Registration: the four orchestrators, found through the hook, cheap to list."""

from __future__ import annotations

import subprocess
import sys

from datalad_testlib import ORCHESTRATORS

from reproman.jobs.contracts import Orchestrator


def test_orchestrators_are_registered_by_this_distribution() -> None:
    from reproman.plugins.manager import get_plugin_manager

    manager = get_plugin_manager()
    for name in ORCHESTRATORS:
        record = manager.orchestrator(name)
        assert record.distribution == "reproman-orchestrators-datalad"
        assert record.description
        cls = record.load()
        assert issubclass(cls, Orchestrator) and cls.name == name


def test_listing_imports_neither_datalad_nor_the_implementations() -> None:
    code = (
        "import sys\n"
        "from reproman.plugins.manager import get_plugin_manager\n"
        "m = get_plugin_manager()\n"
        "[m.orchestrator(n) for n in ('datalad-pair', 'datalad-local-run')]\n"
        "bad = [k for k in sys.modules if k == 'datalad' or k.startswith('datalad.') "
        "or k.startswith('reproman_orchestrators_datalad.pair')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_implementations_do_not_import_datalad() -> None:
    """DataLad runs as a command (here and on the resource); importing it would cost ~1 s per CLI call."""
    code = (
        "import sys\n"
        "import reproman_orchestrators_datalad.pair, reproman_orchestrators_datalad.no_remote\n"
        "import reproman_orchestrators_datalad.local_run\n"
        "print([k for k in sys.modules if k == 'datalad' or k.startswith('datalad.')])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
