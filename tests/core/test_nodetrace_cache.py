"""The node tool's trace cache never leaves a half-written or temporary file behind (a full disk on a node)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from reproman.jobs import nodetrace


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection: the disk fills between writing the temporary file and renaming it.
    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nodetrace.os, "replace", full)
    cache = tmp_path / "cache"
    nodetrace.write_cache(str(cache), "ctx", '{"spec": {}}', ["/usr/bin"], 0.0)  # only said, never raised
    assert sorted(os.listdir(cache)) == []


def test_a_cache_write_replaces_whole_files(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    nodetrace.write_cache(str(cache), "ctx-1", '{"spec": {}}', ["/usr/bin"], 100.0)
    assert sorted(os.listdir(cache)) == ["ctx", "spec.json", "watch"]
    assert (cache / "ctx").read_text() == "ctx-1\n" and (cache / "spec.json").stat().st_mtime == 100.0
