"""The debian tracer against the real dpkg and APT of this machine, and Debian version order."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest

from reproman.resources.shell import ShellSession
from reproman.tracing.debian import (
    DebianTracer,
    parse_dpkg_search,
    parse_policy_packages,
    parse_policy_sources,
    release_date,
    release_list_names,
)
from reproman.tracing.versions import debian_compare

DPKG = shutil.which("dpkg") is not None
needs_debian = pytest.mark.skipif(
    not (DPKG and os.path.exists("/var/lib/dpkg/status")), reason="needs a Debian system (dpkg)"
)

VERSION_PAIRS = [
    ("1.0", "1.0"), ("1.0", "1.1"), ("1.0~rc1", "1.0"), ("1.0", "1.0+b1"), ("1.0-1", "1.0-1ubuntu1"),
    ("1:1.0", "2.0"), ("0:1.0", "1.0"), ("1.0-1", "1.0-01"), ("1.2.3", "1.2.10"), ("1.0a", "1.0"),
    ("1.0~~", "1.0~"), ("1.0~", "1.0"), ("2.36-9+deb12u4", "2.36-9+deb12u14"), ("5.2.15-2+b8", "5.2.15-2+b13"),
    ("1.0.0", "1.0"), ("a", "b"), ("1.0+dfsg", "1.0-1"), ("9.1-1", "9.1"), ("1:7.7+23", "1:7.7+3"),
    ("0.9", "0.10"), ("1.0.", "1.0"), ("2.0~beta", "2.0~alpha"), ("1.2-3.4", "1.2-3.10"),
]


@pytest.mark.skipif(not DPKG, reason="needs dpkg to check against")
@pytest.mark.parametrize(("left", "right"), VERSION_PAIRS)
def test_debian_compare_agrees_with_dpkg(left: str, right: str) -> None:
    expected = next(
        result for op, result in (("lt", -1), ("eq", 0), ("gt", 1))
        if subprocess.run(["dpkg", "--compare-versions", left, op, right]).returncode == 0
    )
    assert debian_compare(left, right) == expected
    assert debian_compare(right, left) == -expected


@pytest.mark.skipif(not DPKG, reason="needs dpkg to check against")
def test_debian_compare_on_installed_versions() -> None:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}\n"], capture_output=True, text=True).stdout.split()
    rng = random.Random(4)
    pairs = [(rng.choice(out), rng.choice(out)) for _ in range(40)]
    for left, right in pairs:
        gt = subprocess.run(["dpkg", "--compare-versions", left, "gt", right]).returncode == 0
        lt = subprocess.run(["dpkg", "--compare-versions", left, "lt", right]).returncode == 0
        assert debian_compare(left, right) == (1 if gt else -1 if lt else 0), (left, right)


def test_parse_dpkg_search_lines() -> None:
    out = (
        "coreutils: /usr/bin/ls\n"
        "diversion by dash from: /bin/sh\n"
        "diversion by dash to: /bin/sh.distrib\n"
        "dash: /bin/sh\n"
        "libc6:amd64, libc6:i386: /usr/share/doc/libc6\n"
        "libc6:amd64: /usr/share/doc/libc6\n"
    )
    assert parse_dpkg_search(out) == {
        "/usr/bin/ls": ["coreutils"],
        "/bin/sh": ["dash"],
        "/usr/share/doc/libc6": ["libc6:amd64", "libc6:i386"],
    }


POLICY = """\
Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
Pinned packages:
"""

PKG_POLICY = """\
bash:
  Installed: 5.2.15-2+b8
  Candidate: 5.2.15-2+b13
  Version table:
     5.2.15-2+b13 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 5.2.15-2+b8 100
        100 /var/lib/dpkg/status
libc6:i386:
  Installed: (none)
  Candidate: 2.36-9
  Version table:
     2.36-9 500
        500 http://deb.debian.org/debian bookworm/main i386 Packages
