# Runs on the resource: which git or svn working copy tracks each path.
#
# Files are grouped by working-copy root (found by looking for .git / .svn
# while walking up, with a per-directory cache); git/svn then run a fixed
# number of times per repository, all inside this one remote command.
#
# Payload: {"vcs": "git" | "svn", "paths": [absolute canonical paths]}
# Answer:  {"packages": [...], "claimed": [...]}
import os
import subprocess

# <common>
from reproman.tracing.pyscripts._common import emit, find_root, relpath_under

# </common>

_ENV = dict(os.environ, LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")


def _run(cmd, cwd):
    """(exit code, stdout) of a command; never raises for a failing command."""
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_ENV)
    except OSError:
        return 127, ""
    out, _err = proc.communicate()
    return proc.returncode, out.decode("utf-8", "replace")


def _claim(root, paths, tracked):
    """Paths under ``root`` that the repository tracks (or the root itself), relative and absolute."""
    dirs = None
    files = []
    claimed = []
    for path in paths:
        rel = relpath_under(path, root)
        if path == root:
            claimed.append(path)
            continue
        if rel in tracked:
            claimed.append(path)
            if not os.path.isdir(path):  # svn tracks directories too; 'files' lists files
                files.append(rel)
            continue
        if os.path.isdir(path):
            if dirs is None:
                dirs = set()
                for t in tracked:
                    parent = os.path.dirname(t)
                    while parent and parent not in dirs:
                        dirs.add(parent)
                        parent = os.path.dirname(parent)
            if rel in dirs:
                claimed.append(path)
    return sorted(files), claimed


# -- git --------------------------------------------------------------------------

def _is_git(d):
    return os.path.exists(os.path.join(d, ".git"))


def _git(root, *args):
    return _run(["git", "-C", root] + list(args), None)


def _git_repo(root, paths):
    rc, out = _git(root, "ls-files", "-z")
    if rc != 0:
        return None, []
    tracked = set(p for p in out.split("\0") if p)
    files, claimed = _claim(root, paths, tracked)
    rc, out = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    hexsha = out.strip() if rc == 0 and out.strip() else None
    rc, out = _git(root, "symbolic-ref", "--short", "-q", "HEAD")
    branch = out.strip() if rc == 0 and out.strip() else None
    root_hexsha = describe = None
    if hexsha:
        rc, out = _git(root, "rev-list", "--max-parents=0", "HEAD")
        lines = out.split()
        root_hexsha = lines[-1] if rc == 0 and lines else None
        rc, out = _git(root, "describe", "--tags")
        describe = out.strip() if rc == 0 and out.strip() else None
    rc, out = _git(root, "config", "--get-regexp", r"^(remote|branch)\.")
    remotes: dict = {}
    tracked_remote = None
    for line in out.splitlines() if rc == 0 else []:
        key, _, value = line.partition(" ")
        section, _, rest = key.partition(".")
        name, _, var = rest.rpartition(".")
        if section == "remote" and var in ("url", "pushurl"):
            remotes.setdefault(name, {})[var] = value
        elif section == "branch" and var == "remote" and name == branch:
            tracked_remote = value
    if hexsha and remotes:
        rc, out = _git(root, "for-each-ref", "--contains", hexsha, "--format=%(refname)", "refs/remotes/")
        names = sorted(remotes, key=len, reverse=True)
        for ref in out.splitlines() if rc == 0 else []:
            short = ref[len("refs/remotes/"):]
            for name in names:
                if short.startswith(name + "/") and not short.endswith("/HEAD"):
                    remotes[name]["contains"] = True
                    break
    rc, out = _git(root, "status", "--porcelain", "--untracked-files=no")
    dirty = rc == 0 and bool(out.strip())
    repo = {
        "path": root,
        "files": files,
        "root_hexsha": root_hexsha,
        "branch": branch,
        "hexsha": hexsha,
        "describe": describe,
        "tracked_remote": tracked_remote,
        "remotes": remotes,
        "dirty": dirty,
    }
    return repo, claimed


# -- svn --------------------------------------------------------------------------

def _is_svn(d):
    return os.path.isdir(os.path.join(d, ".svn"))


def _svn_tracked(root):
    """Versioned paths from the working copy's own database (no server round trip)."""
    db = os.path.join(root, ".svn", "wc.db")
    try:
        import sqlite3

        conn = sqlite3.connect("file:" + db + "?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT DISTINCT local_relpath FROM nodes WHERE presence IN ('normal', 'incomplete')"
            ).fetchall()
        finally:
            conn.close()
        return set(r[0] for r in rows if r[0])
    except Exception:
        pass
    # Fallback without sqlite3: the verbose status lists every versioned path.
    import xml.etree.ElementTree as ET

    rc, out = _run(["svn", "status", "-v", "--xml", root], None)
    tracked = set()
    if rc == 0:
        for entry in ET.fromstring(out).iter("entry"):
            status = entry.find("wc-status")
            if status is not None and status.get("item") not in ("unversioned", "ignored", "external"):
                rel = relpath_under(entry.get("path", ""), root)
                if rel and rel != ".":
                    tracked.add(rel)
    return tracked


def _svn_repo(root, paths):
    import xml.etree.ElementTree as ET

    rc, out = _run(["svn", "info", "--xml", root], None)
    if rc != 0:
        return None, []
    entry = ET.fromstring(out).find("entry")
    if entry is None:
        return None, []

    def text(tag):
        node = entry.find(tag)
        return node.text if node is not None else None

    tracked = _svn_tracked(root)
    files, claimed = _claim(root, paths, tracked)
    revision = entry.get("revision")
    rc, out = _run(["svn", "status", "-q", root], None)
    dirty = rc == 0 and bool(out.strip())
    repo = {
        "path": root,
        "files": files,
        "revision": int(revision) if revision and revision.isdigit() else revision,
        "url": text("url"),
        "root_url": text("repository/root"),
        "relative_url": text("relative-url"),
        "uuid": text("repository/uuid"),
        "dirty": dirty,
    }
    return repo, claimed


def main(payload):
    is_root, describe = (_is_svn, _svn_repo) if payload.get("vcs") == "svn" else (_is_git, _git_repo)
    cache: dict = {}
    by_root: dict = {}
    for path in payload["paths"]:
        root = find_root(path, is_root, cache)
        if root:
            by_root.setdefault(root, []).append(path)
    packages = []
    claimed = []
    for root in sorted(by_root):
        repo, repo_claimed = describe(root, by_root[root])
        if repo is not None and repo_claimed:
            packages.append(repo)
            claimed.extend(repo_claimed)
    emit({"packages": packages, "claimed": claimed})
