"""A fetched directory with nothing local in its way lands in one rename, under the same rules as entry by entry."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reproman.resources import landing


def _staged(tmp_path: Path) -> Path:
    staged = tmp_path / "stage" / "results"
    (staged / "sub" / "deeper").mkdir(parents=True)
    (staged / "a.txt").write_text("a\n")
    (staged / "sub" / "b.txt").write_text("b\n")
    (staged / "sub" / "deeper" / "c.txt").write_text("c\n")
    os.symlink("a.txt", staged / "link")
    return staged


def test_a_new_directory_lands_whole_with_every_file_reported(tmp_path: Path) -> None:
    staged = _staged(tmp_path)
    target = tmp_path / "home" / "out" / "results"
    steps, _ = landing.plan([(staged, target)], root=tmp_path / "home")
    assert len(steps) == 1 and steps[0].whole is not None  # one step, not one per entry
    report = landing.land([(staged, target)], landing.Landing(keep_root=tmp_path / "home"))
    assert sorted(p.relative_to(target).as_posix() for p in report.written) == [
        "a.txt", "link", "sub/b.txt", "sub/deeper/c.txt"]
    assert (target / "sub" / "deeper" / "c.txt").read_text() == "c\n"
    assert os.readlink(target / "link") == "a.txt"
    assert not staged.exists()


def test_directories_that_arrive_unwritable_are_made_writable_as_entry_by_entry(tmp_path: Path) -> None:
    # A tree copied from a read-only directory on the resource must not land
    # read-only: the next fetch into it would fail.
    staged = _staged(tmp_path)
    os.chmod(staged / "sub" / "deeper", 0o555)
    os.chmod(staged, 0o555)
    target = tmp_path / "home" / "results"
    landing.land([(staged, target)])
    for directory in (target, target / "sub" / "deeper"):
        assert stat.S_IMODE(directory.stat().st_mode) & 0o700 == 0o700


def test_a_tree_carrying_a_git_directory_still_skips_it(tmp_path: Path) -> None:
    staged = _staged(tmp_path)
    (staged / "sub" / ".git").mkdir()
    (staged / "sub" / ".git" / "config").write_text("[core]\n")
    target = tmp_path / "home" / "results"
    report = landing.land([(staged, target)])
    assert (target / "sub" / "b.txt").read_text() == "b\n"
    assert not (target / "sub" / ".git").exists()
    assert target / "sub" / ".git" in report.skipped


def test_an_existing_directory_is_merged_entry_by_entry(tmp_path: Path) -> None:
    staged = _staged(tmp_path)
    target = tmp_path / "home" / "results"
    (target / "sub").mkdir(parents=True)
    (target / "mine.txt").write_text("mine\n")
    landing.land([(staged, target)])
    assert (target / "mine.txt").read_text() == "mine\n"
    assert (target / "sub" / "deeper" / "c.txt").read_text() == "c\n"


def test_a_directory_made_locally_after_the_plan_is_merged_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: the user (or another fetch) creates the destination,
    # with a file of theirs, between the plan and the rename. The rename must
    # not replace it; the entries land one by one beside the user's file.
    staged = _staged(tmp_path)
    target = tmp_path / "home" / "results"
    scan = landing._scan_tree

    def scan_then_race(path: Path) -> landing._Tree | None:
        found = scan(path)
        target.mkdir(parents=True)
        (target / "theirs.txt").write_text("theirs\n")
        return found

    monkeypatch.setattr(landing, "_scan_tree", scan_then_race)
    report = landing.land([(staged, target)])
    assert (target / "theirs.txt").read_text() == "theirs\n"
    assert (target / "sub" / "deeper" / "c.txt").read_text() == "c\n"
    assert target / "a.txt" in report.written