"""


def test_parse_apt_policy() -> None:
    sources = parse_policy_sources(POLICY)
    main = sources["http://deb.debian.org/debian bookworm/main amd64 Packages"]
    assert main == {"archive_uri": "http://deb.debian.org/debian", "uri_suite": "bookworm", "origin": "Debian",
                    "archive": "oldstable", "codename": "bookworm", "label": "Debian", "component": "main",
                    "architecture": "amd64", "site": "deb.debian.org"}
    assert sources["/var/lib/dpkg/status"]["archive"] == "now"
    tables = parse_policy_packages(PKG_POLICY)
    assert tables["bash"] == {
        "5.2.15-2+b13": ["http://deb.debian.org/debian bookworm/main amd64 Packages"],
        "5.2.15-2+b8": ["/var/lib/dpkg/status"],
    }
    assert list(tables["libc6:i386"]) == ["2.36-9"]


def test_release_files_and_dates() -> None:
    assert release_list_names("http://deb.debian.org/debian", "bookworm") == [
        "deb.debian.org_debian_dists_bookworm_InRelease", "deb.debian.org_debian_dists_bookworm_Release"]
    assert release_list_names("https://user:pw@example.org/repo/", "stable/updates")[0] == \
        "example.org_repo_dists_stable_updates_InRelease"
    assert release_date("Sat, 11 Jul 2026 10:16:37 UTC") == "2026-07-11 10:16:37+00:00"
    assert release_date("garbage") is None


@needs_debian
def test_identify_real_packages() -> None:
    result = DebianTracer(ShellSession()).identify(["/usr/bin/ls", "/etc/debian_version", "/no/such/file"])
    assert result.claimed == {"/usr/bin/ls", "/etc/debian_version"}
    (entry,) = result.distributions
    assert entry["name"] == "debian"
    with open("/etc/debian_version") as handle:
        assert entry["version"] == handle.read().strip()
    by_name = {p["name"]: p for p in entry["packages"]}
    coreutils = by_name["coreutils"]
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Version} ${Architecture}", "coreutils"],
                               capture_output=True, text=True).stdout.split()
    assert [coreutils["version"], coreutils["architecture"]] == installed
    assert coreutils["files"] == ["/usr/bin/ls"]
    assert coreutils["source_name"] == "coreutils"
    assert coreutils["install_date"].endswith("+00:00")
    assert by_name["base-files"]["files"] == ["/etc/debian_version"]
    if shutil.which("apt-cache"):
        assert coreutils["versions"] and coreutils["version"] in coreutils["versions"]
        names = {s["name"] for s in entry["apt_sources"]}
        for sources in coreutils["versions"].values():
            assert set(sources) <= names
        debian_sources = [s for s in entry["apt_sources"] if s.get("origin") == "Debian"]
        if debian_sources:
            source = debian_sources[0]
            assert source["name"].startswith("apt_Debian_")
            assert {"archive", "codename", "component", "archive_uri", "site"} <= set(source)
            if any(n.endswith("Release") for n in os.listdir("/var/lib/apt/lists")):
                assert "date" in source


@needs_debian
def test_identify_ignores_non_paths_and_returns_nothing_for_unowned(tmp_path: object) -> None:
    assert DebianTracer(ShellSession()).identify(["busybox:latest"]).claimed == frozenset()
    result = DebianTracer(ShellSession()).identify([f"{tmp_path}/x"])
    assert result.claimed == frozenset() and result.distributions == []


def _entry(*packages: tuple[str, str, str], version: str = "12.5") -> dict[str, object]:
    return {"name": "debian", "version": version,
            "packages": [{"name": n, "version": v, "architecture": a} for n, v, a in packages]}


def test_compare_and_satisfies() -> None:
    old = _entry(("bash", "5.2.15-2+b8", "amd64"), ("libc6", "2.36-9", "amd64"), ("tzdata", "2024a-0", "all"))
    new = _entry(("bash", "5.2.15-2+b13", "amd64"), ("libc6", "2.36-9", "amd64"), ("vim", "2:9.0", "amd64"))
    comp = DebianTracer.compare(old, new)
    assert not comp.equal
    assert {(d.key, d.left, d.right) for d in comp.differences} == {
        ("bash:amd64", "5.2.15-2+b8", "5.2.15-2+b13"), ("tzdata:all", "2024a-0", None), ("vim:amd64", None, "2:9.0")}
    assert DebianTracer.compare(old, old).equal
    assert [f.key for f in DebianTracer.compare(old, _entry(*[], version="12.6")).fields] == ["version"]

    # new satisfies what old needs, except tzdata; the newer bash is fine.
    sat = DebianTracer.satisfies(requirement=old, candidate=new)
    assert [(d.key, d.detail) for d in sat.differences] == [("tzdata:all", "not installed")]
    # old does not satisfy new: bash is older, vim missing.
    sat = DebianTracer.satisfies(requirement=new, candidate=old)
    assert {d.key for d in sat.differences} == {"bash:amd64", "vim:amd64"}
    # A requirement without version or architecture only needs the package.
    assert DebianTracer.satisfies({"packages": [{"name": "bash"}]}, old).equal


@needs_debian
def test_apt_cache_on_a_full_disk_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    """A 1 MiB file system as the user's cache (a full disk): the capture works and leaves no temp file."""
    if not shutil.which("apt-cache") or os.geteuid() != 0:
        pytest.skip("needs apt-cache, and root to mount a small tmpfs")
    cache = tmp_path / "cache"
    cache.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(cache)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
        result = DebianTracer(ShellSession()).identify(["/usr/bin/ls"])
        (entry,) = result.distributions
        coreutils = next(p for p in entry["packages"] if p["name"] == "coreutils")
        assert coreutils["version"] in coreutils["versions"]
        left = [str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()]
        assert left == []
    finally:
        subprocess.run(["umount", str(cache)], check=True)
