"""Python packages: the system ``pip`` tracer and what it shares with ``venv`` and ``conda``.

Both tracers read the installed metadata (``*.dist-info/RECORD``,
``METADATA``, ``direct_url.json``, legacy ``*.egg-info``/``*.egg-link``) with
one Python process on the resource for all files, instead of running
``pip list``/``pip show`` per environment and package as the old ReproMan did
(that is where its 15.9 s for 1,876 files went).

Spec shape (``name: pip`` is new; the old tool had no system pip tracer, so
its fields mirror ``venv``'s)::

    name: pip
    environments:
      - path: /usr/local/lib/python3.11/dist-packages   # the site directory
        python_version: '3.11'
        python: /usr/local/bin/python3.11               # interpreter, if found
        packages:
          - {name: six, version: 1.16.0, location: ..., files: [six.py]}

Only packages that own traced files are recorded for the system
interpreter: it is shared by unrelated software, unlike a virtualenv,
which is recorded whole.

This module also holds the version comparator used by ``diff --satisfies``
for Python and conda packages (a small PEP 440 ordering, so core needs no
``packaging`` dependency).
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reproman.errors import TracingError
from reproman.tracing.pyscripts import run_script
from reproman.tracing.tracer import Comparison, PackageDifference, Tracer, TraceResult

if TYPE_CHECKING:
    from reproman.resources.session import Session

lgr = logging.getLogger(__name__)


# -- versions ------------------------------------------------------------------

_PRE = {"dev": -4, "a": -3, "alpha": -3, "b": -2, "beta": -2, "c": -1, "rc": -1, "pre": -1, "preview": -1}
_TOKEN = re.compile(r"\d+|[a-z]+")


def version_key(version: str) -> tuple[Any, ...]:
    """A sort key that orders PEP 440 versions (and most conda/other versions) correctly.

    Handles epochs (``1!2.0``), release numbers of any length (``1.0 ==
    1.0.0``), pre-releases (``1.0a1 < 1.0b2 < 1.0rc1 < 1.0``), post-releases
    (``1.0 < 1.0.post1``), dev releases (``1.0.dev1 < 1.0a1``) and local
    labels (``1.0 < 1.0+local``). Unknown words sort as pre-releases, which
    is what conda does with e.g. ``1.0beta``.
    """
    text = str(version).strip().lower().lstrip("v")
    epoch = 0
    if "!" in text:
        head, _, text = text.partition("!")
        epoch = int(head) if head.isdigit() else 0
    text, _, local = text.partition("+")
    match = re.match(r"\d+(?:[._]\d+)*", text)
    release: list[int] = [int(p) for p in re.split(r"[._]", match.group(0))] if match else []
    rest = text[match.end():] if match else text
    rest = re.sub(r"^-(\d+)", r"post\1", rest)  # PEP 440's implicit post-release: 1.0-1 == 1.0.post1
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    # The suffix as (rank, number) pairs; a plain release ranks 0.
    suffix: list[tuple[int, int]] = []
    tokens = _TOKEN.findall(rest)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        num = 0
        if i + 1 < len(tokens) and tokens[i + 1].isdigit():
            num = int(tokens[i + 1])
            i += 1
        if tok.isdigit():
            suffix.append((0, int(tok)))
        elif tok in ("post", "rev", "r", "p", "patch"):
            suffix.append((1, num))
        else:
            suffix.append((_PRE.get(tok, -1), num))
        i += 1
    if not suffix:
        suffix = [(0, 0)]
    local_key = tuple((0, int(p), "") if p.isdigit() else (-1, 0, p) for p in re.split(r"[._-]", local) if p)
    return (epoch, tuple(release), tuple(suffix), local_key)


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as ``left`` is older than, equal to or newer than ``right``."""
    a, b = version_key(left), version_key(right)
    return (a > b) - (a < b)


def normalize_name(name: str) -> str:
    """PEP 503 project name: ``Foo_Bar`` and ``foo-bar`` are the same package."""
    return re.sub(r"[-_.]+", "-", str(name)).lower()


# -- spec helpers shared by venv, pip and conda -----------------------------------

def prune(value: Any) -> Any:
    """Drop ``None``, ``False`` and empty values, as the old ReproMan's writer did.

    Keeps the specs short and, more importantly, keeps optional new fields
    (``system_site_packages``, ``dirty``) out of specs where they are false,
    so the old tool, which rejects unknown fields, still loads them.
    """
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            pruned = prune(item)
            if pruned is None or pruned is False or pruned == "" or pruned == [] or pruned == {}:
                continue
            out[key] = pruned
        return out
    if isinstance(value, (list, tuple)):
        return [prune(v) for v in value]
    return value


