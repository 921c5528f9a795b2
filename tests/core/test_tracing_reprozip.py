"""``retrace --spec``: the files of a ReproZip ``config.yml``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reproman import api
from reproman.errors import SpecError
from reproman.tracing.reprozip import pycache_source, read_reprozip

DEBIAN = shutil.which("dpkg-query") is not None and os.path.exists("/var/lib/dpkg/status")


def write_config(path: Path, data_file: Path) -> Path:
    """A ReproZip trace as ``reprozip trace`` writes it (version 0.8 layout)."""
    path.write_text(f"""\
# ReproZip configuration file
version: "0.8"
runs:
# Run 0
- architecture: x86_64
  argv: [ls, -l]
  binary: /usr/bin/ls
  distribution: [debian, '12']
  environ: {{TERM: xterm}}
  exitcode: 0
  id: run0
  workingdir: /tmp
inputs_outputs:
- name: results
  path: /tmp/results.txt
  written_by_runs: [0]
packages:
  - name: "coreutils"
    version: "9.1-1"
    size: 18061312
    packfiles: true
    files:
      # Total files used: 147.65 KB
      - "/usr/bin/ls" # 147.65 KB
  - name: "libc6"
    version: "2.36-9"
    packfiles: true
    files:
      - "/lib/x86_64-linux-gnu/libc.so.6"
other_files:
  - "{data_file}"
  - "/usr/lib/python3/dist-packages/__pycache__/six.cpython-311.pyc"
  - "/usr/bin/../bin/ls"
""")
    return path


def test_pycache_source() -> None:
    assert pycache_source("/a/b/__pycache__/mod.cpython-311.pyc") == "/a/b/mod.py"
    assert pycache_source("/a/b/__pycache__/mod.cpython-311.opt-1.pyc") == "/a/b/mod.py"
    assert pycache_source("/a/b/mod.pyc") == "/a/b/mod.py"
    assert pycache_source("/a/b/mod.py") is None


def test_read_reprozip_lists_packaged_and_other_files(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    config = write_config(tmp_path / "config.yml", data)
    assert read_reprozip(config) == [
        "/usr/bin/ls", "/lib/x86_64-linux-gnu/libc.so.6", str(data), "/usr/lib/python3/dist-packages/six.py",
    ]


def test_not_a_reprozip_config(tmp_path: Path) -> None:
    path = tmp_path / "spec.yml"
    path.write_text("version: 0.0.1\ndistributions: []\n")
    with pytest.raises(SpecError, match="does not look like a ReproZip"):
        read_reprozip(path)
    path.write_text("runs: [\n")
    with pytest.raises(SpecError, match=f"{path}:2"):
        read_reprozip(path)


@pytest.mark.skipif(not DEBIAN, reason="needs a Debian system (dpkg)")
def test_retrace_spec_then_paths(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"\0")
    extra = tmp_path / "extra.txt"
    extra.write_text("x")
    config = write_config(tmp_path / "config.yml", data)
    spec = api.retrace(path=[str(extra)], spec=str(config))
    debian = spec.get_distribution("debian")
    assert debian is not None
    owners = {p["name"]: p["files"] for p in debian["packages"]}
    assert "/usr/bin/ls" in owners["coreutils"]
    assert any(p.endswith("libc.so.6") for p in owners["libc6"])
    assert str(data) in spec.files and str(extra) in spec.files
    assert "/tmp/results.txt" not in spec.files, "inputs and outputs are the run's data, not its environment"


@pytest.mark.skipif(not DEBIAN, reason="needs a Debian system (dpkg)")
def test_cli_retrace_spec_writes_output_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", tmp_path / "data.bin")
    out = tmp_path / "env.yml"
    run = subprocess.run([sys.executable, "-m", "reproman", "retrace", "--spec", str(config), "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert text.startswith("# ReproMan Environment Configuration File")
    assert "name: coreutils" in text and f"- {tmp_path}/data.bin" in text
