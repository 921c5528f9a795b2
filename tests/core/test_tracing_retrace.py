"""The retrace engine on this machine: canonical paths, tracer order, bounded round trips."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from reproman.errors import TracingError
from reproman.resources.session import CommandResult
from reproman.resources.shell import ShellSession
from reproman.tracing.canonical import DIR, FILE, MISSING, canonicalize, merged_usr_alternatives
from reproman.tracing.retrace import trace_paths

DEBIAN = shutil.which("dpkg-query") is not None and os.path.exists("/var/lib/dpkg/status")
needs_debian = pytest.mark.skipif(not DEBIAN, reason="needs a Debian system (dpkg)")


class CountingSession(ShellSession):
    """A shell session that records every command it runs (round trips, over SSH)."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []

    def execute_command(self, command: Any, env: Mapping[str, str] | None = None, cwd: str | None = None, *,
                        check: bool = False, stdin: bytes | None = None) -> CommandResult:
        self.commands.append(command if isinstance(command, str) else " ".join(command))
        return super().execute_command(command, env, cwd, check=check, stdin=stdin)


def packages(spec: Any, name: str = "debian") -> dict[str, dict[str, Any]]:
    entry = spec.get_distribution(name) or {}
    return {p["name"]: p for p in entry.get("packages") or []}


# -- canonicalisation ------------------------------------------------------------
def test_canonicalize_links_relative_missing_and_odd_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "real file 'q' $x"
    target.write_text("x")
    (tmp_path / "link").symlink_to(target.name)
    (tmp_path / "dir").mkdir()
    newline = tmp_path / "new\nline"
    newline.write_text("y")
    session = ShellSession()
    given = [str(tmp_path / "link"), str(target), str(tmp_path / "dir"), str(tmp_path / "nope" / ".." / "gone"),
             str(newline)]
    infos = canonicalize(session, given)
    assert [i.given for i in infos] == given
    link, real, directory, missing, odd = infos
    assert link.is_link and link.canonical == str(target) and link.absolute == str(tmp_path / "link")
    assert link.kind == FILE
    assert not real.is_link and real.canonical == str(target)
    assert directory.kind == DIR
    assert missing.kind == MISSING and missing.canonical == str(tmp_path / "gone")
    assert odd.canonical == str(newline) and odd.kind == FILE
    assert canonicalize(session, []) == []

    # Relative paths are relative to the session's working directory.
    monkeypatch.chdir(tmp_path)
    (rel,) = canonicalize(ShellSession(), ["link"])
    assert rel.absolute == str(tmp_path / "link") and rel.canonical == str(target)


def test_merged_usr_spellings() -> None:
    assert merged_usr_alternatives("/usr/lib/x86_64-linux-gnu/libc.so.6") == ["/lib/x86_64-linux-gnu/libc.so.6"]
    assert merged_usr_alternatives("/bin/sh") == ["/usr/bin/sh"]
    assert merged_usr_alternatives("/usr/sbin/x") == ["/sbin/x"]
    assert merged_usr_alternatives("/usr/share/doc") == []
    assert merged_usr_alternatives("/etc/passwd") == []
    assert merged_usr_alternatives("/library/x") == []


# -- the engine ----------------------------------------------------------------
@needs_debian
def test_retrace_usr_bin_claims_nearly_everything_in_few_commands() -> None:
    paths = sorted(glob.glob("/usr/bin/*"))
    session = CountingSession()
    spec = trace_paths(session, paths)
    found = packages(spec)
    assert "coreutils" in found and "/usr/bin/ls" in found["coreutils"]["files"]
    claimed = {f for p in found.values() for f in p["files"]}
    assert len(spec.files) <= len(paths) // 20, spec.files
    assert len(claimed) >= len(paths) * 0.9
    # The number of remote commands does not grow with the number of files.
    few = CountingSession()
    trace_paths(few, paths[:5])
    assert len(session.commands) <= len(few.commands) + 2
    assert len(session.commands) <= 12, session.commands


@needs_debian
def test_merged_usr_paths_found_through_the_other_spelling() -> None:
    """dpkg knows many libraries only as /lib/...: those named /usr/lib/... must still be found."""
    libs = sorted(p for p in glob.glob("/usr/lib/x86_64-linux-gnu/*.so*") if not os.path.islink(p))[:400]
    if not libs:
        pytest.skip("no /usr/lib/x86_64-linux-gnu libraries here")
    direct = subprocess.run(["dpkg-query", "-S", *libs], capture_output=True, text=True).stdout
    found_directly = {line.partition(": ")[2] for line in direct.splitlines() if not line.startswith("diversion")}
    only_other = [p for p in libs if p not in found_directly]
    spec = trace_paths(ShellSession(), libs)
    claimed = {f for p in packages(spec).values() for f in p["files"]}
    rewritten = [p for p in only_other if p in claimed]
    if not rewritten:
        pytest.skip("this system registers its libraries under /usr/lib")
    assert set(libs) - claimed <= set(spec.files)
    assert all(p not in spec.files for p in rewritten)


