"""What users see when AWS says no: one-line errors, nothing left running, honest statuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.errors import ConfigError, ReproManError, ResourceConnectionError, ResourceError
from reproman.resources.inventory import Inventory
from reproman.testing.cli import run_cli
from reproman.testing.services import free_port
from reproman_backend_aws.testing import MotoServer


def _running_instances(ec2: Any, name: str) -> list[str]:
    reply = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": [name]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )
    return [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]


def _owned_key_pairs(ec2: Any, name: str) -> list[str]:
    pairs = ec2.describe_key_pairs()["KeyPairs"]
    return [p["KeyName"] for p in pairs if p["KeyName"].startswith(f"reproman-{name}-")]


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    assert "Traceback" not in text and "botocore.exceptions" not in text, text
    return text


# -- create-time faults ---------------------------------------------------------------
def test_unknown_ami(base_params: dict[str, Any], ec2: Any) -> None:
    from reproman_backend_aws.resource import keys_dir

    with pytest.raises(ResourceError) as info:
        api.create("bad-ami", "aws-ec2", {**base_params, "image": "ami-0000000000deadbee"})
    text = _one_line(info.value)
    assert "ami-0000000000deadbee" in text and "us-east-1" in text and "does not exist" in text
    assert "bad-ami" not in Inventory().load()
    assert not _running_instances(ec2, "bad-ami")
    # Checked before anything is made: no key pair, no key file.
    assert not _owned_key_pairs(ec2, "bad-ami")
    assert not list(keys_dir().glob("reproman-bad-ami-*"))


def test_refused_launch_removes_the_key_pair_made_for_it(base_params: dict[str, Any], ec2: Any) -> None:
    """EC2 refuses the launch after ReproMan made a key pair: the pair and its key file go again."""
    from reproman_backend_aws.resource import keys_dir

    with pytest.raises(ResourceError) as info:
        api.create("no-group", "aws-ec2", {**base_params, "security_group": "no-such-group"})
    _one_line(info.value)
    assert "no-group" not in Inventory().load()
    assert not _running_instances(ec2, "no-group")
    assert not _owned_key_pairs(ec2, "no-group")
    assert not list(keys_dir().glob("reproman-no-group-*"))


def test_unknown_ami_on_the_command_line_is_one_line(base_params: dict[str, Any]) -> None:
    params = {**base_params, "image": "ami-0000000000deadbee"}
    args = [a for k, v in params.items() for a in ("-b", f"{k}={v}")]
    result = run_cli(["create", "-t", "aws-ec2", *args, "cli-bad-ami"])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ami-0000000000deadbee" in lines[0] and "Traceback" not in result.stderr


def test_missing_credentials(base_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ResourceError) as info:
        api.create("no-creds", "aws-ec2", base_params)
    text = _one_line(info.value)
    assert "no AWS credentials" in text and "AWS_ACCESS_KEY_ID" in text
    assert "no-creds" not in Inventory().load()


def test_half_given_credentials_are_refused(base_params: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="give both or neither"):
        api.create("half", "aws-ec2", {**base_params, "access_key_id": "AKIAONLY"})


def test_unknown_profile(base_params: dict[str, Any]) -> None:
    with pytest.raises(ReproManError) as info:
        api.create("no-profile", "aws-ec2", {**base_params, "profile_name": "nosuchprofile"})
    assert "nosuchprofile" in _one_line(info.value)


@pytest.fixture(scope="module")
def moto_with_auth(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> Iterator[MotoServer]:
    """A second moto server that checks credentials as IAM does (fake keys are refused)."""
    server = MotoServer(tmp_path_factory.mktemp("moto-auth") / "moto.log", auth=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_bad_credentials(base_params: dict[str, Any], moto_with_auth: MotoServer) -> None:
    with pytest.raises(ResourceError) as info:
        api.create("bad-creds", "aws-ec2", {**base_params, "endpoint_url": moto_with_auth.url})
    text = _one_line(info.value)
    assert "AWS rejected the credentials" in text and "AuthFailure" in text
    assert "bad-creds" not in Inventory().load()


def test_unreachable_endpoint(base_params: dict[str, Any]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ResourceConnectionError) as info:
        api.create("offline", "aws-ec2", {**base_params, "endpoint_url": dead, "connect_timeout": 2})
    assert "cannot be reached" in _one_line(info.value)


def test_unknown_region(base_params: dict[str, Any]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ResourceError) as info:
        api.create("nowhere", "aws-ec2", {**base_params, "endpoint_url": dead, "region_name": "xx-nowhere-9"})
    assert "unknown AWS region 'xx-nowhere-9'" in _one_line(info.value)


def test_malformed_region(base_params: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        api.create("malformed", "aws-ec2", {**base_params, "region_name": "not a region!"})
    assert "not a valid AWS region" in _one_line(info.value)


def test_unknown_key_pair(base_params: dict[str, Any], ec2: Any) -> None:
    with pytest.raises(ResourceError) as info:
        api.create("no-pair", "aws-ec2", {**base_params, "key_name": "nobody-made-this"})
    text = _one_line(info.value)
    assert "key pair 'nobody-made-this' does not exist in region us-east-1" in text
    assert not _running_instances(ec2, "no-pair")


def test_missing_key_file(base_params: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        api.create("no-file", "aws-ec2", {**base_params, "key_filename": str(tmp_path / "absent.pem")})


def test_missing_image_parameter(base_params: dict[str, Any]) -> None:
    params = {k: v for k, v in base_params.items() if k != "image"}
    with pytest.raises(ReproManError, match="image"):
        api.create("no-image", "aws-ec2", params)


def test_interrupted_create_terminates_the_instance(
    base_params: dict[str, Any], ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reproman_backend_aws.resource import EC2Resource

    def interrupted(self: EC2Resource) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(EC2Resource, "_wait_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.create("interrupted", "aws-ec2", base_params)
    assert not _running_instances(ec2, "interrupted")
    assert not _owned_key_pairs(ec2, "interrupted")
    assert "interrupted" not in Inventory().load()


def test_instance_that_never_runs_is_terminated(
    base_params: dict[str, Any], ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiter that gives up (e.g. capacity trouble) ends in a one-line error and no instance."""
    import botocore.waiter

    def never(self: Any, **kwargs: Any) -> None:
        raise botocore.waiter.WaiterError(name="InstanceRunning", reason="Max attempts exceeded", last_response={})

    monkeypatch.setattr(botocore.waiter.Waiter, "wait", never)
    with pytest.raises(ResourceError) as info:
        api.create("slow", "aws-ec2", {**base_params, "wait_timeout": 5})
    text = _one_line(info.value)
    assert "did not become running within 5 s" in text and "terminated again" in text
    assert not _running_instances(ec2, "slow")


