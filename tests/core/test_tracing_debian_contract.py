"""The debian tracer against the tracer contract suite, on this machine's real dpkg and APT.

The owned files include rebuilt (binNMU) packages, whose binary version
(bash ``5.2.15-2+b8``) is not their source version (``5.2.15-2``): the
expected versions are read from ``dpkg-query`` here, independently of the
tracer. The install round trip needs a throwaway Debian to install into; it
runs in containers in tests/integration/test_environments.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

from reproman.testing.services import service_missing
from reproman.testing.tracer_contract import TracerContract
from reproman.tracing.debian import DebianTracer

#: Commands whose packages are rebuilt (binNMU) on Debian 12 at the time of writing, and two that are not.
CANDIDATES = ("bash", "bc", "bzip2", "ls", "sed")


def _owner(path: str) -> tuple[str, str, str]:
    """(package, binary version, source version) of ``path``, from dpkg itself."""
    # Merged /usr: dpkg may know /usr/bin/ls as /bin/ls.
    for name in (path, path.removeprefix("/usr")):
        search = subprocess.run(["dpkg-query", "-S", name], capture_output=True, text=True)
        if search.returncode == 0:
            break
    else:
        return "", "", ""
    package = search.stdout.split(":", 1)[0].strip()
    fields = subprocess.run(["dpkg-query", "-W", "-f=${Version}\t${source:Version}", package],
                            capture_output=True, text=True, check=True).stdout
    version, _, source = fields.partition("\t")
    return package, version, source


class TestDebianTracerContract(TracerContract):
    tracer_class = DebianTracer

    @pytest.fixture
    def owned(self) -> dict[str, dict[str, Any]]:
        if shutil.which("dpkg-query") is None or not os.path.exists("/var/lib/dpkg/status"):
            service_missing("needs a Debian system (dpkg)")
        owned: dict[str, dict[str, Any]] = {}
        rebuilt = 0
        for command in CANDIDATES:
            found = shutil.which(command)
            if found is None:
                continue
            path = os.path.realpath(found)
            package, version, source = _owner(path)
            if not package:
                continue
            owned[path] = {"name": package, "version": version, "source_version": source}
            rebuilt += version != source
        if not rebuilt:
            service_missing("no rebuilt (binNMU) package among " + ", ".join(CANDIDATES) + " on this system")
        return owned
