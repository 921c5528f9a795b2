"""The redhat tracer: rpm (RHEL, CentOS, Fedora, SUSE...).

One remote command for all files: ``rpm -qf`` through ``xargs`` names the
owning packages, then ``rpm -q --qf`` prints each package's details and file
list, and files are matched to packages on our side (``rpm -qf`` output
cannot say which line belongs to which of many files). The old ReproMan ran
``rpm -qf`` and ``rpm -qi`` once per file.

Field names are the old tool's (``pkgid``, ``version``, ``release``,
``architecture``, ``install_date``, ``source_rpm``...). The old format has
no ``epoch`` field, so a non-zero epoch is carried in ``pkgid``
(``name-EPOCH:version-release.arch``, which yum and dnf accept) and read back
from there by ``diff``. Repositories come from ``/etc/yum.repos.d`` (no
network: ``yum repolist`` may refresh metadata).
"""

from __future__ import annotations

import datetime
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from reproman.tracing.canonical import merged_usr_alternatives
from reproman.tracing.remote import PRINT_SECTION, run_script, sections
from reproman.tracing.tracer import Comparison, PackageDifference, Tracer, TraceResult
from reproman.tracing.versions import rpm_compare

lgr = logging.getLogger(__name__)

_NO_RPM = "@@reproman-no-rpm@@"
_PKG = "@@PKG"
_QF = (
    _PKG + r"\t%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{INSTALLTIME}\t%{GROUP}\t%{SIZE}"
    r"\t%{LICENSE}\t%{SOURCERPM}\t%{BUILDTIME}\t%{BUILDHOST}\t%{PACKAGER}\t%{VENDOR}\t%{URL}"
    r"\t%|RSAHEADER?{%{RSAHEADER:pgpsig}}:{%|DSAHEADER?{%{DSAHEADER:pgpsig}}:{(none)}|}|\n[%{FILENAMES}\n]"
)
_COLUMNS = ("name", "epoch", "version", "release", "architecture", "install_date", "group", "size", "license",
            "source_rpm", "build_date", "build_host", "packager", "vendor", "url", "signature")

_SCRIPT = r"""
command -v rpm >/dev/null 2>&1 || { echo '@NORPM@'; exit 0; }
RPMDB=@DB@
if [ -n "$RPMDB" ]; then set -- --dbpath "$RPMDB"; else set --; fi
[ -n "$(rpm "$@" -qa 2>/dev/null | head -n 1)" ] || { echo '@NORPM@'; exit 0; }
T=$(mktemp "${TMPDIR:-/tmp}/reproman-rpm.XXXXXX") || exit 70
trap 'rm -f "$T" "$T.pkgs"' EXIT
cat > "$T"
head -n 1 /etc/redhat-release /etc/system-release 2>/dev/null | grep -v '^==>' | grep . | head -n 1
@SECTION@
LC_ALL=C xargs -0 rpm "$@" -qf --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n' -- < "$T" 2>/dev/null | grep -v ' ' | sort -u > "$T.pkgs"
[ -s "$T.pkgs" ] && LC_ALL=C xargs rpm "$@" -q --qf '@QF@' < "$T.pkgs"
@SECTION@
for f in /etc/yum.repos.d/*.repo; do [ -r "$f" ] && { echo "@@FILE $f"; cat "$f"; }; done
exit 0
"""


def _epoch(value: str) -> str | None:
    return None if value in ("", "(none)") else value


def _stamp(value: str) -> str | None:
    return str(datetime.datetime.fromtimestamp(int(value), datetime.timezone.utc)) if value.isdigit() else None


def parse_packages(output: str) -> list[dict[str, Any]]:
    """Our ``rpm -q --qf`` output: one record per package, with its file list."""
    packages: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in output.splitlines():
        if line.startswith(_PKG + "\t"):
            cols = line.split("\t")[1:]
            cols += [""] * (len(_COLUMNS) - len(cols))
            raw = dict(zip(_COLUMNS, cols))
            epoch = _epoch(raw.pop("epoch"))
            current = {k: (None if v in ("", "(none)") else v) for k, v in raw.items()}
            current["install_date"] = _stamp(raw["install_date"])
            current["build_date"] = _stamp(raw["build_date"])
            evr = f"{epoch}:" if epoch and epoch != "0" else ""
            current["pkgid"] = f"{raw['name']}-{evr}{raw['version']}-{raw['release']}.{raw['architecture']}"
            current["_files"] = []
            packages.append(current)
        elif current is not None and line.startswith("/"):
            current["_files"].append(line)
    return packages


def parse_repo_files(output: str) -> list[dict[str, Any]]:
    """Enabled repositories from ``*.repo`` INI text (``@@FILE path`` before each file)."""
    sources: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    filename: str | None = None
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("@@FILE "):
            filename = line[len("@@FILE "):]
            current = None
            continue
        if not line or line.startswith(("#", ";")):
            continue
        section = re.match(r"^\[(.+)\]$", line)
        if section:
            current = {"id": section.group(1), "filename": filename, "_enabled": True}
            sources.append(current)
            continue
        if current is None or "=" not in line:
            continue
        key, _, value = (s.strip() for s in line.partition("="))
        if key == "enabled":
            current["_enabled"] = value not in ("0", "false", "no")
        elif key in ("name", "baseurl", "metalink"):
            current[key] = value
        elif key == "mirrorlist":
            current["mirrors"] = value
    return [{k: v for k, v in s.items() if not k.startswith("_")} for s in sources if s["_enabled"]]