# -- faults after create ---------------------------------------------------------------
def test_instance_terminated_behind_our_back(base_params: dict[str, Any], ec2: Any) -> None:
    resource = api.create("doomed", "aws-ec2", base_params)
    ec2.terminate_instances(InstanceIds=[resource.id])

    (row,) = api.ls(["doomed"], refresh=True)
    assert row["status"] == "terminated"
    assert Inventory().load()["doomed"]["status"] == "terminated"

    with pytest.raises(ResourceError) as info:
        api.start("doomed")
    assert "terminated" in _one_line(info.value) and "reproman delete doomed" in str(info.value)
    with pytest.raises(ResourceError, match="terminated"):
        api.execute("true", resref="doomed")
    # Deleting what is already gone succeeds and cleans up what ReproMan made for it.
    key_name = Inventory().load()["doomed"]["owned_key_pair"]
    assert api.delete("doomed", skip_confirmation=True) == "doomed"
    assert "doomed" not in Inventory().load()
    assert not ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [key_name]}])["KeyPairs"]


def test_instance_unknown_to_ec2_is_not_found(base_params: dict[str, Any]) -> None:
    api.create("vanished", "aws-ec2", base_params)
    with Inventory().edit() as records:
        records["vanished"]["id"] = "i-0123456789abcdef0"
    (row,) = api.ls(["vanished"], refresh=True)
    assert row["status"] == "NOT FOUND"
    assert api.delete("vanished", skip_confirmation=True) == "vanished"


def test_unreachable_api_is_a_status_not_an_exception(base_params: dict[str, Any]) -> None:
    api.create("cut-off", "aws-ec2", base_params)
    with Inventory().edit() as records:
        records["cut-off"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"
        records["cut-off"]["connect_timeout"] = 2
    (row,) = api.ls(["cut-off"], refresh=True)
    assert row["status"] == "CONNECTION ERROR"
    # Not forgotten while it may still be running and billed...
    with pytest.raises(ResourceConnectionError, match="--force"):
        api.delete("cut-off", skip_confirmation=True)
    assert "cut-off" in Inventory().load()
    # ...unless the user insists.
    assert api.delete("cut-off", skip_confirmation=True, force=True) == "cut-off"
    assert "cut-off" not in Inventory().load()


def test_session_on_a_stopped_instance_says_start_it(base_params: dict[str, Any]) -> None:
    api.create("asleep", "aws-ec2", base_params)
    api.stop("asleep")
    with pytest.raises(ResourceError) as info:
        api.execute("true", resref="asleep")
    assert "stopped" in _one_line(info.value) and "reproman start asleep" in str(info.value)
    api.delete("asleep", skip_confirmation=True)


def test_unreachable_ssh_is_a_connection_error(base_params: dict[str, Any], ssh_config: Path) -> None:
    """The fake IP routed to a closed port: the ssh session type's own one-line error comes through."""
    resource = api.create("no-sshd", "aws-ec2", {**base_params, "ssh_config": str(ssh_config), "connect_timeout": 2})
    ip = Inventory().load()["no-sshd"]["public_ip"]
    ssh_config.write_text(f"Host {ip}\n    HostName 127.0.0.1\n    Port {free_port()}\n")
    with pytest.raises(ResourceConnectionError) as info:
        api.execute("true", resref="no-sshd")
    assert ip in _one_line(info.value)
    api.delete(str(resource.name), skip_confirmation=True)
