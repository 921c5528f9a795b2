"""Conda environments, read from the environment's own ``conda-meta`` records.

No ``conda`` executable is needed to trace: the package records
(``conda-meta/<name>-<version>-<build>.json``, with their ``files`` lists)
say which package owns each file, ``conda-meta/history`` and ``.condarc``
name the channels, and pip packages inside the environment are read from
their ``*.dist-info`` like the venv tracer does. One Python process on the
resource answers for every file.

Field names are the old ReproMan's; a distribution is one conda
installation (root prefix), named ``conda`` (``conda-0``, ``conda-1``... when
several are traced)::

    name: conda
    path: /opt/miniconda3
    conda_version: 23.1.0
    python_version: 3.10.9
    platform: linux-64
    environments:
      - name: root                  # or the basename of envs/NAME
        path: /opt/miniconda3
        packages:
          - {name: numpy, version: 1.24.2, build: py310h..., channel_name: conda-forge,
             size: ..., md5: ..., url: ..., files: [lib/python3.10/site-packages/...]}
          - {name: six, installer: pip, version: 1.16.0, location: ..., files: [...]}
        channels:
          - {name: conda-forge, url: https://conda.anaconda.org/conda-forge/linux-64}
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reproman.errors import TracingError
from reproman.tracing.pip import _version_shortfall, normalize_name, prune
from reproman.tracing.pyscripts import run_script
from reproman.tracing.tracer import Comparison, PackageDifference, Tracer, TraceResult

if TYPE_CHECKING:
    from reproman.resources.session import Session

lgr = logging.getLogger(__name__)


def _env_key(env: Mapping[str, Any]) -> str:
    return str(env.get("name") or posixpath.basename(str(env.get("path") or "").rstrip("/")))


def _pkg_key(pkg: Mapping[str, Any]) -> str:
    name = str(pkg.get("name"))
    return f"pip:{normalize_name(name)}" if pkg.get("installer") == "pip" else name


def _envs(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {_env_key(e): e for e in entry.get("environments") or []}


class CondaTracer(Tracer):
    """Conda packages (and pip packages inside conda environments)."""

    spec_name = "conda"

    def identify(self, paths: Sequence[str]) -> TraceResult:
        if not paths:
            return TraceResult()
        answer = run_script(self.session, "condaenv", {"paths": list(paths)})
        roots = answer["roots"]
        if not roots:
            return TraceResult()
        distributions = []
        for i, root in enumerate(roots):
            name = self.spec_name if len(roots) == 1 else f"{self.spec_name}-{i}"
            distributions.append(prune({"name": name, **root}))
        return TraceResult(distributions=distributions, claimed=frozenset(answer["claimed"]))

    @classmethod
    def compare(cls, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
        """Environments are matched by name; packages by name (pip ones as ``pip:name``).

        A package differs when its version or build differs.
        """
        fields: list[PackageDifference] = []
        differences: list[PackageDifference] = []
        for field in ("path", "conda_version", "python_version", "platform"):
            if left.get(field) != right.get(field):
                fields.append(PackageDifference(key=field, left=_s(left.get(field)), right=_s(right.get(field))))
        lenvs, renvs = _envs(left), _envs(right)
        prefix = len(set(lenvs) | set(renvs)) > 1
        for ekey in sorted(set(lenvs) | set(renvs)):
            lenv, renv = lenvs.get(ekey), renvs.get(ekey)
            if lenv is None or renv is None:
                fields.append(PackageDifference(key=f"environment {ekey}",
                                                left=ekey if lenv else None, right=ekey if renv else None))
                continue
            lp = {_pkg_key(p): p for p in lenv.get("packages") or []}
            rp = {_pkg_key(p): p for p in renv.get("packages") or []}
            for key in sorted(set(lp) | set(rp)):
                a, b = lp.get(key), rp.get(key)
                label = f"{ekey}:{key}" if prefix else key
                av = _full_version(a)
                bv = _full_version(b)
                if av != bv:
                    differences.append(PackageDifference(key=label, left=av, right=bv))
            lch = [c.get("name") for c in lenv.get("channels") or []]
            rch = [c.get("name") for c in renv.get("channels") or []]
            if lch != rch:
                fields.append(PackageDifference(key=f"{ekey}: channels", left=", ".join(map(str, lch)),
                                                right=", ".join(map(str, rch))))
        return Comparison(name=str(left.get("name") or cls.spec_name), differences=differences, fields=fields)

    @classmethod
    def satisfies(cls, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
        """Every required package present in the same-named environment with a version >= required.

        Builds are not compared: a different build of the same version is
        the same software for the user (conda itself treats it so when
        solving ``name=version``).
        """
        differences: list[PackageDifference] = []
        fields: list[PackageDifference] = []
        renvs, cenvs = _envs(requirement), _envs(candidate)
        prefix = len(renvs) > 1
        for ekey, req in sorted(renvs.items()):
            cand = cenvs.get(ekey)
            if cand is None:
                fields.append(PackageDifference(key=f"environment {ekey}", left=ekey, right=None, detail="missing"))
                continue
            have = {_pkg_key(p): p for p in cand.get("packages") or []}
            for pkg in req.get("packages") or []:
                key = _pkg_key(pkg)
                diff = _version_shortfall(f"{ekey}:{key}" if prefix else key, pkg.get("version"), have.get(key))
                if diff:
                    differences.append(diff)
        return Comparison(name=str(requirement.get("name") or cls.spec_name), differences=differences, fields=fields)

    @classmethod
    def install(cls, session: Session, entry: Mapping[str, Any]) -> None:
        """Create (or update) each environment with conda from an environment file.

        Needs conda on the resource: the recorded root's ``bin/conda``, or
        ``conda`` on PATH. ReproMan does not download and run a Miniconda
        installer behind the user's back; without conda this is an error
        that says what to install.
        """
        root = entry.get("path")
        candidates = [posixpath.join(str(root), "bin", "conda")] if root else []
        candidates.append("conda")
        probe = session.execute_command(
            "for c in " + " ".join(shlex.quote(c) for c in candidates)
            + '; do command -v "$c" && exit 0; done; exit 1'
        )
        if not probe.ok or not probe.stdout.strip():
            raise TracingError(
                f"cannot install conda environments: no conda on the resource (looked for {', '.join(candidates)})",
                hint=f"Install Miniconda {entry.get('conda_version') or ''} there (at {root or 'any prefix'}) "
                     "and run install again.".replace("  ", " "),
            )
        conda = probe.stdout.strip().splitlines()[0]
        from reproman.yamlio import dump

        for env in entry.get("environments") or []:
            path = env.get("path")
            if not path:
                raise TracingError("a conda environment without 'path' cannot be installed")
            remote = f"/tmp/reproman-conda-{_env_key(env)}-{os.urandom(4).hex()}.yml"
            session.put_text(dump(environment_file(env)), remote)
            verb = "update" if session.isdir(posixpath.join(str(path), "conda-meta")) else "create"
            try:
                lgr.info("conda %s: %s", path, verb)
                session.execute_command([conda, "env", verb, "-p", str(path), "-f", remote], check=True)
            finally:
                session.execute_command(["rm", "-f", remote])


def environment_file(env: Mapping[str, Any]) -> dict[str, Any]:
    """The ``conda env create -f`` document for one traced environment.

    Conda packages are pinned ``name=version=build`` (conda needs the
    version to accept a build); pip packages go under ``pip:`` pinned with
    ``==``; editable ones are left out with a warning.
    """
    deps: list[Any] = []
    pips: list[str] = []
    for pkg in env.get("packages") or []:
        name, version, build = pkg.get("name"), pkg.get("version"), pkg.get("build")
        if pkg.get("installer") == "pip":
            if pkg.get("editable"):
                lgr.warning("conda %s: skipping editable pip package %s", env.get("path"), name)
                continue
            pips.append(f"{name}=={version}" if version else str(name))
        else:
            deps.append(f"{name}={version}={build}" if version and build else (f"{name}={version}" if version else name))
    if pips:
        deps.append({"pip": pips})
    return {
        "name": _env_key(env),
        "channels": [c.get("name") for c in env.get("channels") or [] if c.get("name")],
        "dependencies": deps,
    }


def _full_version(pkg: Mapping[str, Any] | None) -> str | None:
    if pkg is None:
        return None
    version = str(pkg.get("version"))
    return f"{version}={pkg['build']}" if pkg.get("build") else version


def _s(value: Any) -> str | None:
    return None if value is None else str(value)
