"""``reproman install``: rebuild the environments of specs on a resource.

Each distribution entry is handed to its tracer's :meth:`Tracer.install`
(found through the tracer hook, so a plugin's distribution type installs
the same way). Entries install in tracer order, so Debian packages (which
may bring the Python, git or svn the later ones need) come first, then
conda, venv, pip, git and svn.

All specs are read and every entry's type resolved *before* anything is
installed: a typo in the third spec must not leave the resource half done.
A failing entry does not stop the others (they are mostly independent);
the failures are reported together at the end.

The Debian installer lives here as :func:`install_debian` and is what
``DebianTracer.install`` calls.
"""

from __future__ import annotations

import datetime
import logging
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from reproman.errors import CommandError, ReproManError, TracingError

if TYPE_CHECKING:
    from reproman.plugins.records import TracerType
    from reproman.resources.base import Resource
    from reproman.resources.session import Session
    from reproman.tracing.spec import EnvironmentSpec

lgr = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class InstallResult:
    """What happened to one distribution entry of one spec."""

    spec: str
    distribution: str
    #: ``installed``, ``skipped`` (type cannot be installed) or ``failed``.
    status: str
    message: str = ""


Plan = list[tuple[str, dict[str, Any], "TracerType"]]


def install(resref: str | Resource | Session | None, spec: Sequence[str | EnvironmentSpec] | str | EnvironmentSpec,
            resref_type: str = "auto") -> list[InstallResult]:
    """What ``reproman.api.install`` runs: plan from the specs, then open the resource and install.

    The specs are read before the resource is contacted, so a malformed
    spec fails fast and without side effects.
    """
    from reproman.resources.commands import open_session

    notes: list[str] = []
    plan = plan_install(spec, notes)
    with open_session(resref, resref_type) as session:
        for note in notes:  # once the resource is there: a failed install says one thing
            lgr.warning("%s", note)
        return run_plan(session, plan)


def install_specs(target: Resource | Session, spec_paths: Sequence[str] | str) -> list[InstallResult]:
    """Install every distribution of the specs at ``spec_paths`` through ``target``.

    ``target`` is a resource (a session is opened and closed here) or an
    open session. Returns one :class:`InstallResult` per entry; raises
    :class:`TracingError` naming every failed entry after trying them all.
    """
    from reproman.resources.session import Session

    plan = plan_install(spec_paths)
    if isinstance(target, Session):
        return run_plan(target, plan)
    session = target.get_session()
    try:
        return run_plan(session, plan)
    finally:
        session.close()


def plan_install(spec_paths: Sequence[str | EnvironmentSpec] | str | EnvironmentSpec,
                 notes: list[str] | None = None) -> Plan:
    """Read all specs and resolve each entry's tracer, in install order (raises before any change).

    Warnings about what will not be installed are logged, or appended to
    ``notes`` for the caller to log when it is about to install.
    """
    from reproman.tracing.spec import EnvironmentSpec, as_spec

    specs = [spec_paths] if isinstance(spec_paths, (str, EnvironmentSpec)) else list(spec_paths)
    if not specs:
        raise TracingError("install needs at least one spec file")
    records = _tracer_records()
    plan: Plan = []
    for given in specs:
        spec = as_spec(given)
        path = given if isinstance(given, str) else spec.source or "<spec>"
        for entry in spec.distributions:
            record = _record_for(str(entry.get("name")), records)
            if record is None:
                known = ", ".join(sorted({r.spec_name for r in records}))
                raise TracingError(f"{path}: no installed tracer handles {entry.get('name')!r} distributions "
                                   f"(known: {known})", hint="Install the plugin that provides it.")
            plan.append((path, entry, record))
        if spec.files:
            note = f"{path}: {len(spec.files)} file(s) outside any distribution are not installed (copy them yourself)"
            if notes is None:
                lgr.warning("%s", note)
            else:
                notes.append(note)
    plan.sort(key=lambda item: item[2].order)
    return plan


