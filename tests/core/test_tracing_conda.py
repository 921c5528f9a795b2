"""The conda tracer on a conda installation laid out as conda lays it out.

No conda installer is reachable from these machines, so the fixture writes
what conda would: ``conda-meta/<name>-<version>-<build>.json`` records
(fields as conda 23 writes them, with their ``files`` lists), the files
themselves, ``conda-meta/history``, ``.condarc``, and a pip package (real
pip install) inside an environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_tracing_pip_helpers import CountingSession, make_wheel

from reproman.errors import TracingError
from reproman.resources.shell import ShellSession
from reproman.tracing.conda import CondaTracer, environment_file

CF = "https://conda.anaconda.org/conda-forge"


def _package(prefix: Path, name: str, version: str, build: str, files: dict[str, str],
             channel: str = CF, subdir: str = "linux-64") -> None:
    for rel, text in files.items():
        (prefix / rel).parent.mkdir(parents=True, exist_ok=True)
        (prefix / rel).write_text(text)
    fn = f"{name}-{version}-{build}.tar.bz2"
    record = {
        "build": build, "build_number": 0, "channel": f"{channel}/{subdir}", "constrains": [], "depends": [],
        "extracted_package_dir": f"/pkgs/{fn[:-8]}", "features": "", "files": sorted(files), "fn": fn,
        "license": "BSD-3-Clause", "md5": "0123456789abcdef0123456789abcdef", "name": name,
        "package_tarball_full_path": f"/pkgs/{fn}", "paths_data": {"paths": [], "paths_version": 1},
        "requested_spec": name, "sha256": "ab" * 32, "size": 12345, "subdir": subdir,
        "timestamp": 1680000000000, "url": f"{channel}/{subdir}/{fn}", "version": version,
    }
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / f"{name}-{version}-{build}.json").write_text(json.dumps(record, indent=1))


@pytest.fixture(scope="module")
def conda_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(os.path.realpath(tmp_path_factory.mktemp("conda"))) / "miniconda3"
    _package(root, "python", "3.10.9", "he550d4f_0_cpython",
             {"bin/python3.10": "#!/bin/sh\n", "lib/python3.10/os.py": "# os\n"})
    _package(root, "conda", "23.1.0", "py310hff52083_0",
             {"lib/python3.10/site-packages/conda/__init__.py": "",
              "lib/python3.10/site-packages/conda-23.1.0.dist-info/METADATA":
                  "Metadata-Version: 2.1\nName: conda\nVersion: 23.1.0\n\n",
              "lib/python3.10/site-packages/conda-23.1.0.dist-info/INSTALLER": "conda\n"})
    (root / "conda-meta" / "history").write_text("==> 2023-04-01 10:00:00 <==\n# cmd: constructor\n")
    (root / ".condarc").write_text("channels:\n  - conda-forge\n  - defaults  # fallback\nauto_update_conda: false\n")
    env = root / "envs" / "analysis"
    _package(env, "python", "3.11.0", "h10a6764_1_cpython",
             {"bin/python3.11": "#!/bin/sh\n", "lib/python3.11/os.py": "# os\n"})
    _package(env, "numpy", "1.24.2", "py311h8e6699e_0",
             {"lib/python3.11/site-packages/numpy/__init__.py": "",
              "lib/python3.11/site-packages/numpy/core.py": "",
              "lib/python3.11/site-packages/numpy-1.24.2.dist-info/METADATA":
                  "Metadata-Version: 2.1\nName: numpy\nVersion: 1.24.2\n\n"})
    _package(env, "zlib", "1.2.13", "h166bdaf_4", {"lib/libz.so.1.2.13": "elf"},
             channel="https://repo.anaconda.com/pkgs/main")
    (env / "conda-meta" / "history").write_text(
        "==> 2023-04-02 11:00:00 <==\n# cmd: /opt/conda/bin/conda create -p envs/analysis -c bioconda numpy\n")
    wheel = make_wheel(root.parent / "wheels", "pipextra", "0.7")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--disable-pip-version-check", "--target", str(env / "lib/python3.11/site-packages"),
                    str(wheel)], check=True)
    return root


def test_trace_environment(conda_root: Path) -> None:
    env = conda_root / "envs" / "analysis"
    site = env / "lib/python3.11/site-packages"
    files = [str(site / "numpy/core.py"), str(env / "lib/libz.so.1.2.13"), str(site / "pipextra/__init__.py"),
             str(env / "unowned.txt"), str(conda_root / "bin/python3.10")]
    session = CountingSession()
    result = CondaTracer(session).identify(files)
    assert len(session.commands) == 1
    assert result.claimed == frozenset(files[:3] + files[4:])
    (dist,) = result.distributions
    assert {k: v for k, v in dist.items() if k != "environments"} == {
        "name": "conda", "path": str(conda_root), "conda_version": "23.1.0", "python_version": "3.10.9",
        "platform": "linux-64"}
    envs = {e["name"]: e for e in dist["environments"]}
    assert set(envs) == {"root", "analysis"}
    analysis = envs["analysis"]
    assert analysis["path"] == str(env)
    pkgs = {p["name"]: p for p in analysis["packages"]}
    assert set(pkgs) == {"python", "numpy", "zlib", "pipextra"}
    assert pkgs["numpy"] == {
        "name": "numpy", "version": "1.24.2", "build": "py311h8e6699e_0", "channel_name": "conda-forge",
        "size": 12345, "md5": "0123456789abcdef0123456789abcdef",
        "url": f"{CF}/linux-64/numpy-1.24.2-py311h8e6699e_0.tar.bz2",
        "files": ["lib/python3.11/site-packages/numpy/core.py"]}
    assert pkgs["zlib"]["channel_name"] == "pkgs/main"
    assert pkgs["pipextra"]["installer"] == "pip"
    assert pkgs["pipextra"]["version"] == "0.7"
    assert pkgs["pipextra"]["files"] == ["lib/python3.11/site-packages/pipextra/__init__.py"]
    channels = [c["name"] for c in analysis["channels"]]
    assert channels[:2] == ["conda-forge", "pkgs/main"]
    assert {"defaults", "bioconda"} <= set(channels)
    assert analysis["channels"][0]["url"] == f"{CF}/linux-64"
    assert [p["name"] for p in envs["root"]["packages"] if p.get("files")] == ["python"]


def test_nothing_conda(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    assert CondaTracer(ShellSession()).identify([str(tmp_path / "f")]).distributions == []


def _entry(pkgs: dict[str, str], env: str = "analysis") -> dict:
    return {"name": "conda", "path": "/c", "environments": [{"name": env, "path": f"/c/envs/{env}", "packages": [
        {"name": n, "version": v.split("=")[0], "build": (v.split("=") + [None])[1]} for n, v in pkgs.items()]}]}


def test_compare_and_satisfies() -> None:
    a = _entry({"numpy": "1.24.2=py0", "zlib": "1.2.13=h0"})
    b = _entry({"numpy": "1.24.2=py1", "zlib": "1.2.13=h0", "scipy": "1.10=x"})
    diff = CondaTracer.compare(a, b)
    assert {(d.key, d.left, d.right) for d in diff.differences} == {
        ("numpy", "1.24.2=py0", "1.24.2=py1"), ("scipy", None, "1.10=x")}
    assert CondaTracer.satisfies(a, b).equal  # other build, same version: satisfied
    short = CondaTracer.satisfies(_entry({"numpy": "1.25=py0"}), b)
    assert [(d.key, d.detail) for d in short.differences] == [("numpy", "older")]
    assert [f.key for f in CondaTracer.satisfies(a, _entry({}, env="other")).fields] == ["environment analysis"]


def test_install_without_conda_is_a_clear_error(conda_root: Path) -> None:
    entry = {"name": "conda", "path": "/nonexistent/miniconda", "conda_version": "23.1.0",
             "environments": [{"name": "x", "path": "/nonexistent/miniconda/envs/x", "packages": []}]}
    with pytest.raises(TracingError, match="no conda on the resource"):
        CondaTracer.install(ShellSession(), entry)


def test_environment_file() -> None:
    env = {"name": "analysis", "path": "/c/envs/analysis",
           "channels": [{"name": "conda-forge", "url": CF}],
           "packages": [{"name": "numpy", "version": "1.24.2", "build": "py0"},
                        {"name": "pipextra", "version": "0.7", "installer": "pip"},
                        {"name": "dev", "version": "0.1", "installer": "pip", "editable": True}]}
    assert environment_file(env) == {"name": "analysis", "channels": ["conda-forge"],
                                     "dependencies": ["numpy=1.24.2=py0", {"pip": ["pipextra==0.7"]}]}