class RedhatTracer(Tracer):
    """Files to rpm packages."""

    spec_name: ClassVar[str] = "redhat"
    handles_dirs: ClassVar[bool] = False
    package_key: ClassVar[tuple[str, ...]] = ("name", "architecture")
    #: rpm database directory (``--dbpath``); ``None`` is the system's.
    dbpath: ClassVar[str | None] = None

    def identify(self, paths: Sequence[str]) -> TraceResult:
        wanted = [p for p in paths if p.startswith("/")]
        if not wanted:
            return TraceResult()
        spellings = {p: [p, *merged_usr_alternatives(p)] for p in wanted}
        queries = list(dict.fromkeys(s for alts in spellings.values() for s in alts))
        script = (
            _SCRIPT.replace("@NORPM@", _NO_RPM)
            .replace("@SECTION@", PRINT_SECTION)
            .replace("@DB@", shlex.quote(self.dbpath or ""))
            .replace("@QF@", _QF)
        )
        result = run_script(self.session, script, queries)
        if result.stdout.startswith(_NO_RPM):
            lgr.debug("no rpm database on the resource")
            return TraceResult()
        parts = sections(result.stdout, 3)
        release = parts[0].strip() or None
        packages = parse_packages(parts[1])
        owner: dict[str, dict[str, Any]] = {}
        for pkg in packages:
            for path in pkg.pop("_files"):
                owner.setdefault(path, pkg)
            pkg["files"] = []
        claimed: set[str] = set()
        for path, alternatives in spellings.items():
            found = [owner[s] for s in alternatives if s in owner]
            if found:
                pkg = found[0]
                pkg["files"].append(path)
                claimed.add(path)
        used = sorted((p for p in packages if p["files"]), key=lambda p: (p["name"], p.get("architecture") or ""))
        if not used:
            return TraceResult()
        order = ("name", "pkgid", "version", "release", "architecture", "install_date", "group", "size", "license",
                 "signature", "source_rpm", "build_date", "build_host", "packager", "vendor", "url", "files")
        entry = {
            "name": self.spec_name,
            "version": release,
            "sources": parse_repo_files(parts[2]),
            "packages": [{k: p.get(k) for k in order if p.get(k) is not None} for p in used],
        }
        return TraceResult(distributions=[entry], claimed=frozenset(claimed))

    # -- diff --------------------------------------------------------------------
    @classmethod
    def compare(cls, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
        """Packages by (name, architecture) whose epoch:version-release differ or that one side lacks."""
        lpk, rpk = _index(left), _index(right)
        differences = [
            PackageDifference(key=key, left=_evr(lpk.get(key)), right=_evr(rpk.get(key)))
            for key in sorted(set(lpk) | set(rpk))
            if key not in lpk or key not in rpk or _evr(lpk[key]) != _evr(rpk[key])
        ]
        fields = []
        if left.get("version") != right.get("version"):
            fields.append(PackageDifference(key="version", left=left.get("version"), right=right.get("version")))
        return Comparison(name=cls.spec_name, differences=differences, fields=fields)

    @classmethod
    def satisfies(cls, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
        """Each required package present (same architecture) at the same or a later version."""
        have: dict[str, list[Mapping[str, Any]]] = {}
        for pkg in candidate.get("packages") or []:
            have.setdefault(str(pkg.get("name")), []).append(pkg)
        missing = []
        for key, need in sorted(_index(requirement).items()):
            arch = need.get("architecture")
            options = [p for p in have.get(str(need.get("name")), [])
                       if not arch or not p.get("architecture") or p.get("architecture") == arch]
            if not options:
                missing.append(PackageDifference(key=key, left=_evr(need), right=None, detail="not installed"))
                continue
            if not need.get("version"):
                continue
            if not any(_cmp(p, need) >= 0 for p in options):
                missing.append(PackageDifference(key=key, left=_evr(need), right=_evr(options[0]),
                                                 detail=f"have {_evr(options[0])}, older"))
        return Comparison(name=cls.spec_name, differences=missing)


def _index(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for pkg in entry.get("packages") or []:
        arch = pkg.get("architecture")
        out[f"{pkg.get('name')}.{arch}" if arch else str(pkg.get("name"))] = pkg
    return out


def epoch_of(pkg: Mapping[str, Any]) -> str | None:
    """Epoch from ``pkgid`` (``name-EPOCH:version-release.arch``), where we keep it."""
    match = re.search(r"-(\d+):[^-]*-[^-]*$", str(pkg.get("pkgid") or ""))
    return match.group(1) if match else None


def _evr(pkg: Mapping[str, Any] | None) -> str | None:
    if pkg is None or not pkg.get("version"):
        return None
    epoch = epoch_of(pkg)
    release = f"-{pkg['release']}" if pkg.get("release") else ""
    return f"{epoch + ':' if epoch else ''}{pkg['version']}{release}"


def _cmp(have: Mapping[str, Any], need: Mapping[str, Any]) -> int:
    return rpm_compare(str(have.get("version") or ""), str(need.get("version") or ""),
                       have.get("release"), need.get("release"), epoch_of(have), epoch_of(need))
