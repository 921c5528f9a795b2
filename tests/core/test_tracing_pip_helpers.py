"""Helpers for the Python-environment tracer tests: hand-built wheels, a counting session.

Wheels are written byte by byte here (a zip with a ``.dist-info``), so the
tests install real packages with real pip without reaching any index.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from reproman.resources.session import CommandResult
from reproman.resources.shell import ShellSession


def make_wheel(directory: Path, name: str, version: str, modules: dict[str, str] | None = None) -> Path:
    """A pure-Python wheel ``name-version-py3-none-any.whl`` with ``modules`` ({path: source})."""
    modules = modules or {f"{name}/__init__.py": f"VERSION = {version!r}\n"}
    dist = f"{name}-{version}.dist-info"
    files = dict(modules)
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n"
    files[f"{dist}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: reproman-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def pip_into(python: str | Path, *args: str) -> None:
    """Run this interpreter's pip for another interpreter (fast: the target needs no pip)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-deps",
         "--disable-pip-version-check", "-q", *args],
        check=True,
    )


def make_venv(path: Path, with_pip: bool = False) -> Path:
    cmd = [sys.executable, "-m", "venv"] + ([] if with_pip else ["--without-pip"]) + [str(path)]
    subprocess.run(cmd, check=True)
    return path


class CountingSession(ShellSession):
    """The local shell, counting commands: tracers must not cost one per file."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []

    def _execute(self, command: str, stdin: bytes | None = None) -> CommandResult:
        self.commands.append(command)
        return super()._execute(command, stdin=stdin)


def test_make_wheel_installs(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "tinypkg", "1.2")
    target = tmp_path / "target"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "-q",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)], check=True)
    assert (target / "tinypkg" / "__init__.py").read_text() == "VERSION = '1.2'\n"
    assert (target / "tinypkg-1.2.dist-info" / "RECORD").exists()
