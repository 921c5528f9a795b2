"""The redhat tracer against a real rpm database built here, and rpm version order."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reproman.resources.shell import ShellSession
from reproman.tracing.redhat import RedhatTracer, epoch_of, parse_repo_files
from reproman.tracing.retrace import trace_paths
from reproman.tracing.versions import rpm_compare, rpm_vercmp

RPM = shutil.which("rpm") is not None
RPMBUILD = shutil.which("rpmbuild") is not None

VERCMP_PAIRS = [
    ("1.0", "1.0"), ("1.0", "2.0"), ("1.0", "1.0.1"), ("1.0a", "1.0"), ("1.0~rc1", "1.0"), ("1.0^git1", "1.0"),
    ("1.0^git1", "1.0.1"), ("1.0~rc1", "1.0~rc2"), ("1.010", "1.9"), ("1.05", "1.5"), ("2.0.a", "2.0.1"),
    ("fc4", "fc.4"), ("1.0_1", "1.0.1"), ("1a", "1b"), ("abc", "abd"), ("1.0~~", "1.0~"), ("5.el9", "5.el8_4"),
    ("0.1", "0.01"), ("1.0^", "1.0"), ("1.0^a", "1.0^b"),
]


@pytest.mark.skipif(not RPM, reason="needs rpm to check against")
@pytest.mark.parametrize(("left", "right"), VERCMP_PAIRS)
def test_rpm_vercmp_agrees_with_rpm(left: str, right: str) -> None:
    out = subprocess.run(["rpm", "--eval", f'%{{lua: print(rpm.vercmp("{left}", "{right}"))}}'],
                         capture_output=True, text=True).stdout.strip()
    assert rpm_vercmp(left, right) == int(out)


def test_rpm_compare_epoch_and_release() -> None:
    assert rpm_compare("1.0", "2.0", left_epoch="1") == 1
    assert rpm_compare("1.0", "1.0", "2.el9", "10.el9") == -1
    assert rpm_compare("1.0", "1.0", None, "10.el9") == 0


def _build_rpm(top: Path, name: str, version: str, release: str, payload: Path, epoch: str | None = None) -> Path:
    top.mkdir(parents=True, exist_ok=True)
    spec = top / f"{name}.spec"
    spec.write_text(
        f"Name: {name}\nVersion: {version}\nRelease: {release}\n"
        + (f"Epoch: {epoch}\n" if epoch else "")
        + "Summary: ReproMan test package\nLicense: MIT\nBuildArch: noarch\n"
        "%description\nReproMan test package\n"
        f"%install\nmkdir -p %{{buildroot}}{payload.parent}\necho content > %{{buildroot}}{payload}\n"
        f"%files\n{payload}\n"
    )
    subprocess.run(["rpmbuild", "--define", f"_topdir {top}", "-bb", str(spec)], check=True, capture_output=True)
    (built,) = (top / "RPMS" / "noarch").glob(f"{name}-*.rpm")
    return built


@pytest.fixture(scope="module")
def rpmdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """A real rpm database holding two packages that own files under a temp root."""
    if not (RPM and RPMBUILD):
        pytest.skip("needs rpm and rpmbuild")
    base = tmp_path_factory.mktemp("rpm")
    root = base / "root"
    root.mkdir()
    hello, world = root / "hello.txt", root / "world.txt"
    hello.write_text("content\n")
    world.write_text("content\n")
    db = base / "db"
    subprocess.run(["rpm", "--dbpath", str(db), "--initdb"], check=True)
    for name, version, release, payload, epoch in (("reproman-hello", "1.2.3", "4", hello, None),
                                                   ("reproman-world", "2.0", "1.el9", world, "3")):
        built = _build_rpm(base / f"top-{name}", name, version, release, payload, epoch)
        subprocess.run(["rpm", "--dbpath", str(db), "-i", "--justdb", "--nodeps", str(built)], check=True,
                       capture_output=True)
    yield db, hello, world


def _tracer(db: Path) -> type[RedhatTracer]:
    class TestDbTracer(RedhatTracer):
        dbpath = str(db)

    return TestDbTracer


def test_identify_from_a_real_rpm_database(rpmdb: tuple[Path, Path, Path], tmp_path: Path) -> None:
    db, hello, world = rpmdb
    other = tmp_path / "other.txt"
    other.write_text("x")
    result = _tracer(db)(ShellSession()).identify([str(hello), str(world), str(other), "/no/such"])
    assert result.claimed == {str(hello), str(world)}
    (entry,) = result.distributions
    assert entry["name"] == "redhat"
    by_name = {p["name"]: p for p in entry["packages"]}
    hello_pkg = by_name["reproman-hello"]
    assert hello_pkg["pkgid"] == "reproman-hello-1.2.3-4.noarch"
    assert (hello_pkg["version"], hello_pkg["release"], hello_pkg["architecture"]) == ("1.2.3", "4", "noarch")
    assert hello_pkg["files"] == [str(hello)]
    assert hello_pkg["license"] == "MIT" and hello_pkg["source_rpm"].endswith(".src.rpm")
    assert hello_pkg["install_date"].endswith("+00:00")
    # The old format has no epoch field: it rides in pkgid.
    assert by_name["reproman-world"]["pkgid"] == "reproman-world-3:2.0-1.el9.noarch"
    assert epoch_of(by_name["reproman-world"]) == "3"


def test_retrace_engine_uses_the_tracer(rpmdb: tuple[Path, Path, Path]) -> None:
    db, hello, _world = rpmdb
    spec = trace_paths(ShellSession(), [str(hello), "/etc/hostname"], tracers=[_tracer(db)])
    assert spec.names() == ["redhat"]
    assert str(hello) not in spec.files


def test_no_rpm_database_claims_nothing(tmp_path: Path) -> None:
    class Empty(RedhatTracer):
        dbpath = str(tmp_path / "nodb")

    assert Empty(ShellSession()).identify(["/etc/passwd"]).claimed == frozenset()


def test_compare_and_satisfies() -> None:
    def entry(*pkgs: tuple[str, str, str, str | None]) -> dict[str, object]:
        return {"name": "redhat", "packages": [
            {"name": n, "version": v, "release": r, "architecture": "x86_64",
             "pkgid": f"{n}-{e + ':' if e else ''}{v}-{r}.x86_64"} for n, v, r, e in pkgs]}

    old = entry(("bash", "5.1.8", "6.el9", None), ("glibc", "2.34", "60.el9", None), ("vim", "8.2", "1", "2"))
    new = entry(("bash", "5.1.8", "9.el9", None), ("glibc", "2.34", "60.el9", None), ("vim", "9.0", "1", "1"))
    comp = RedhatTracer.compare(old, new)
    assert {(d.key, d.left, d.right) for d in comp.differences} == {
        ("bash.x86_64", "5.1.8-6.el9", "5.1.8-9.el9"), ("vim.x86_64", "2:8.2-1", "1:9.0-1")}
    sat = RedhatTracer.satisfies(requirement=old, candidate=new)
    assert [d.key for d in sat.differences] == ["vim.x86_64"], "a lower epoch loses whatever the version"
    assert RedhatTracer.satisfies(requirement=entry(("bash", "5.1.8", "6.el9", None)), candidate=new).equal


def test_parse_repo_files() -> None:
    text = ("@@FILE /etc/yum.repos.d/a.repo\n[baseos]\nname=BaseOS\nbaseurl=http://x/os/\nenabled=1\n"
            "[debug]\nname=Debug\nenabled=0\n@@FILE /etc/yum.repos.d/b.repo\n# c\n[epel]\nmetalink=https://m\n")
    assert parse_repo_files(text) == [
        {"id": "baseos", "filename": "/etc/yum.repos.d/a.repo", "name": "BaseOS", "baseurl": "http://x/os/"},
        {"id": "epel", "filename": "/etc/yum.repos.d/b.repo", "metalink": "https://m"},
    ]
