# Runs on the resource: which virtualenv / system site-packages distribution owns each path.
#
# Payload: {"mode": "venv" | "pip", "paths": [absolute canonical paths]}
# Answer:  {"environments": [...], "claimed": [...], "tool": {...}}
import os
import shutil
import sys

# <common>
from reproman.tracing.pyscripts._common import (
    emit,
    find_root,
    package_record,
    python_site_dirs,
    read_text,
    relpath_under,
    scan_site,
)

# </common>

_VENV_FILES = ("pyvenv.cfg", "bin/activate", "bin/activate.csh", "bin/activate.fish",
               "bin/activate.nu", "bin/activate.ps1", "bin/Activate.ps1", "bin/activate_this.py")


def _venv_made(rel):
    """Files that creating the environment makes (recreated by install, not packages)."""
    return rel in _VENV_FILES or (rel.startswith("bin/python") and "/" not in rel[4:]) or rel in ("lib64", "bin")


def _is_venv(d):
    return os.path.isfile(os.path.join(d, "pyvenv.cfg"))


def _read_cfg(root):
    cfg = {}
    for line in (read_text(os.path.join(root, "pyvenv.cfg")) or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            cfg[key.strip()] = value.strip()
    return cfg


def _short_version(text):
    """'3.11.7.final.0' -> '3.11.7' (the form 'python --version' prints)."""
    if not text:
        return None
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(part)
        if len(parts) == 3:
            break
    return ".".join(parts) or text


def _owners(dists):
    owner: dict = {}
    for i, dist in enumerate(dists):
        for f in dist.pop("_files"):
            owner.setdefault(f, i)
    return owner


def trace_venvs(paths):
    cache: dict = {}
    by_root: dict = {}
    for path in paths:
        root = find_root(path, _is_venv, cache)
        if root:
            by_root.setdefault(root, []).append(path)
    environments = []
    claimed = []
    venv_version = None
    for root in sorted(by_root):
        cfg = _read_cfg(root)
        venv_version = venv_version or cfg.get("virtualenv")
        dists = []
        for site in python_site_dirs(root):
            dists.extend(scan_site(site))
        owner = _owners(dists)
        found: dict = {}
        for path in by_root[root]:
            idx = owner.get(path)
            if idx is not None:
                found.setdefault(idx, []).append(path)
                claimed.append(path)
            elif path == root or _venv_made(relpath_under(path, root)):
                claimed.append(path)
        packages = [
            package_record(dist, found.get(i, []), root, extra={"local": True})
            for i, dist in enumerate(dists)
        ]
        environments.append({
            "path": root,
            "python_version": _short_version(cfg.get("version_info") or cfg.get("version")),
            "system_site_packages": cfg.get("include-system-site-packages", "").lower() == "true",
            "packages": packages,
        })
    tool = {"venv_version": venv_version, "path": shutil.which("virtualenv")} if environments else {}
    return {"environments": environments, "claimed": claimed, "tool": tool}


def _site_of(path):
    parts = path.split("/")
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in ("site-packages", "dist-packages"):
            return "/".join(parts[: i + 1])
    return None


def _site_python(site):
    """(prefix, python version 'X.Y' or None, interpreter path or None) of a site dir."""
    pydir = os.path.dirname(site)
    prefix = os.path.dirname(os.path.dirname(pydir))
    name = os.path.basename(pydir)
    version = name[len("python"):] if name.startswith("python") else ""
    if version.count(".") != 1:
        version = ""
    if not version:
        # Debian's /usr/lib/python3/dist-packages serves the default python3.
        import site as site_module  # not imported at startup: the launcher passes -S

        if site in [os.path.realpath(p) for p in site_module.getsitepackages()]:
            version = "{}.{}".format(*sys.version_info[:2])
    python = None
    for candidate in (["python" + version] if version else []) + ["python3"]:
        exe = os.path.join(prefix, "bin", candidate)
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            python = exe
            break
    return prefix, version or None, python


def trace_system(paths):
    by_site: dict = {}
    for path in paths:
        site = _site_of(path)
        if site:
            by_site.setdefault(site, []).append(path)
    environments = []
    claimed = []
    for site in sorted(by_site):
        prefix, version, python = _site_python(site)
        # Environments with their own tracer (venv, conda) are not "system" pip.
        if os.path.exists(os.path.join(prefix, "pyvenv.cfg")) or os.path.isdir(os.path.join(prefix, "conda-meta")):
            continue
        dists = scan_site(site)
        owner = _owners(dists)
        found: dict = {}
        for path in by_site[site]:
            idx = owner.get(path)
            if idx is not None:
                found.setdefault(idx, []).append(path)
                claimed.append(path)
        if not found:
            continue
        packages = [package_record(dists[i], found[i], site) for i in sorted(found)]
        environments.append({
            "path": site,
            "python_version": version,
            "python": python,
            "packages": packages,
        })
    return {"environments": environments, "claimed": claimed, "tool": {}}


def main(payload):
    paths = payload["paths"]
    if payload.get("mode") == "pip":
        emit(trace_system(paths))
    else:
        emit(trace_venvs(paths))