@needs_debian
def test_symlinks_followed_and_link_itself_traced(tmp_path: Path) -> None:
    awk = "/usr/bin/awk"
    if not os.path.islink(awk):
        pytest.skip("no awk alternative here")
    target = os.path.realpath(awk)
    unowned = tmp_path / "tool"
    unowned.write_text("#!/bin/sh\n")
    link_to_unowned = tmp_path / "tool-link"
    link_to_unowned.symlink_to(unowned)
    link_to_owned = tmp_path / "ls-link"
    link_to_owned.symlink_to("/usr/bin/ls")
    spec = trace_paths(ShellSession(), [awk, str(link_to_unowned), str(link_to_owned)])
    files = {f for p in packages(spec).values() for f in p["files"]}
    assert target in files, "the alternative's target is traced"
    assert "/usr/bin/ls" in files
    # The alternatives link belongs to no package but its target is accounted for;
    # an unowned file is reported under the name the user gave.
    assert spec.files == [str(link_to_unowned)]


@needs_debian
def test_python3_link_and_target_belong_to_two_packages() -> None:
    python = "/usr/bin/python3"
    if not os.path.islink(python) or subprocess.run(["dpkg-query", "-S", python], capture_output=True).returncode:
        pytest.skip("no packaged /usr/bin/python3 link here")
    spec = trace_paths(ShellSession(), [python])
    owners = {name for name, p in packages(spec).items() for f in p["files"]}
    assert len(owners) == 2, owners  # python3-minimal (the link) and python3.X-minimal (the binary)
    assert spec.files == []


def test_unowned_files_and_directories_go_to_files(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("1,2\n")
    spec = trace_paths(ShellSession(), [str(data), str(tmp_path), str(tmp_path / "missing")])
    assert spec.files == sorted([str(data), str(tmp_path), str(tmp_path / "missing")])
    assert trace_paths(ShellSession(), []).files == []


def test_tracer_order_and_unclaimed_handoff() -> None:
    """Each tracer sees only what earlier ones left; directories only if it handles them."""
    from reproman.tracing.tracer import Tracer, TraceResult

    seen: dict[str, list[str]] = {}

    class First(Tracer):
        spec_name = "first"
        handles_dirs = False

        def identify(self, paths: Sequence[str]) -> TraceResult:
            seen["first"] = list(paths)
            return TraceResult(distributions=[{"name": "first", "packages": [{"name": "a", "files": ["/etc/passwd"]}]}],
                               claimed=frozenset(p for p in paths if p == "/etc/passwd"))

    class Second(Tracer):
        spec_name = "second"

        def identify(self, paths: Sequence[str]) -> TraceResult:
            seen["second"] = list(paths)
            return TraceResult()

    spec = trace_paths(ShellSession(), ["/etc/passwd", "/etc/hostname", "/etc"], tracers=[First, Second])
    assert seen["first"] == ["/etc/passwd", "/etc/hostname"]
    assert seen["second"] == ["/etc/hostname", "/etc"]
    assert spec.names() == ["first"]
    assert spec.files == ["/etc", "/etc/hostname"]


def test_catalog_registers_builtin_tracers_in_order() -> None:
    from importlib.util import find_spec

    from reproman.plugins.manager import get_plugin_manager
    from reproman.tracing.catalog import BUILTIN_TRACERS

    names = [t.name for t in get_plugin_manager().tracers()]
    assert {"debian", "redhat", "docker"} <= set(names)
    assert names.index("debian") < names.index("redhat") < names.index("docker")
    for record in BUILTIN_TRACERS:
        assert find_spec(record.factory.partition(":")[0]) is not None
        cls = record.load()
        assert cls.spec_name == record.spec_name


# -- docker ----------------------------------------------------------------------
def _docker_image() -> str | None:
    if not shutil.which("docker"):
        return None
    out = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                         text=True)
    images = [i for i in out.stdout.split() if "<none>" not in i]
    return images[0] if out.returncode == 0 and images else None


def test_docker_images_traced_by_reference() -> None:
    image = _docker_image()
    if image is None:
        pytest.skip("no Docker engine with a tagged image here")
    spec = trace_paths(ShellSession(), [image, "no-such-image-reproman:never"])
    entry = spec.get_distribution("docker")
    assert entry is not None
    (record,) = entry["images"]
    assert record["id"].startswith("sha256:") and image in record["repo_tags"]
    assert {"architecture", "operating_system", "created"} <= set(record)
    assert spec.files == ["no-such-image-reproman:never"]


# -- execute --trace -----------------------------------------------------------------
def _strace_works() -> bool:
    if not shutil.which("strace"):
        return False
    return subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "true"], capture_output=True).returncode == 0


@needs_debian
def test_trace_execution_records_opened_files() -> None:
    if not _strace_works():
        pytest.skip("strace cannot trace here")
    from reproman.tracing.strace import trace_execution

    result = trace_execution(ShellSession(), ["cat", "/etc/debian_version"])
    assert result.returncode == 0 and result.stdout.strip()
    assert result.spec is not None
    found = packages(result.spec)
    assert "coreutils" in found and "libc6" in found
    assert "/etc/debian_version" in found["base-files"]["files"]


