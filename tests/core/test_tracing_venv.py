"""The venv tracer on real virtualenvs made by ``python -m venv``."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest
from test_tracing_pip_helpers import CountingSession, make_venv, make_wheel, pip_into

from reproman.resources.shell import ShellSession
from reproman.tracing.venv import VenvTracer


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding two wheel-installed packages and one legacy editable (egg-link) project."""
    base = Path(os.path.realpath(tmp_path_factory.mktemp("venvs")))
    wheels = base / "wheels"
    env = make_venv(base / "env")
    pip_into(env / "bin" / "python",
             str(make_wheel(wheels, "alpha", "1.0", {"alpha/__init__.py": "A = 1\n", "alpha/util.py": "U = 1\n"})),
             str(make_wheel(wheels, "beta_pkg", "2.5.1")))
    site = next((env / "lib").glob("python*/site-packages"))
    project = base / "devproj"
    (project / "devproj.egg-info").mkdir(parents=True)
    (project / "devproj.egg-info" / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: devproj\nVersion: 0.3\n")
    (project / "devproj.py").write_text("D = 1\n")
    (site / "devproj.egg-link").write_text(f"{project}\n.\n")
    return env


def _entry(result):  # type: ignore[no-untyped-def]
    assert len(result.distributions) == 1
    return result.distributions[0]


def test_packages_and_files(venv: Path) -> None:
    site = next((venv / "lib").glob("python*/site-packages"))
    files = [str(site / "alpha" / "__init__.py"), str(site / "alpha" / "util.py"),
             str(site / "beta_pkg" / "__init__.py"), str(venv / "pyvenv.cfg"), "/etc/hostname-nope"]
    result = VenvTracer(ShellSession()).identify(files)
    entry = _entry(result)
    assert entry["name"] == "venv"
    (env,) = entry["environments"]
    assert env["path"] == str(venv)
    assert env["python_version"] == platform.python_version()
    pkgs = {p["name"]: p for p in env["packages"]}
    assert set(pkgs) == {"alpha", "beta_pkg", "devproj"}
    rel = os.path.relpath(site, venv)
    assert pkgs["alpha"]["files"] == [f"{rel}/alpha/__init__.py", f"{rel}/alpha/util.py"]
    assert pkgs["alpha"]["version"] == "1.0" and pkgs["alpha"]["local"] is True
    assert pkgs["alpha"]["location"] == str(site)
    assert "editable" not in pkgs["alpha"]  # false values are left out, as the old tool did
    assert pkgs["beta_pkg"]["version"] == "2.5.1"
    assert pkgs["devproj"]["editable"] is True
    assert pkgs["devproj"]["location"] == str(venv.parent / "devproj")
    assert pkgs["devproj"]["version"] == "0.3"
    assert "files" not in pkgs["devproj"]
    assert result.claimed == frozenset(files[:4])


def test_one_remote_command_for_many_files(venv: Path) -> None:
    site = next((venv / "lib").glob("python*/site-packages"))
    files = [str(p) for p in site.rglob("*") if p.is_file()] * 3
    session = CountingSession()
    result = VenvTracer(session).identify(files)
    assert len(session.commands) == 1
    assert len(result.claimed) == len(set(files))


def test_files_outside_any_venv_are_left(tmp_path: Path) -> None:
    stray = tmp_path / "x.py"
    stray.write_text("")
    result = VenvTracer(ShellSession()).identify([str(stray)])
    assert result.distributions == [] and not result.claimed


def test_paths_with_odd_characters(tmp_path: Path) -> None:
    env = make_venv(Path(os.path.realpath(tmp_path)) / "it's a \"venv\" $HOME")
    pip_into(env / "bin" / "python", str(make_wheel(tmp_path / "w", "gamma", "0.1")))
    site = next((env / "lib").glob("python*/site-packages"))
    result = VenvTracer(ShellSession()).identify([str(site / "gamma" / "__init__.py")])
    (env_entry,) = _entry(result)["environments"]
    assert env_entry["path"] == str(env)
    assert [p["name"] for p in env_entry["packages"] if p.get("files")] == ["gamma"]


def _spec(packages: dict[str, str], path: str = "/e", python: str = "3.11.7") -> dict:
    return {"name": "venv", "environments": [{"path": path, "python_version": python, "packages": [
        {"name": n, "version": v, "local": True} for n, v in packages.items()]}]}


def test_compare() -> None:
    same = VenvTracer.compare(_spec({"a": "1.0"}), _spec({"a": "1.0"}))
    assert same.equal
    diff = VenvTracer.compare(_spec({"a": "1.0", "b": "2"}), _spec({"a": "1.1", "c": "3"}))
    assert {(d.key, d.left, d.right) for d in diff.differences} == {
        ("a", "1.0", "1.1"), ("b", "2", None), ("c", None, "3")}


def test_satisfies() -> None:
    req = _spec({"a": "1.0", "Foo_Bar": "2.0"})
    assert VenvTracer.satisfies(req, _spec({"a": "1.0.1", "foo-bar": "2.0", "extra": "1"})).equal
    short = VenvTracer.satisfies(req, _spec({"a": "1.0rc1"}))
    assert {(d.key, d.detail) for d in short.differences} == {("a", "older"), ("foo-bar", "missing")}
    other_python = VenvTracer.satisfies(req, _spec({"a": "1", "foo-bar": "2"}, python="3.10.2"))
    assert [f.key for f in other_python.fields] == ["python_version"]
    assert VenvTracer.satisfies(req, _spec({"a": "1", "foo-bar": "2"}, python="3.11.2")).equal
