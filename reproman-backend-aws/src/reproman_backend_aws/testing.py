"""A throwaway moto EC2 server on 127.0.0.1, for tests and benchmarks.

Why a server rather than moto's in-process mocks: the resource is exercised
exactly as users run it (boto3 over HTTP, with ``endpoint_url``), a CLI
subprocess can talk to the same fake EC2 as the test, and a second server
with different settings (IAM checks on) can run alongside. moto is a test
dependency only (``pip install 'moto[server]'``); this module imports it in
the child process, never here.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

#: Environment for boto3 clients talking to a moto server: fake keys, no
#: ~/.aws files, no instance-metadata probing (which would wait on a timeout).
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def moto_server_available() -> str | None:
    """None if ``python -m moto.server`` can run in this interpreter, else what is missing."""
    for module in ("moto", "flask", "flask_cors"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'moto[server]')"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on a free loopback port, in its own process group.

    AMI IDs are validated (``MOTO_ENABLE_AMI_VALIDATION``) so an unknown
    image fails as on AWS. Pass ``auth=True`` to make the server check
    credentials the way IAM does, so fake keys are rejected with
    ``AuthFailure``.
    """

    host = "127.0.0.1"

    def __init__(self, log: str | os.PathLike[str], *, auth: bool = False, env: Mapping[str, str] | None = None) -> None:
        self.port = _free_port()
        self.log = Path(log)
        self.env = {**os.environ, "MOTO_ENABLE_AMI_VALIDATION": "true", **(env or {})}
        if auth:
            self.env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        """Run the server and wait until it answers HTTP."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        from reproman.testing.services import stop_process_group

        stop_process_group(self.process, timeout=10)
        self.process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