def run_plan(session: Session, plan: Plan) -> list[InstallResult]:
    """Install each planned entry; failures are collected and raised together at the end."""
    results: list[InstallResult] = []
    for path, entry, record in plan:
        name = str(entry.get("name"))
        cls = record.load()
        lgr.info("installing %s from %s", name, path)
        try:
            cls.install(session, entry)
        except NotImplementedError as exc:
            lgr.warning("%s: %s", path, exc)
            results.append(InstallResult(spec=path, distribution=name, status="skipped", message=str(exc)))
            continue
        except ReproManError as exc:
            # Said once, in the error raised below with every failure.
            lgr.info("%s: installing %s failed: %s", path, name, exc)
            results.append(InstallResult(spec=path, distribution=name, status="failed", message=str(exc)))
            continue
        results.append(InstallResult(spec=path, distribution=name, status="installed"))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise TracingError("install failed for " + "; ".join(f"{r.distribution} ({r.spec}): {r.message}"
                                                              for r in failed))
    return results


def _tracer_records() -> list[TracerType]:
    from reproman.plugins.manager import get_plugin_manager

    return list(get_plugin_manager().tracers())


def _record_for(name: str, records: Iterable[TracerType]) -> TracerType | None:
    """The tracer for an entry name; ``conda-1`` is a ``conda`` entry, as in the old loader."""
    base = name.strip("-0123456789")
    for candidate in (name, base):
        for record in records:
            if candidate in (record.spec_name, record.name):
                return record
    return None


# -- Debian --------------------------------------------------------------------------

#: Where snapshot sources go on the resource (one file, rewritten each time).
SNAPSHOT_LIST = "/etc/apt/sources.list.d/reproman-snapshots.list"
_SNAPSHOT = "http://snapshot.debian.org/archive"
_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def install_debian(session: Session, entry: Mapping[str, Any]) -> None:
    """Install the entry's packages pinned (``apt-get install name=version``).

    1. ``apt-get update`` and ask ``apt-cache madison`` which recorded
       versions the configured archives still offer (one command).
    2. For versions gone from the archive, add snapshot.debian.org sources
       for the dates of the APT sources that provided them at trace time,
       update again and re-check (Debian keeps every version it ever
       published there; the live mirrors keep only the current ones).
    3. One ``apt-get install -y --allow-downgrades`` with every pin, so apt
       resolves them together.

    Runs ``apt-get`` through ``sudo -n`` when the session is not root.
    """
    packages = [p for p in entry.get("packages") or [] if p.get("name")]
    if not packages:
        return
    names = sorted({str(p["name"]) for p in packages})
    probe = session.execute_command(
        ["sh", "-c", 'if [ "$(id -u)" = 0 ]; then S=; else S="sudo -n"; fi; id -u; dpkg --print-architecture; '
                     'echo @@; $S apt-get update -qq >&2; echo @@; apt-cache madison "$@" 2>/dev/null; exit 0',
         "sh", *names],
        env=_APT_ENV,
    )
    head, _, rest = probe.stdout.partition("@@")
    head_lines = head.split()
    if len(head_lines) < 2:
        raise TracingError("the resource has no dpkg: cannot install Debian packages",
                           hint=(probe.stderr.strip().splitlines() or [""])[-1])
    sudo = "" if head_lines[0] == "0" else "sudo -n"
    native = head_lines[1]
    available = parse_madison(rest.partition("@@")[2])
    missing = [p for p in packages if p.get("version") and str(p["version"]) not in available.get(str(p["name"]), ())]
    if missing:
        lines = snapshot_source_lines(entry, missing)
        if not lines:
            raise TracingError(
                "versions no longer in the archives, and no APT source dates to find them on "
                "snapshot.debian.org: " + ", ".join(f"{p['name']}={p['version']}" for p in missing))
        lgr.info("adding %d snapshot.debian.org source(s) for %d package version(s) gone from the archive",
                 len(lines), len(missing))
        text = "# Added by reproman install: archive snapshots of traced package versions\n" + "\n".join(lines) + "\n"
        session.execute_command(
            f"{sudo} sh -c 'cat > {SNAPSHOT_LIST}' && {sudo} apt-get -o Acquire::Check-Valid-Until=false update -qq",
            env=_APT_ENV, stdin=text.encode(), check=True)
        again = session.execute_command(["apt-cache", "madison", *sorted({str(p["name"]) for p in missing})])
        available.update(parse_madison(again.stdout))
        still = [p for p in missing if str(p["version"]) not in available.get(str(p["name"]), ())]
        if still:
            raise TracingError("not found in the archives or their snapshots: "
                               + ", ".join(f"{p['name']}={p['version']}" for p in still))
    pins = [debian_pin(p, native) for p in packages]
    cmd = (f"{sudo} apt-get -o Acquire::Check-Valid-Until=false install -y -q --no-install-recommends "
           f"--allow-downgrades {' '.join(shlex.quote(p) for p in pins)}")
    lgr.info("apt-get install of %d pinned package(s)", len(pins))
    try:
        session.execute_command(cmd.strip(), env=_APT_ENV, check=True)
    except CommandError as exc:
        raise TracingError(f"apt-get install failed: {exc}") from exc


