"""Fixtures for the AWS backend's tests: a real moto EC2 server and a real sshd.

moto (``pip install 'moto[server]'``) is started once per test session from
this interpreter on a free loopback port and killed at the end; a missing
moto skips locally and fails under CI. Every test gets fake AWS credentials,
a throwaway HOME (no ``~/.aws``, no ``~/.ssh``, no agent) and no metadata
probing. Instances moto "launches" get fake public IPs; :func:`route` writes
an ssh_config ``Host <ip>`` block sending SSH for that IP to the local sshd,
which is how the aws resource's sessions reach a real server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman.testing.services import service_missing
from reproman_backend_aws.testing import FAKE_CREDENTIALS, MotoServer, moto_server_available


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A running moto server (AMI validation on); skipped locally, failed under CI, when absent."""
    missing = moto_server_available()
    if missing:
        service_missing(missing)
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        server.stop()
        service_missing(f"could not start moto server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake credentials and a throwaway HOME, so nothing reads the real ~/.aws or ~/.ssh."""
    home = tmp_path_factory.mktemp("aws-home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return home


@pytest.fixture(autouse=True)
def sessions(isolated_user: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A control directory of this test's own for persistent SSH connections, stopped afterwards."""
    from reproman_backend_ssh.testing import private_sessions

    yield from private_sessions(monkeypatch)


@pytest.fixture
def ec2(moto: MotoServer) -> Any:
    """A plain boto3 client to the moto server, for checking what the backend did behind its back."""
    import boto3

    return boto3.client("ec2", endpoint_url=moto.url, region_name="us-east-1")


@pytest.fixture(scope="session")
def ami(moto: MotoServer) -> str:
    """An AMI ID moto knows (moto ships a catalogue of AWS's public images)."""
    import boto3

    client = boto3.client(
        "ec2",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    images = client.describe_images(Owners=["amazon"])["Images"]
    assert images, "moto knows no AMIs"
    return str(images[0]["ImageId"])


@pytest.fixture
def base_params(moto: MotoServer, ami: str) -> dict[str, Any]:
    """Backend parameters for an instance on the moto server (status checks pass at once there)."""
    return {"image": ami, "endpoint_url": moto.url, "region_name": "us-east-1", "wait_timeout": 30}


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real sshd on 127.0.0.1 (the ssh backend's LocalSSHD); skipped locally / failed under CI if absent."""
    from reproman_backend_ssh.testing import running_sshd

    yield from running_sshd(tmp_path_factory.mktemp("sshd"))


@pytest.fixture
def ssh_config(tmp_path: Path) -> Path:
    """An (initially empty) ssh_config file for one test's resources."""
    path = tmp_path / "ssh_config"
    path.write_text("")
    return path


@pytest.fixture
def route(ssh_config: Path, sshd: Any) -> Callable[[str], None]:
    """``route(ip)``: send SSH for a (fake) instance IP to the local sshd, via ssh_config."""

    def add(ip: str) -> None:
        with ssh_config.open("a") as handle:
            handle.write(f"Host {ip}\n    HostName {sshd.host}\n    Port {sshd.port}\n\n")

    return add


@pytest.fixture
def ssh_params(sshd: Any, ssh_config: Path) -> dict[str, Any]:
    """Backend parameters that make the instance's SSH session log in to the local sshd."""
    return {"user": sshd.user, "key_filename": str(sshd.client_key), "ssh_config": str(ssh_config)}


@pytest.fixture
def authorize(sshd: Any) -> Callable[[bytes], None]:
    """``authorize(public_key)``: let that key log in to the test sshd (read afresh per connection)."""

    def add(public_key: bytes) -> None:
        with (Path(sshd.dir) / "authorized_keys").open("ab") as handle:
            handle.write(public_key.strip() + b"\n")

    return add
