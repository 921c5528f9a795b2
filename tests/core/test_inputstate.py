"""What a job records of its inputs at submission (sizes and times, by stat), and how two records compare."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reproman.jobs import inputstate


def _tree(root: Path, n: int) -> None:
    (root / "data" / ".git").mkdir(parents=True)
    (root / "data" / ".git" / "HEAD").write_text("ignored\n")
    for i in range(n):
        (root / "data" / f"f{i:03d}").write_text("x" * i)
    (root / "one.txt").write_text("one\n")


def test_files_and_directories_are_summarised_and_an_edit_is_seen(tmp_path: Path) -> None:
    _tree(tmp_path, 4)
    before = inputstate.snapshot(["data", "one.txt", "absent"], str(tmp_path))
    assert before["data"]["files"] == 4 and before["data"]["size"] == 0 + 1 + 2 + 3  # .git left out
    assert before["one.txt"]["size"] == 4 and "absent" not in before
    assert inputstate.changed(before, inputstate.snapshot(["data", "one.txt"], str(tmp_path))) == []
    (tmp_path / "data" / "f002").write_text("edited")
    assert inputstate.changed(before, inputstate.snapshot(["data", "one.txt"], str(tmp_path))) == ["data"]


def test_a_large_tree_is_walked_only_so_far_and_the_same_part_each_time(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputstate, "WALK_LIMIT", 10)
    _tree(tmp_path, 30)
    first = inputstate.snapshot(["data"], str(tmp_path))
    assert first["data"] == {**first["data"], "files": 10, "partial": 1}
    assert inputstate.changed(first, inputstate.snapshot(["data"], str(tmp_path))) == []
    os.utime(tmp_path / "data" / "f005", ns=(1, 1))  # within the part looked at
    assert inputstate.changed(first, inputstate.snapshot(["data"], str(tmp_path))) == ["data"]
