"""The debian tracer: dpkg and APT (Debian, Ubuntu and derivatives).

Everything is asked in ONE remote command, however many files. Which
package owns which file is read from dpkg's file lists
(``/var/lib/dpkg/info/*.list``) with one ``grep -F -x`` for all paths, the
same data ``dpkg-query -S`` reads, about ten times faster since that parses
the whole database per call (``dpkg-query -S`` through ``xargs``, which keeps
each call under ARG_MAX, is the fallback when the lists are not readable).
The same script then asks ``dpkg-query -W`` about the packages found,
``apt-cache policy`` about the sources and versions, and greps the dates of
the APT ``Release`` files. The old ReproMan ran a command per file here and
took 8.6 s for ``/usr/bin/*``.

Merged /usr: dpkg registers many files under ``/lib`` or ``/bin`` while
realpath gives ``/usr/lib`` or ``/usr/bin``, so both spellings are asked;
files are recorded under the spelling we were given.

The entry uses the old ReproMan's field names (``apt_sources`` with
``origin``/``archive``/``codename``/``date``..., ``packages`` with
``name``/``version``/``architecture``/``source_name``/``versions``/``files``).
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reproman.tracing.canonical import merged_usr_alternatives
from reproman.tracing.remote import PRINT_SECTION, run_script, sections
from reproman.tracing.tracer import Comparison, PackageDifference, Tracer, TraceResult
from reproman.tracing.versions import debian_compare

if TYPE_CHECKING:
    from reproman.resources.session import Session

lgr = logging.getLogger(__name__)

_NO_DPKG = "@@reproman-no-dpkg@@"
_FIELDS = "${Package}\\t${Architecture}\\t${Version}\\t${source:Package}\\t${source:Version}\\t${binary:Package}"

# When the system keeps no APT cache (Docker images set Dir::Cache::pkgcache
# ""), every apt-cache call rebuilds it from the lists (~0.6 s); keep one
# (~36 MB, the binary cache only) in the user's cache directory instead, which
# apt revalidates against the lists and rebuilds after 'apt-get update'.
_SCRIPT = r"""
if ! command -v dpkg-query >/dev/null 2>&1 || [ ! -f /var/lib/dpkg/status ]; then echo '@NODPKG@'; exit 0; fi
T=$(mktemp "${TMPDIR:-/tmp}/reproman-deb.XXXXXX") || exit 70
trap 'rm -f "$T" "$T.lines"' EXIT
cat > "$T"
cat /etc/debian_version 2>/dev/null
@SECTION@
if ls /var/lib/dpkg/info/*.list >/dev/null 2>&1; then
  tr '\0' '\n' < "$T" > "$T.lines"
  S=$(cd /var/lib/dpkg/info && LC_ALL=C grep -H -F -x -f "$T.lines" -- *.list 2>/dev/null | sed 's/\.list:/: /')
else
  S=$(LC_ALL=C xargs -0 dpkg-query -S -- < "$T" 2>/dev/null)
fi
printf '%s\n' "$S"
@SECTION@
P=$(printf '%s\n' "$S" | sed -n 's/: \/.*//p' | grep -v '^diversion by' | tr ',' '\n' | tr -d ' ' | sort -u)
if [ -n "$P" ]; then
  printf '%s\n' "$P" | xargs dpkg-query -W -f='@FIELDS@\t${db-fsys:Last-Modified}\n' 2>/dev/null ||
  printf '%s\n' "$P" | xargs dpkg-query -W -f='@FIELDS@\t\n' 2>/dev/null
fi
@SECTION@
APT=apt-cache
if command -v apt-config >/dev/null 2>&1; then
  PC=; eval "$(apt-config shell PC Dir::Cache::pkgcache 2>/dev/null)"
  if [ -z "$PC" ] && [ -n "$HOME" ]; then
    D="${XDG_CACHE_HOME:-$HOME/.cache}/reproman/apt"
    if mkdir -p "$D" 2>/dev/null && [ -w "$D" ]; then
      find "$D" -maxdepth 1 -name 'pkgcache.bin.??????' -mmin +10 -exec rm -f {} + 2>/dev/null
      FREE=$(df -Pk "$D" 2>/dev/null | awk 'NR==2 {print $4}')
      # The cache needs ~40 MB: never fill a disk for a speed-up.
      if [ "${FREE:-0}" -gt 204800 ] 2>/dev/null; then
        APT="apt-cache -o Dir::Cache::pkgcache=$D/pkgcache.bin -o Dir::Cache::srcpkgcache="
      fi
    fi
  fi