def test_trace_execution_without_strace_says_what_to_install() -> None:
    from reproman.tracing.strace import trace_execution

    session = ShellSession()
    session.set_envvar("PATH", "/nonexistent")
    with pytest.raises(TracingError, match="install"):
        trace_execution(session, ["true"])


def test_cli_trace_of_a_command_that_cannot_start_writes_no_trace(tmp_path: Path) -> None:
    # A trace file for a command that never ran would record an environment that was never used.
    if not _strace_works():
        pytest.skip("strace cannot trace here")
    run = subprocess.run([sys.executable, "-m", "reproman", "execute", "--trace", str(tmp_path / "no-such-program")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("reproman: error:")]
    assert len(errors) == 1 and "did not start" in errors[0], run.stderr
    assert not list(tmp_path.glob("reproman-trace-*")), os.listdir(tmp_path)


# -- CLI -----------------------------------------------------------------------------
@needs_debian
def test_cli_retrace_stdout_and_output_file(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "reproman", "retrace", "/usr/bin/ls", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("# ReproMan Environment Configuration File\n")
    assert "name: coreutils" in run.stdout and str(tmp_path) in run.stdout
    out = tmp_path / "spec.yml"
    run = subprocess.run([sys.executable, "-m", "reproman", "retrace", "-o", str(out), "/usr/bin/ls"],
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == ""
    from reproman.tracing.spec import load_spec

    assert "coreutils" in packages(load_spec(out))


def test_cli_retrace_refuses_an_output_file_in_a_missing_directory(tmp_path: Path) -> None:
    traced = tmp_path / "data.txt"
    traced.write_text("x")
    out = tmp_path / "missing" / "dir" / "out.yml"
    run = subprocess.run([sys.executable, "-m", "reproman", "retrace", "-o", str(out), str(traced)],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert f"directory {out.parent} does not exist" in run.stderr and "Create it first" in run.stderr
    assert not (tmp_path / "missing").exists(), "nothing may be created for a mistyped -o"
    assert run.stdout == ""


def test_spec_write_refuses_a_missing_directory_and_a_directory(tmp_path: Path) -> None:
    from reproman.errors import UsageError
    from reproman.tracing.spec import EnvironmentSpec

    spec = EnvironmentSpec(files=[str(tmp_path)])
    with pytest.raises(UsageError, match="does not exist"):
        spec.write(tmp_path / "nope" / "spec.yml")
    assert not (tmp_path / "nope").exists()
    with pytest.raises(UsageError, match="is a directory"):
        spec.write(tmp_path)
    spec.write(tmp_path / "spec.yml")  # an existing directory is fine
    assert (tmp_path / "spec.yml").read_text().startswith("# ReproMan")


def test_cli_retrace_without_arguments_is_a_usage_error() -> None:
    run = subprocess.run([sys.executable, "-m", "reproman", "retrace"], capture_output=True, text=True)
    assert run.returncode == 2 and "nothing to trace" in run.stderr


def test_api_retrace_accepts_a_session(tmp_path: Path) -> None:
    from reproman import api

    session = CountingSession()
    spec = api.retrace(path=str(tmp_path), resref=session)
    assert spec.files == [str(tmp_path)]
    assert session.commands, "the given session was used"


def test_cli_retrace_refuses_to_replace_an_existing_output_file(tmp_path: Path) -> None:
    """A user's file named by a mistyped -o was replaced by a spec; `jobs --report -o` refused."""
    traced = tmp_path / "data.txt"
    traced.write_text("x")
    out = tmp_path / "notes.yml"
    out.write_text("my notes\n")
    run = subprocess.run([sys.executable, "-m", "reproman", "retrace", "-o", str(out), str(traced)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert f"{out} exists; not replacing it with a spec" in run.stderr and "remove the file first" in run.stderr
    assert out.read_text() == "my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt", "notes.yml"]


def test_retrace_never_replaces_a_file_that_appears_while_tracing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The check before tracing is not enough: the spec lands only where nothing is (user action injected)."""
    from reproman import api
    from reproman.errors import UsageError
    from reproman.tracing import retrace as retrace_module

    traced = tmp_path / "data.txt"
    traced.write_text("x")
    out = tmp_path / "env.yml"
    real = retrace_module.trace_paths

    def user_writes_meanwhile(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        out.write_text("written by the user meanwhile\n")
        return result

    monkeypatch.setattr(retrace_module, "trace_paths", user_writes_meanwhile)
    with pytest.raises(UsageError, match="exists; not replacing it"):
        api.retrace(path=[str(traced)], output_file=str(out))
    assert out.read_text() == "written by the user meanwhile\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt", "env.yml"]  # no temporary file left


def test_retrace_output_is_whole_or_absent_when_writing_fails(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills up mid-write (injected) leaves no half spec and no temporary file."""
    import errno

    from reproman import api
    from reproman.errors import LocalFileError

    traced = tmp_path / "data.txt"
    traced.write_text("x")
    out = tmp_path / "env.yml"

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(LocalFileError, match="No space left on device"):
        api.retrace(path=[str(traced)], output_file=str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]
