# Runs on the resource: which conda environment and package owns each path.
#
# Reads conda's own records (conda-meta/*.json, conda-meta/history, .condarc)
# and the pip metadata inside the environment, so no conda executable is
# needed on the resource.
#
# Payload: {"paths": [absolute canonical paths]}
# Answer:  {"roots": [{"path", "conda_version", "python_version", "platform",
#                      "environments": [...]}], "claimed": [...]}
import json
import os
import re

# <common>
from reproman.tracing.pyscripts._common import (
    _listdir,
    emit,
    find_root,
    package_record,
    python_site_dirs,
    read_text,
    relpath_under,
    scan_site,
)

# </common>

_SUBDIRS = ("noarch", "linux-64", "linux-32", "linux-aarch64", "linux-ppc64le", "linux-s390x",
            "linux-armv7l", "osx-64", "osx-arm64", "win-64", "win-32")


def _is_prefix(d):
    return os.path.isdir(os.path.join(d, "conda-meta"))


def _channel_name(meta):
    """conda's short channel name ('conda-forge', 'pkgs/main') from a package record."""
    if meta.get("schannel"):
        return meta["schannel"]
    channel = meta.get("channel") or ""
    if not channel:
        return None
    m = re.match(r"^[a-z0-9+.-]+://[^/]+/(.*)$", channel)
    path = m.group(1) if m else channel
    parts = [p for p in path.split("/") if p]
    if parts and (parts[-1] == meta.get("subdir") or parts[-1] in _SUBDIRS):
        parts = parts[:-1]
    if parts and parts[0] == "t" and len(parts) > 2:  # token URLs: /t/<token>/<channel>
        parts = parts[2:]
    return "/".join(parts) or channel


def _channel_url(meta):
    channel = meta.get("channel") or ""
    subdir = meta.get("subdir")
    if subdir and channel.endswith("/" + subdir):
        return channel
    if channel and "://" in channel and subdir:
        return channel.rstrip("/") + "/" + subdir
    return channel or None


def _read_metas(prefix):
    metas = []
    meta_dir = os.path.join(prefix, "conda-meta")
    for name in _listdir(meta_dir):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(meta_dir, name), encoding="utf-8") as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("name"):
            metas.append(meta)
    return metas


def _condarc_channels(path):
    """The 'channels:' list of a .condarc (a tiny YAML subset: '- name' items)."""
    text = read_text(path)
    if not text:
        return []
    out: list = []
    inside = False
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped:
            continue
        if not line[:1].isspace() and not stripped.startswith("-"):
            key, _, rest = stripped.partition(":")
            inside = key.strip() == "channels"
            rest = rest.strip()
            if inside and rest.startswith("["):
                out.extend(c.strip().strip("'\"") for c in rest.strip("[]").split(",") if c.strip())
                inside = False
            continue
        if inside and stripped.lstrip().startswith("-"):
            out.append(stripped.lstrip()[1:].strip().strip("'\""))
    return out


def _history_channels(prefix):
    """Channels named with -c/--channel in the commands recorded in conda-meta/history."""
    out = []
    for line in (read_text(os.path.join(prefix, "conda-meta", "history")) or "").splitlines():
        if not line.startswith("# cmd:"):
            continue
        words = line[len("# cmd:"):].split()
        for i, word in enumerate(words):
            if word in ("-c", "--channel") and i + 1 < len(words):
                out.append(words[i + 1])
            elif word.startswith("--channel="):
                out.append(word.split("=", 1)[1])
    return out


def _root_of(prefix):
    parent = os.path.dirname(prefix)
    if os.path.basename(parent) == "envs" and _is_prefix(os.path.dirname(parent)):
        return os.path.dirname(parent)
    return prefix


def _trace_env(prefix, root, paths):
    metas = _read_metas(prefix)
    owner: dict = {}
    for i, meta in enumerate(metas):
        for f in meta.get("files") or []:
            owner.setdefault(os.path.normpath(os.path.join(prefix, f)), i)
    # pip-installed distributions: those whose metadata no conda package owns.
    pips = []
    for site in python_site_dirs(prefix):
        for dist in scan_site(site):
            if os.path.join(dist["meta_dir"], "METADATA") in owner or dist["meta_dir"] in owner:
                continue
            if dist.get("installer") == "conda":
                continue
            pips.append(dist)
    pip_owner: dict = {}
    for i, dist in enumerate(pips):
        for f in dist.pop("_files"):
            if f not in owner:
                pip_owner.setdefault(f, i)
    found_conda: dict = {}
    found_pip: dict = {}
    claimed = []
    for path in paths:
        if path in owner:
            found_conda.setdefault(owner[path], []).append(path)
            claimed.append(path)
        elif path in pip_owner:
            found_pip.setdefault(pip_owner[path], []).append(path)
            claimed.append(path)
        elif path == prefix or relpath_under(path, prefix).startswith("conda-meta/"):
            claimed.append(path)

    channels = []
    seen = set()

    def add_channel(name, url):
        if name and name not in seen:
            seen.add(name)
            channels.append({"name": name, "url": url})

    packages = []
    for i, meta in enumerate(metas):
        name = _channel_name(meta)
        add_channel(name, _channel_url(meta))
        packages.append({
            "name": meta["name"],
            "version": meta.get("version"),
            "build": meta.get("build") or meta.get("build_string"),
            "channel_name": name,
            "size": meta.get("size"),
            "md5": meta.get("md5"),
            "url": meta.get("url"),
            "files": sorted(relpath_under(f, prefix) for f in found_conda.get(i, [])),
        })
    for i, dist in enumerate(pips):
        packages.append(package_record(dist, found_pip.get(i, []), prefix, extra={"installer": "pip"}))
    rc_files = [os.path.join(prefix, ".condarc"), os.path.join(root, ".condarc"), os.path.expanduser("~/.condarc")]
    for rc in rc_files:
        for name in _condarc_channels(rc):
            add_channel(name, name if "://" in name else None)
    for name in _history_channels(prefix):
        add_channel(name, name if "://" in name else None)
    env = {
        "name": "root" if prefix == root else os.path.basename(prefix),
        "path": prefix,
        "packages": packages,
        "channels": channels,
    }
    return env, claimed, metas


def _root_details(root, metas):
    details = {"conda_version": None, "python_version": None, "platform": None}
    for meta in metas:
        if meta["name"] == "conda":
            details["conda_version"] = meta.get("version")
        elif meta["name"] == "python":
            details["python_version"] = meta.get("version")
        subdir = meta.get("subdir")
        if subdir and subdir != "noarch" and not details["platform"]:
            details["platform"] = subdir
    return details


def main(payload):
    cache: dict = {}
    by_prefix: dict = {}
    for path in payload["paths"]:
        prefix = find_root(path, _is_prefix, cache)
        if prefix:
            by_prefix.setdefault(prefix, []).append(path)
    roots: dict = {}
    claimed = []
    for prefix in sorted(by_prefix):
        root = _root_of(prefix)
        env, env_claimed, metas = _trace_env(prefix, root, by_prefix[prefix])
        claimed.extend(env_claimed)
        entry = roots.get(root)
        if entry is None:
            root_metas = metas if root == prefix else _read_metas(root)
            entry = {"path": root}
            entry.update(_root_details(root, root_metas))
            entry["environments"] = []
            roots[root] = entry
        entry["environments"].append(env)
    emit({"roots": [roots[r] for r in sorted(roots)], "claimed": claimed})
