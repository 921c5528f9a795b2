"""The git tracer on real repositories (a bare "upstream", clones, branches, dirty trees)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_tracing_pip_helpers import CountingSession

from reproman.resources.shell import ShellSession
from reproman.tracing.vcs import GitTracer

ENV = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T",
       "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **ENV}).stdout.strip()


def commit(repo: Path, name: str, text: str) -> str:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"add {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def upstream(tmp_path: Path) -> tuple[Path, Path]:
    """(bare upstream, a clone of it with two commits pushed and one more local)."""
    base = Path(os.path.realpath(tmp_path))
    bare = base / "upstream.git"
    git(base, "init", "-q", "--bare", "-b", "main", str(bare))
    work = base / "work"
    git(base, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-b", "main")
    commit(work, "a.py", "A\n")
    commit(work, "sub/b.py", "B\n")
    git(work, "push", "-q", "-u", "origin", "main")
    git(work, "tag", "v1.0")
    return bare, work


def test_trace_repository(upstream: tuple[Path, Path]) -> None:
    bare, work = upstream
    (work / "untracked.txt").write_text("u")
    files = [str(work / "a.py"), str(work / "sub" / "b.py"), str(work / "untracked.txt"), str(work / "sub")]
    session = CountingSession()
    result = GitTracer(session).identify(files)
    assert len(session.commands) == 1
    assert result.claimed == frozenset([files[0], files[1], files[3]])
    (entry,) = result.distributions
    assert entry["name"] == "git"
    (repo,) = entry["packages"]
    head = git(work, "rev-parse", "HEAD")
    assert repo == {
        "path": str(work),
        "files": ["a.py", "sub/b.py"],
        "root_hexsha": git(work, "rev-list", "--max-parents=0", "HEAD"),
        "branch": "main",
        "hexsha": head,
        "describe": "v1.0",
        "tracked_remote": "origin",
        "remotes": {"origin": {"url": str(bare), "contains": True}},
    }


def test_dirty_and_unpushed(upstream: tuple[Path, Path]) -> None:
    _bare, work = upstream
    commit(work, "c.py", "C\n")
    (work / "a.py").write_text("changed\n")
    git(work, "remote", "add", "other", "https://example.org/other.git")
    (repo,) = GitTracer(ShellSession()).identify([str(work / "a.py")]).distributions[0]["packages"]
    assert repo["dirty"] is True
    assert repo["remotes"] == {"origin": {"url": str(upstream[0])}, "other": {"url": "https://example.org/other.git"}}
    assert repo["describe"].startswith("v1.0-1-g")


def test_repositories_grouped_by_root(tmp_path: Path) -> None:
    base = Path(os.path.realpath(tmp_path))
    paths = []
    for name in ("one", "two"):
        repo = base / name
        git(base, "init", "-q", str(repo))
        for i in range(30):
            (repo / f"f{i}.txt").write_text(str(i))
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "x")
        paths += [str(repo / f"f{i}.txt") for i in range(30)]
    session = CountingSession()
    result = GitTracer(session).identify(paths)
    assert len(session.commands) == 1
    assert [r["path"] for r in result.distributions[0]["packages"]] == [str(base / "one"), str(base / "two")]
    assert len(result.claimed) == 60


def test_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    assert GitTracer(ShellSession()).identify([str(tmp_path / "f")]).distributions == []


def _entry(work: Path, hexsha: str, **extra: object) -> dict:
    root = git(work, "rev-list", "--max-parents=0", "HEAD")
    return {"name": "git", "packages": [{"path": str(work), "root_hexsha": root, "hexsha": hexsha,
                                         "branch": "main", **extra}]}


def test_compare_and_satisfies(upstream: tuple[Path, Path]) -> None:
    _bare, work = upstream
    old = git(work, "rev-parse", "HEAD~1")
    new = git(work, "rev-parse", "HEAD")
    assert GitTracer.compare(_entry(work, new), _entry(work, new)).equal
    diff = GitTracer.compare(_entry(work, old), _entry(work, new, dirty=True))
    assert [(d.left, d.right, d.detail) for d in diff.differences] == [(old, new, "dirty: False vs True")]
    assert GitTracer.satisfies(_entry(work, old), _entry(work, new)).equal  # descendant
    back = GitTracer.satisfies(_entry(work, new), _entry(work, old))
    assert [d.detail for d in back.differences] == ["not a descendant of the required commit"]
    dirty = GitTracer.satisfies(_entry(work, new), _entry(work, new, dirty=True))
    assert [d.detail for d in dirty.differences] == ["has uncommitted changes"]
    # Same project cloned elsewhere: paired by root commit.
    moved = _entry(work, new)
    moved["packages"][0]["path"] = "/elsewhere"
    assert GitTracer.satisfies(_entry(work, old), moved).equal
    missing = GitTracer.satisfies(_entry(work, new), {"name": "git", "packages": []})
    assert [d.detail for d in missing.differences] == ["missing"]