def debian_pin(pkg: Mapping[str, Any], native: str | None = None) -> str:
    """``name=version`` (``name:arch=version`` for a foreign architecture)."""
    name = str(pkg["name"])
    arch = pkg.get("architecture")
    if arch and arch not in ("all", native) and native is not None:
        name = f"{name}:{arch}"
    return f"{name}={pkg['version']}" if pkg.get("version") else name


def parse_madison(output: str) -> dict[str, set[str]]:
    """``apt-cache madison`` lines (`` bash | 5.2.15-2+b2 | http://... Packages``) as {name: versions}."""
    found: dict[str, set[str]] = {}
    for line in output.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[0] and parts[1] and not parts[2].endswith("Sources"):
            found.setdefault(parts[0], set()).add(parts[1])
    return found


def snapshot_source_lines(entry: Mapping[str, Any], missing: Sequence[Mapping[str, Any]]) -> list[str]:
    """snapshot.debian.org ``deb`` lines for the sources that had the missing versions.

    A package records ``versions: {version: [apt source names]}``; the
    sources named for its traced version (or, failing that, every source)
    give archive, codename, component and the date of their Release file.
    Two snapshots are added per source: at that date and a day later,
    because snapshot.debian.org timestamps its imports, which land a few
    hours after the Release file's date.
    """
    sources = {str(s.get("name")): s for s in entry.get("apt_sources") or [] if s.get("name")}
    wanted: dict[str, None] = {}
    for pkg in missing:
        names = ((pkg.get("versions") or {}).get(str(pkg.get("version"))) or []) if isinstance(
            pkg.get("versions"), Mapping) else []
        for name in names or list(sources):
            if name in sources:
                wanted[name] = None
    lines: dict[str, None] = {}
    for name in wanted:
        src = sources[name]
        archive = snapshot_archive(src)
        stamp = _parse_date(src.get("date"))
        codename = src.get("codename") or src.get("archive")
        if not archive or stamp is None or not codename:
            lgr.debug("apt source %s cannot be mapped to a snapshot (archive %s, date %s)", name, archive,
                      src.get("date"))
            continue
        component = src.get("component") or "main"
        for when in (stamp, stamp + datetime.timedelta(days=1)):
            lines[f"deb [check-valid-until=no] {_SNAPSHOT}/{archive}/{when:%Y%m%dT%H%M%SZ}/ "
                  f"{codename} {component}"] = None
    return list(lines)


def snapshot_archive(source: Mapping[str, Any]) -> str | None:
    """Which snapshot.debian.org archive mirrors an APT source (``debian``, ``debian-security``...)."""
    origin = str(source.get("origin") or "")
    label = str(source.get("label") or "")
    site = str(source.get("site") or "") + " " + str(source.get("archive_uri") or "")
    if origin != "Debian":
        return None
    if "security" in label.lower() or "security" in site:
        return "debian-security"
    if "debian-debug" in site:
        return "debian-debug"
    if "backports" in site and "debian-backports" in site:
        return "debian-backports"
    return "debian"


def _parse_date(value: Any) -> datetime.datetime | None:
    """The old spec's dates (``2017-01-04 21:48:53+00:00``), as UTC."""
    if isinstance(value, datetime.datetime):
        stamp = value
    else:
        text = re.sub(r"\s*UTC$", "+00:00", str(value or "").strip())
        if not text:
            return None
        try:
            stamp = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.astimezone(datetime.timezone.utc)