def trace_site_packages(session: Session, mode: str, paths: Sequence[str]) -> dict[str, Any]:
    """Run the site-packages script for ``paths`` (one remote command)."""
    if not paths:
        return {"environments": [], "claimed": [], "tool": {}}
    answer: dict[str, Any] = run_script(session, "sitepackages", {"mode": mode, "paths": list(paths)})
    return answer


def _match_environments(
    left: Sequence[Mapping[str, Any]], right: Sequence[Mapping[str, Any]]
) -> list[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    """Pair environments by path; a lone environment on each side pairs whatever its path."""
    if len(left) == 1 and len(right) == 1:
        return [(str(left[0].get("path") or ""), left[0], right[0])]
    by_path_r = {str(e.get("path")): e for e in right}
    pairs: list[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]] = []
    for env in left:
        path = str(env.get("path"))
        pairs.append((path, env, by_path_r.pop(path, None)))
    pairs.extend((path, None, env) for path, env in by_path_r.items())
    return pairs


def _packages(env: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not env:
        return {}
    return {normalize_name(p["name"]): p for p in env.get("packages") or [] if p.get("name")}


def compare_environments(name: str, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
    """Package-level differences between two ``environments:`` entries (venv, pip)."""
    pairs = _match_environments(left.get("environments") or [], right.get("environments") or [])
    prefix_keys = len(pairs) > 1
    differences: list[PackageDifference] = []
    fields: list[PackageDifference] = []
    for path, lenv, renv in pairs:
        if lenv is None or renv is None:
            fields.append(PackageDifference(
                key=f"environment {path}",
                left=path if lenv else None, right=path if renv else None))
            continue
        if lenv.get("path") != renv.get("path"):
            fields.append(PackageDifference(key="environment path", left=lenv.get("path"), right=renv.get("path")))
        if lenv.get("python_version") != renv.get("python_version"):
            fields.append(PackageDifference(
                key=f"{path}: python_version" if prefix_keys else "python_version",
                left=_s(lenv.get("python_version")), right=_s(renv.get("python_version"))))
        lp, rp = _packages(lenv), _packages(renv)
        for key in sorted(set(lp) | set(rp)):
            a, b = lp.get(key), rp.get(key)
            av, bv = (_s(a.get("version")) if a else None), (_s(b.get("version")) if b else None)
            label = f"{path}:{key}" if prefix_keys else key
            if a is None or b is None or av != bv:
                differences.append(PackageDifference(key=label, left=av if a else None, right=bv if b else None))
            elif bool(a.get("editable")) != bool(b.get("editable")):
                differences.append(PackageDifference(
                    key=label, left=av, right=bv,
                    detail=f"editable: {bool(a.get('editable'))} vs {bool(b.get('editable'))}"))
    return Comparison(name=name, differences=differences, fields=fields)


def satisfies_environments(name: str, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
    """What ``candidate`` lacks: each required package present with a version >= the required one.

    The interpreter must have the same major.minor version: compiled
    extensions and pinned wheels are specific to it.
    """
    pairs = _match_environments(requirement.get("environments") or [], candidate.get("environments") or [])
    prefix_keys = len(pairs) > 1
    differences: list[PackageDifference] = []
    fields: list[PackageDifference] = []
    for path, req, cand in pairs:
        if req is None:
            continue
        if cand is None:
            fields.append(PackageDifference(key=f"environment {path}", left=path, right=None, detail="missing"))
            continue
        rv, cv = req.get("python_version"), cand.get("python_version")
        if rv and (not cv or _major_minor(str(rv)) != _major_minor(str(cv))):
            fields.append(PackageDifference(key="python_version", left=_s(rv), right=_s(cv),
                                            detail="different Python"))
        cp = _packages(cand)
        for key, pkg in sorted(_packages(req).items()):
            label = f"{path}:{key}" if prefix_keys else key
            diff = _version_shortfall(label, pkg.get("version"), cp.get(key))
            if diff:
                differences.append(diff)
    return Comparison(name=name, differences=differences, fields=fields)


def _version_shortfall(label: str, wanted: Any, have: Mapping[str, Any] | None) -> PackageDifference | None:
    if have is None:
        return PackageDifference(key=label, left=_s(wanted), right=None, detail="missing")
    got = have.get("version")
    if wanted and (not got or compare_versions(str(got), str(wanted)) < 0):
        return PackageDifference(key=label, left=_s(wanted), right=_s(got), detail="older")
    return None


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


# -- install -----------------------------------------------------------------------

def pip_requirements(packages: Iterable[Mapping[str, Any]], where: str) -> list[str]:
    """``name==version`` for what pip can fetch; warn about (and skip) the rest.

    Editable packages are working copies of someone's source tree: pip cannot
    fetch them by name, so they are reported, not guessed at.
    """
    reqs: list[str] = []
    for pkg in packages:
        name, version = pkg.get("name"), pkg.get("version")
        if not name:
            continue
        if pkg.get("editable"):
            lgr.warning("%s: skipping editable package %s (from %s); install it from its source",
                        where, name, pkg.get("location") or "an unknown location")
            continue
        reqs.append(f"{name}=={version}" if version else str(name))
    return reqs


def pip_install(session: Session, python: str, requirements: Sequence[str], where: str,
                extra_args: Sequence[str] = ()) -> list[str]:
    """Install pinned ``requirements`` with ``python -m pip``; return those that failed, each with pip's reason.

    All requirements go in one pip call (pip resolves them together and it is
    one remote command). If that fails, each is retried alone so that one
    package missing from the index (e.g. built from a local directory) does
    not stop the others; those are returned (``name==version (reason)``) for
    the caller's one error, not logged as errors here too.
    """
    if not requirements:
        return []
    base = [python, "-m", "pip", "install", "--disable-pip-version-check", *extra_args]
    result = session.execute_command([*base, *requirements])
    if result.ok:
        return []
    lgr.info("%s: installing all at once failed (%s); retrying package by package",
             where, (result.stderr.strip().splitlines() or ["?"])[-1])
    failed = []
    for req in requirements:
        one = session.execute_command([*base, "--no-deps", req])
        if not one.ok:
            reason = (one.stderr.strip().splitlines() or [f"exit {one.returncode}"])[-1].strip()
            reason = reason.removeprefix("ERROR: ")
            failed.append(f"{req} ({reason})" if req not in reason else reason)
            lgr.info("%s: could not install %s: %s", where, req, reason)
    return failed


class PipTracer(Tracer):
    """Packages of system (non-virtualenv, non-conda) Python installations."""

    spec_name = "pip"

    def identify(self, paths: Sequence[str]) -> TraceResult:
        candidates = [p for p in paths if "/site-packages/" in p or "/dist-packages/" in p]
        answer = trace_site_packages(self.session, "pip", candidates)
        envs = answer["environments"]
        if not envs:
            return TraceResult()
        entry = prune({"name": self.spec_name, "environments": envs})
        return TraceResult(distributions=[entry], claimed=frozenset(answer["claimed"]))

    @classmethod
    def compare(cls, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
        return compare_environments(cls.spec_name, left, right)

    @classmethod
    def satisfies(cls, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
        return satisfies_environments(cls.spec_name, requirement, candidate)

    @classmethod
    def install(cls, session: Session, entry: Mapping[str, Any]) -> None:
        """``pythonX.Y -m pip install name==version`` for each recorded site directory.

        The recorded interpreter is used when it exists on the resource, else
        ``pythonX.Y``/``python3`` from PATH. Installing into a Debian-managed
        interpreter needs ``--break-system-packages`` (PEP 668); it is added
        only after pip refused without it, and said so in a warning.
        """
        failures: list[str] = []
        for env in entry.get("environments") or []:
            where = f"pip {env.get('path')}"
            python = _find_python(session, env.get("python"), env.get("python_version"))
            reqs = pip_requirements(env.get("packages") or [], where)
            probe = session.execute_command([python, "-m", "pip", "--version"])
            if not probe.ok:
                raise TracingError(f"{where}: {python} has no pip on the resource",
                                   hint="Install pip for that interpreter (e.g. apt-get install python3-pip).")
            extra: list[str] = []
            if _externally_managed(session, python):
                lgr.warning("%s: %s is externally managed (PEP 668); installing with --break-system-packages",
                            where, python)
                extra = ["--break-system-packages"]
            failures += pip_install(session, python, reqs, where, extra)
        if failures:
            raise TracingError(f"pip could not install: {', '.join(failures)}")


def _find_python(session: Session, recorded: str | None, version: str | None) -> str:
    """An interpreter on the resource: the recorded one, else ``pythonX.Y``, else ``python3``."""
    candidates = [c for c in (recorded, f"python{version}" if version else None, "python3") if c]
    script = "for c in " + " ".join(shlex.quote(c) for c in candidates) + \
        '; do command -v "$c" && exit 0; done; exit 1'
    result = session.execute_command(script)
    if not result.ok or not result.stdout.strip():
        raise TracingError(f"no Python interpreter among {', '.join(candidates)} on the resource",
                           hint=f"Install Python {version or '3'} there first.")
    return result.stdout.strip().splitlines()[0]


def _externally_managed(session: Session, python: str) -> bool:
    code = ("import sysconfig,os;"
            "print(os.path.exists(os.path.join(sysconfig.get_path('stdlib'),'EXTERNALLY-MANAGED')))")
    result = session.execute_command([python, "-c", code])
    return result.ok and result.stdout.strip() == "True"
