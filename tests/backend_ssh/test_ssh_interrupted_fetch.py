"""A fetch through the persistent connection that is killed or interrupted leaves no staging directory.

The session host, not the command, fills the command's staging directory,
and it goes on writing after the command died. The next fetch into the same
place sweeps the dead command's staging directory; if it did so while the
host still wrote into it, the host recreated the directories without their
ownership marker and they stayed forever (100 MB each in a user's report).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.resources.landing import STAGING_PREFIX
from reproman.resources.manage import get_resource

#: Enough data that the host is still writing when the next fetch starts (about 80 MB over loopback).
FILES, SIZE = 400, 200_000

_FETCH = """
import sys
from reproman.resources.manage import get_resource
session = get_resource("h").get_session()
session.get_many([(sys.argv[1], sys.argv[2])])
"""


def _staging(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(STAGING_PREFIX))


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


@pytest.fixture
def remote_tree(tmp_path: Path) -> Path:
    """A results tree on the 'remote' host (this machine, behind the loopback sshd)."""
    tree = tmp_path / "remote" / "big"
    tree.mkdir(parents=True)
    chunk = os.urandom(SIZE)
    for i in range(FILES):
        (tree / str(i)).write_bytes(chunk[i:] + chunk[:i])
    return tree


@pytest.mark.parametrize("how", ["kill-9", "ctrl-c"])
def test_interrupted_fetch_through_the_host_leaves_no_staging(ssh_params: dict[str, Any], sessions: Path,
                                                              remote_tree: Path, tmp_path: Path, how: str) -> None:
    api.create("h", "ssh", {k: str(v) for k, v in ssh_params.items() if v is not None})
    local = tmp_path / "local"
    local.mkdir()
    # A user's directory that merely looks like an abandoned staging directory: never touched.
    lookalike = local / f"{STAGING_PREFIX}{os.uname().nodename.replace('-', '_')}-999999-mine"
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("mine\n")

    # Python ignores SIGINT if its parent did (a shell's background job): restore the default for "Ctrl-C".
    proc = subprocess.Popen([sys.executable, "-c", _FETCH, str(remote_tree), str(local / "big")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert _wait(lambda: len(_staging(local)) == 2, timeout=60), proc.poll()
        time.sleep(0.3)  # the host is writing now
        proc.send_signal(signal.SIGKILL if how == "kill-9" else signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (local / "big").exists()

    # The next fetch, at once, while the host may still be writing for the command that is gone.
    session = get_resource("h").get_session()
    report = session.get_many([(str(remote_tree / "0"), local / "first")])
    assert (local / "first").read_bytes() == (remote_tree / "0").read_bytes() and report.written

    assert _wait(lambda: _staging(local) == [lookalike], timeout=60), [
        (p.name, sorted(os.listdir(p))[:3]) for p in _staging(local)]
    assert (lookalike / "notes.txt").read_text() == "mine\n"
    assert sorted(os.listdir(local)) == sorted(["first", lookalike.name])
