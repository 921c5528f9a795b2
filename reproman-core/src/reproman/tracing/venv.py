"""Python virtual environments (``python -m venv`` and ``virtualenv``).

A file belongs to a virtualenv when an ancestor directory holds
``pyvenv.cfg``. The whole environment is recorded (every package installed
in it, like the old ReproMan), because ``install`` rebuilds the
environment, not only the files one run happened to open. Field names are
the old tool's::

    name: venv
    path: /usr/bin/virtualenv        # the virtualenv tool, when there is one
    venv_version: 20.24.5
    environments:
      - path: /home/me/env
        python_version: 3.11.7
        packages:
          - {name: six, version: 1.16.0, local: true, location: .../site-packages,
             editable: false, files: [lib/python3.11/site-packages/six.py]}

``local`` keeps its old meaning: installed in the environment itself (not
inherited through ``--system-site-packages``; such packages are left to the
``pip`` tracer). ``system_site_packages: true`` is written only for
environments created with that option, so ``install`` can recreate them.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reproman.errors import TracingError
from reproman.tracing.pip import (
    _find_python,
    compare_environments,
    pip_install,
    pip_requirements,
    prune,
    satisfies_environments,
    trace_site_packages,
)
from reproman.tracing.tracer import Comparison, Tracer, TraceResult

if TYPE_CHECKING:
    from reproman.resources.session import Session

lgr = logging.getLogger(__name__)


class VenvTracer(Tracer):
    """Packages of virtualenvs, read from the environments' own ``*.dist-info``."""

    spec_name = "venv"

    def identify(self, paths: Sequence[str]) -> TraceResult:
        answer = trace_site_packages(self.session, "venv", paths)
        envs = answer["environments"]
        if not envs:
            return TraceResult()
        tool = answer.get("tool") or {}
        entry = prune({
            "name": self.spec_name,
            "path": tool.get("path"),
            "venv_version": tool.get("venv_version"),
            "environments": envs,
        })
        return TraceResult(distributions=[entry], claimed=frozenset(answer["claimed"]))

    @classmethod
    def compare(cls, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
        return compare_environments(cls.spec_name, left, right)

    @classmethod
    def satisfies(cls, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
        return satisfies_environments(cls.spec_name, requirement, candidate)

    @classmethod
    def install(cls, session: Session, entry: Mapping[str, Any]) -> None:
        """Recreate each environment at its recorded path and pin its packages.

        The environment is created with ``pythonX.Y -m venv`` (the recorded
        Python's major.minor; a different micro version is accepted with a
        warning, since wheels are ABI-compatible within a minor series). An
        existing environment at the path is reused, not wiped. Packages go in
        with ``pip install name==version``; editable packages are skipped with a
        warning. Packages pip cannot find make the call fail at the end,
        after everything else is installed.
        """
        failures: list[str] = []
        for env in entry.get("environments") or []:
            path = env.get("path")
            if not path:
                raise TracingError("a venv environment without 'path' cannot be installed")
            where = f"venv {path}"
            full = str(env.get("python_version") or "")
            minor = ".".join(full.split(".")[:2]) if full else None
            python = posixpath.join(path, "bin", "python")
            if not session.exists(posixpath.join(path, "pyvenv.cfg")):
                base = _find_python(session, None, minor)
                cmd = [base, "-m", "venv"]
                if env.get("system_site_packages"):
                    cmd.append("--system-site-packages")
                lgr.info("%s: creating with %s", where, base)
                session.execute_command([*cmd, path], check=True)
            have = session.execute_command(
                [python, "-c", "import platform; print(platform.python_version())"], check=True
            ).stdout.strip()
            if full and have != full:
                if minor and not have.startswith(minor + "."):
                    raise TracingError(f"{where} runs Python {have}, but {full} was recorded",
                                       hint=f"Install python{minor} on the resource, or remove {path}.")
                lgr.warning("%s: Python %s instead of the recorded %s", where, have, full)
            failures += pip_install(session, python, pip_requirements(_own_packages(env, where), where), where)
        if failures:
            raise TracingError(f"venv install could not install: {', '.join(failures)}",
                               hint="Install these from their sources; everything else is in place.")


def _own_packages(env: Mapping[str, Any], where: str) -> list[Mapping[str, Any]]:
    """The packages installed in the environment itself.

    The old writer dropped false values, so a package without ``local`` was
    inherited from the system site-packages, and the old installer skipped
    it; we do the same. A hand-written spec with no ``local`` anywhere means
    "all of these".
    """
    packages = list(env.get("packages") or [])
    if not any("local" in p for p in packages):
        return packages
    own = []
    for pkg in packages:
        if pkg.get("local"):
            own.append(pkg)
        else:
            lgr.warning("%s: skipping %s, inherited from the system site-packages", where, pkg.get("name"))
    return own