fi
if command -v apt-cache >/dev/null 2>&1; then
  LC_ALL=C $APT policy 2>/dev/null || { [ "$APT" != apt-cache ] && rm -f "$D"/pkgcache.bin.??????; APT=apt-cache; LC_ALL=C apt-cache policy 2>/dev/null; }
  @SECTION@
  [ -n "$P" ] && printf '%s\n' "$P" | LC_ALL=C xargs $APT policy 2>/dev/null
else
  @SECTION@
fi
@SECTION@
grep -H -E '^(Date|Origin|Label|Suite|Codename):' /var/lib/apt/lists/*Release 2>/dev/null
exit 0
""".replace("@SECTION@", PRINT_SECTION).replace("@NODPKG@", _NO_DPKG).replace(
    "@FIELDS@", _FIELDS
)

# -- parsers ------------------------------------------------------------------
def parse_dpkg_search(output: str) -> dict[str, list[str]]:
    """``dpkg-query -S`` output as {registered path: [package[:arch], ...]}.

    Lines look like ``coreutils: /usr/bin/ls`` or ``libc6:amd64, libc6:i386:
    /usr/share/doc/libc6``; diversion notes are skipped.
    """
    owners: dict[str, list[str]] = {}
    for line in output.splitlines():
        if not line or line.startswith("diversion by "):
            continue
        packages, sep, path = line.partition(": /")
        if not sep:
            continue
        found = owners.setdefault("/" + path, [])
        found.extend(p.strip() for p in packages.split(",") if p.strip() and p.strip() not in found)
    return owners


def parse_dpkg_status(output: str) -> dict[str, dict[str, Any]]:
    """Our ``dpkg-query -W`` lines, keyed by ``binary:Package`` (``bash``, ``libc6:amd64``)."""
    packages: dict[str, dict[str, Any]] = {}
    for line in output.splitlines():
        cols = line.split("\t")
        if len(cols) < 6 or not cols[0]:
            continue
        name, arch, version, src_name, src_version, binary = cols[:6]
        modified = cols[6].strip() if len(cols) > 6 else ""
        pkg: dict[str, Any] = {
            "name": name,
            "version": version,
            "architecture": arch,
            "source_name": src_name or None,
            "source_version": src_version or None,
        }
        if modified.isdigit():
            stamp = datetime.datetime.fromtimestamp(int(modified), datetime.timezone.utc)
            pkg["install_date"] = str(stamp)
        packages[binary] = pkg
        packages.setdefault(name, pkg)
    return packages


_RELEASE_TAGS = {"c": "component", "n": "codename", "a": "archive", "b": "architecture", "o": "origin", "l": "label"}


def parse_policy_sources(output: str) -> dict[str, dict[str, Any]]:
    """The ``Package files:`` of ``apt-cache policy``: {source line: fields}."""
    sources: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    in_files = False
    for line in output.splitlines():
        if not line.startswith(" "):
            in_files = line.startswith("Package files:")
            current = None
            continue
        if not in_files:
            continue
        match = re.match(r"^ (-?\d+) (\S.*)$", line)
        if match:
            source = match.group(2).strip()
            current = {}
            uri_match = re.match(r"^(\S+)(?: ([^/\s]+))?", source)
            if uri_match:
                current["archive_uri"] = uri_match.group(1)
                current["uri_suite"] = uri_match.group(2)
            sources[source] = current
            continue
        if current is None:
            continue
        text = line.strip()
        if text.startswith("release "):
            for tag, value in re.findall(r"([a-z])=((?:[^,]|,(?![a-z]=))*)", text[len("release "):]):
                if tag in _RELEASE_TAGS:
                    current[_RELEASE_TAGS[tag]] = value
        elif text.startswith("origin "):
            current["site"] = text[len("origin "):].strip()
    return sources


def parse_policy_packages(output: str) -> dict[str, dict[str, list[str]]]:
    """Version tables of ``apt-cache policy PKG...``: {package: {version: [source lines]}}."""
    tables: dict[str, dict[str, list[str]]] = {}
    table: dict[str, list[str]] | None = None
    version: str | None = None
    for line in output.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            name = line.rstrip().rstrip(":")
            table = tables.setdefault(name, {})
            version = None
            continue
        if table is None:
            continue
        version_match = re.match(r"^ (?:\*\*\*| {3}) (\S+) (-?\d+)\s*$", line)
        if version_match:
            version = version_match.group(1)
            table.setdefault(version, [])
            continue
        source_match = re.match(r"^ {8}(-?\d+) (\S.*)$", line)
        if source_match and version is not None:
            table[version].append(source_match.group(2).strip())
    return tables


def parse_release_dates(output: str) -> dict[str, dict[str, str]]:
    """``grep -H`` of Release files: {list file name: {Date: ..., Origin: ...}}."""
    files: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        path, sep, rest = line.partition(":")
        if not sep:
            continue
        tag, _, value = rest.partition(":")
        name = path.rsplit("/", 1)[-1]
        files.setdefault(name, {}).setdefault(tag.strip(), value.strip())
    return files


def release_list_names(archive_uri: str, suite: str | None) -> list[str]:
    """Names APT gives the Release files of a source (its URItoFileName rule)."""
    uri = re.sub(r"^[a-z0-9+.-]+:/+", "", archive_uri.rstrip("/"))
    uri = re.sub(r"^[^@/]*@", "", uri)
    base = uri.replace("/", "_")
    if suite and suite != "./":
        base += "_dists_" + suite.strip("/").replace("/", "_")
    return [base + "_InRelease", base + "_Release"]


def release_date(text: str | None) -> str | None:
    """``Sat, 11 Jul 2026 10:16:37 UTC`` in the old spec format ``2026-07-11 10:16:37+00:00``."""
    if not text:
        return None
    try:
        stamp = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return str(stamp.astimezone(datetime.timezone.utc))


# -- the tracer ---------------------------------------------------------------------
class DebianTracer(Tracer):
    """Files to Debian packages, with their versions and APT sources."""

    spec_name: ClassVar[str] = "debian"
    handles_dirs: ClassVar[bool] = False
    package_key: ClassVar[tuple[str, ...]] = ("name", "architecture")

    def identify(self, paths: Sequence[str]) -> TraceResult:
        wanted = [p for p in paths if p.startswith("/")]
        if not wanted:
            return TraceResult()
        spellings = {p: [p, *merged_usr_alternatives(p)] for p in wanted}
        queries = list(dict.fromkeys(s for alts in spellings.values() for s in alts if "\n" not in s))
        result = run_script(self.session, _SCRIPT, queries)
        if result.stdout.startswith(_NO_DPKG):
            lgr.debug("no dpkg on the resource: not a Debian system")
            return TraceResult()
        if result.returncode != 0:
            from reproman.errors import TracingError

            raise TracingError(f"dpkg query failed on the resource (exit {result.returncode}): {result.stderr.strip()}")
        parts = sections(result.stdout, 6)
        debian_version = parts[0].strip() or None
        owners = parse_dpkg_search(parts[1])
        status = parse_dpkg_status(parts[2])
        sources = parse_policy_sources(parts[3])
        tables = parse_policy_packages(parts[4])
        releases = parse_release_dates(parts[5])

        packages: dict[str, dict[str, Any]] = {}
        claimed: set[str] = set()
        for path, alternatives in spellings.items():
            found = next((owners[s] for s in alternatives if s in owners), None)
            if not found:
                continue
            claimed.add(path)
            for owner in found:
                info = status.get(owner) or status.get(owner.split(":")[0])
                if info is None:
                    continue
                key = owner if ":" in owner else f"{info['name']}:{info['architecture']}"
                pkg = packages.get(key)
                if pkg is None:
                    pkg = packages[key] = {**info, "files": []}
                    pkg["_query"] = owner
                pkg["files"].append(path)
        if not packages:
            return TraceResult(claimed=frozenset())

        namer = _SourceNamer(sources, releases)
        for pkg in packages.values():
            query = pkg.pop("_query")
            table = tables.get(query) or tables.get(f"{pkg['name']}:{pkg['architecture']}") or tables.get(pkg["name"])
            if table:
                pkg["versions"] = {v: [n for n in (namer.name(s) for s in lines) if n] for v, lines in table.items()}
            pkg["files"].sort()
        entry: dict[str, Any] = {
            "name": self.spec_name,
            "version": debian_version,
            "apt_sources": namer.used(),
            "packages": sorted(packages.values(), key=lambda p: (p["name"], p["architecture"] or "")),
        }
        return TraceResult(distributions=[entry], claimed=frozenset(claimed))

    # -- diff -------------------------------------------------------------------
    @classmethod
    def compare(cls, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
        """Packages by (name, architecture) whose versions differ or that one side lacks."""
        lpk, rpk = _index(left), _index(right)
        differences = [
            PackageDifference(key=key, left=_version(lpk.get(key)), right=_version(rpk.get(key)))
            for key in sorted(set(lpk) | set(rpk))
            if key not in lpk or key not in rpk or _version(lpk[key]) != _version(rpk[key])
        ]
        fields = []
        if left.get("version") != right.get("version"):
            fields.append(PackageDifference(key="version", left=_text(left.get("version")),
                                            right=_text(right.get("version"))))
        return Comparison(name=cls.spec_name, differences=differences, fields=fields)

    @classmethod
    def satisfies(cls, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
        """Each required package present (same architecture) at the same or a later version."""
        have = _index(candidate)
        by_name: dict[str, list[Mapping[str, Any]]] = {}
        for pkg in have.values():
            by_name.setdefault(str(pkg.get("name")), []).append(pkg)
        missing: list[PackageDifference] = []
        for key, need in sorted(_index(requirement).items()):
            arch = need.get("architecture")
            options = [p for p in by_name.get(str(need.get("name")), [])
                       if not arch or not p.get("architecture") or p.get("architecture") == arch]
            wanted = _version(need)
            if not options:
                missing.append(PackageDifference(key=key, left=wanted, right=None, detail="not installed"))
                continue
            if wanted is None:
                continue
            best = max((_version(p) or "" for p in options), key=_DebKey)
            if not best or debian_compare(best, wanted) < 0:
                missing.append(PackageDifference(key=key, left=wanted, right=best or None,
                                                 detail=f"have {best}, older"))
        return Comparison(name=cls.spec_name, differences=missing)

    @classmethod
    def install(cls, session: Session, entry: Mapping[str, Any]) -> None:
        """Pinned ``apt-get install name=version``, with snapshot sources for versions gone from the archive."""
        from reproman.tracing.install import install_debian

        install_debian(session, entry)


class _DebKey:
    """Sort key using Debian version order (for ``max``)."""

    def __init__(self, version: str) -> None:
        self.version = version

    def __lt__(self, other: _DebKey) -> bool:
        return debian_compare(self.version, other.version) < 0


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _version(pkg: Mapping[str, Any] | None) -> str | None:
    return None if pkg is None else _text(pkg.get("version"))


def _index(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for pkg in entry.get("packages") or []:
        arch = pkg.get("architecture")
        out[f"{pkg.get('name')}:{arch}" if arch else str(pkg.get("name"))] = pkg
    return out


class _SourceNamer:
    """Names APT sources as the old tool did (``apt_Debian_stable_main_0``), keeping those used."""

    def __init__(self, sources: Mapping[str, Mapping[str, Any]], releases: Mapping[str, Mapping[str, str]]) -> None:
        self.sources = sources
        self.releases = releases
        self.names: dict[str, str] = {}
        self.entries: dict[str, dict[str, Any]] = {}

    def name(self, line: str) -> str | None:
        if line in self.names:
            return self.names[line]
        info = self.sources.get(line)
        if info is None:
            lgr.debug("apt source %r not in apt-cache policy", line)
            return None
        stem = f"apt_{info.get('origin') or ''}_{info.get('archive') or ''}_{info.get('component') or ''}"
        n = 0
        while f"{stem}_{n}" in self.entries:
            n += 1
        name = f"{stem}_{n}"
        date = None
        if info.get("archive_uri") and "://" in str(info.get("archive_uri")):
            for filename in release_list_names(str(info["archive_uri"]), info.get("uri_suite")):
                if filename in self.releases:
                    date = release_date(self.releases[filename].get("Date"))
                    break
        self.entries[name] = {
            "name": name,
            "component": info.get("component"),
            "archive": info.get("archive"),
            "architecture": info.get("architecture"),
            "codename": info.get("codename"),
            "origin": info.get("origin"),
            "label": info.get("label"),
            "site": info.get("site"),
            "archive_uri": info.get("archive_uri") if "://" in str(info.get("archive_uri")) else None,
            "date": date,
        }
        self.names[line] = name
        return name

    def used(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if v is not None} for e in self.entries.values()]
