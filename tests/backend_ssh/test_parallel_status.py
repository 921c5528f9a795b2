"""Commands over several ssh resources talk to them at once: four slow hosts take about the time of one.

Each resource reaches the test sshd through its own relay that waits
before connecting (a far-away login node, a slow handshake), and connects
directly (``persistent=no``) so that every status query pays that wait.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api

DELAY = 2.0


class SlowLink:
    """A TCP relay on loopback that waits ``delay`` seconds before connecting each client through."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = int(self.server.getsockname()[1])
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        try:
            with client, socket.create_connection(self.target) as upstream:
                pair = {client: upstream, upstream: client}
                while not self.stopping.is_set():
                    ready, _, _ = select.select(list(pair), [], [], 0.5)
                    for sock in ready:
                        data = sock.recv(65536)
                        if not data:
                            return
                        pair[sock].sendall(data)
        except OSError:  # either side hung up
            return

    def close(self) -> None:
        self.stopping.set()
        self.server.close()


@pytest.fixture
def slow_resources(sshd: Any, ssh_params: dict[str, Any], tmp_path: Path) -> Iterator[list[str]]:
    """Four ssh resources, each behind its own slow link."""
    host_key = sshd.known_hosts.read_text().split(None, 1)[1]
    links = [SlowLink((sshd.host, sshd.port), DELAY) for _ in range(4)]
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"[127.0.0.1]:{link.port} {host_key}" for link in links))
    names = []
    for i, link in enumerate(links):
        params = {**ssh_params, "port": link.port, "known_hosts": known, "persistent": "no"}
        api.create(f"far{i}", "ssh", {k: str(v) for k, v in params.items() if v is not None})
        names.append(f"far{i}")
    yield names
    for link in links:
        link.close()


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.monotonic()
    value = fn()
    return time.monotonic() - start, value


def test_ls_refresh_over_four_slow_hosts_takes_about_the_time_of_one(slow_resources: list[str]) -> None:
    one, rows = _timed(lambda: api.ls(slow_resources[:1], refresh=True))
    assert [r["status"] for r in rows] == ["ONLINE"]
    four, rows = _timed(lambda: api.ls(slow_resources, refresh=True))
    assert [r["status"] for r in rows] == ["ONLINE"] * 4
    assert one >= DELAY
    # One after the other would take 4 x one (at least 4 x DELAY); the handshakes' CPU work still
    # competes for this machine's cores, hence the margin.
    assert four < min(2 * one, 4 * DELAY), (one, four)


def test_ls_refresh_respects_the_connection_limit(slow_resources: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from reproman.config import reset_config

    monkeypatch.setenv("REPROMAN_GENERAL_MAX_CONNECTIONS", "1")
    reset_config()
    four, rows = _timed(lambda: api.ls(slow_resources, refresh=True))
    assert [r["status"] for r in rows] == ["ONLINE"] * 4
    assert four >= 4 * DELAY


def test_jobs_status_over_four_slow_hosts_takes_about_the_time_of_one(
    slow_resources: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reproman jobs --status`` (and ``--all``) polls every resource concurrently: four cost about one."""
    from reproman import api
    from reproman.jobs.commands import run
    from reproman.jobs.registry import Registry

    monkeypatch.chdir(tmp_path)
    for name in slow_resources:
        run(command="true", resref=name, submitter="local", orchestrator="plain", job_parameters={"env": "A=1"})
    jobids = [j.jobid for j in Registry().entries()]
    assert len(jobids) == 4
    one, rows = _timed(lambda: api.jobs([jobids[0]], action="list", status=True))
    assert rows[0].get("summary") and "cannot" not in rows[0]["summary"], rows
    four, rows = _timed(lambda: api.jobs(jobids, action="list", status=True))
    assert len(rows) == 4 and all(r.get("summary") and "cannot" not in r["summary"] for r in rows), rows
    assert one >= DELAY
    assert four < min(2 * one, 4 * DELAY), (one, four)
    monkeypatch.setenv("REPROMAN_GENERAL_MAX_CONNECTIONS", "1")
    from reproman.config import reset_config

    reset_config()
    sequential, _rows = _timed(lambda: api.jobs(jobids, action="list", status=True))
    assert sequential >= 4 * DELAY, sequential
