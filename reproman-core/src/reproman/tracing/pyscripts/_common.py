# Helpers shared by the scripts that tracers run on the resource.
#
# This text is inlined into each entry script before it is shipped (see
# reproman.tracing.pyscripts), so it must be plain module-level code that runs
# on Python 3.6+ with the standard library only.
import base64
import csv
import json
import os
import sys


def _load_payload(blob):
    """Decode the base64 JSON payload appended by run_script."""
    return json.loads(base64.b64decode(blob.encode("ascii")).decode("utf-8"))


def emit(obj):
    """Write the one JSON answer the caller parses."""
    sys.stdout.write(json.dumps(obj))
    sys.stdout.flush()


def find_root(path, is_root, cache):
    """Nearest ancestor directory of ``path`` (itself if a directory) with ``is_root``.

    ``cache`` maps directories already visited to their answer, so N files in
    D directories cost about D ``is_root`` checks, not N times the depth.
    """
    d = path if os.path.isdir(path) else os.path.dirname(path)
    visited = []
    root = None
    while True:
        if d in cache:
            root = cache[d]
            break
        visited.append(d)
        if is_root(d):
            root = d
            break
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    for v in visited:
        cache[v] = root
    return root


def relpath_under(path, root):
    """``path`` relative to ``root`` when inside it, else ``path`` unchanged."""
    prefix = root.rstrip("/") + "/"
    if path.startswith(prefix):
        return path[len(prefix):]
    if path == root:
        return "."
    return path


def read_headers(path):
    """The header fields of an RFC 822 style METADATA/PKG-INFO file (first wins)."""
    out = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line in ("\n", "\r\n"):
                    break
                if line[:1] in (" ", "\t"):
                    continue
                key, sep, value = line.partition(":")
                key = key.strip()
                if sep and key not in out:
                    out[key] = value.strip()
    except OSError:
        pass
    return out


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _file_url_path(url):
    if url and url.startswith("file://"):
        try:
            from urllib.parse import unquote
        except ImportError:  # pragma: no cover - Python 2 is not supported
            return url[7:]
        return unquote(url[7:])
    return None


def _dist_info(site, full):
    meta = read_headers(os.path.join(full, "METADATA"))
    if not meta.get("Name"):
        return None
    files = []
    record = os.path.join(full, "RECORD")
    try:
        with open(record, encoding="utf-8", errors="replace", newline="") as handle:
            prefix = site + "/"
            for row in csv.reader(handle):
                if not row or not row[0]:
                    continue
                rel = row[0]
                # normpath only where needed ("../../bin/x"): it is most of the cost.
                if ".." in rel or rel.startswith("/") or "./" in rel:
                    files.append(os.path.normpath(os.path.join(site, rel)))
                else:
                    files.append(prefix + rel)
    except OSError:
        pass
    editable = False
    location = site
    url = None
    direct = read_text(os.path.join(full, "direct_url.json"))
    if direct:
        try:
            info = json.loads(direct)
        except ValueError:
            info = {}
        url = info.get("url")
        if (info.get("dir_info") or {}).get("editable"):
            editable = True
            location = _file_url_path(url) or site
    installer = (read_text(os.path.join(full, "INSTALLER")) or "").strip() or None
    return {
        "name": meta["Name"],
        "version": meta.get("Version"),
        "editable": editable,
        "location": location,
        "installer": installer,
        "url": url,
        "meta_dir": full,
        "_files": files,
    }


def _egg_info(site, full):
    if os.path.isdir(full):
        meta = read_headers(os.path.join(full, "PKG-INFO"))
        files = []
        listing = read_text(os.path.join(full, "installed-files.txt"))
        for line in (listing or "").splitlines():
            if line.strip():
                files.append(os.path.normpath(os.path.join(full, line.strip())))
        files.extend(os.path.join(full, n) for n in _listdir(full))
    else:
        meta = read_headers(full)
        files = [full]
    if not meta.get("Name"):
        return None
    return {
        "name": meta["Name"],
        "version": meta.get("Version"),
        "editable": False,
        "location": site,
        "installer": None,
        "url": None,
        "meta_dir": full,
        "_files": files,
    }


def _egg_link(site, full):
    text = read_text(full) or ""
    lines = text.splitlines()
    project = lines[0].strip() if lines else ""
    if not project:
        return None
    project = os.path.normpath(os.path.join(site, project))
    name = os.path.basename(full)[: -len(".egg-link")]
    version = None
    for entry in _listdir(project):
        if entry.endswith(".egg-info"):
            meta = read_headers(os.path.join(project, entry, "PKG-INFO"))
            name = meta.get("Name") or name
            version = meta.get("Version")
            break
    return {
        "name": name,
        "version": version,
        "editable": True,
        "location": project,
        "installer": None,
        "url": None,
        "meta_dir": full,
        "_files": [full],
    }


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def normalize_name(name):
    """PEP 503 normalised project name (so 'Foo_Bar' and 'foo-bar' are one package)."""
    out: list = []
    dash = False
    for ch in name.lower():
        if ch in "-_.":
            dash = True
            continue
        if dash and out:
            out.append("-")
        dash = False
        out.append(ch)
    return "".join(out)


def scan_site(site):
    """Every distribution installed in one site-packages directory.

    Reads the installed metadata directly (what ``pip show -f`` reads) for
    all distributions at once: cheaper than one ``pip`` process per package.
    """
    dists = []
    seen = set()
    entries = _listdir(site)
    # dist-info first: when a project has several records, it is authoritative.
    ordered = [e for e in entries if e.endswith(".dist-info")]
    ordered += [e for e in entries if e.endswith(".egg-info") or e.endswith(".egg-link")]
    for entry in ordered:
        full = os.path.join(site, entry)
        if entry.endswith(".dist-info"):
            dist = _dist_info(site, full)
        elif entry.endswith(".egg-info"):
            dist = _egg_info(site, full)
        else:
            dist = _egg_link(site, full)
        if not dist:
            continue
        key = normalize_name(dist["name"])
        if key in seen:
            continue
        seen.add(key)
        dists.append(dist)
    return dists


def python_site_dirs(prefix):
    """site-packages/dist-packages directories of an installation prefix (real paths)."""
    found = []
    seen = set()
    for lib in ("lib", "lib64"):
        base = os.path.join(prefix, lib)
        for name in _listdir(base):
            if not name.startswith("python"):
                continue
            for leaf in ("site-packages", "dist-packages"):
                candidate = os.path.join(base, name, leaf)
                if os.path.isdir(candidate):
                    real = os.path.realpath(candidate)
                    if real not in seen:
                        seen.add(real)
                        found.append(real)
    return found


def package_record(dist, found_files, root, extra=None):
    """The spec mapping of one package, with the old ReproMan's field names."""
    rec = {
        "name": dist["name"],
        "version": dist["version"],
    }
    if extra:
        rec.update(extra)
    rec["location"] = dist["location"]
    rec["editable"] = dist["editable"]
    rec["files"] = sorted(relpath_under(f, root) for f in found_files)
    return rec
