"""The ``aws-ec2`` lifecycle through the public API and CLI, against a moto EC2 server."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.resources.inventory import Inventory
from reproman.testing.cli import run_cli


def _b(params: dict[str, Any]) -> list[str]:
    """Backend parameters as ``-b KEY=VALUE`` strings, as the CLI passes them."""
    return [f"{k}={v}" for k, v in params.items() if v is not None]


def _instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    return dict(ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])


def _status(name: str) -> str:
    (row,) = api.ls([name], refresh=True)
    return str(row["status"])


# -- registration ------------------------------------------------------------------
def test_registration_is_cheap_and_keeps_the_old_parameter_names() -> None:
    code = (
        "import sys; from reproman.plugins.manager import get_plugin_manager as g; "
        "r = g().resource_type('aws-ec2'); "
        "assert r.factory == 'reproman_backend_aws.resource:EC2Resource', r.factory; "
        "names = {p.name for p in r.parameters}; "
        "old = {'region_name', 'instance_type', 'image', 'key_name', 'key_filename', 'security_group', "
        "'access_key_id', 'secret_access_key', 'user'}; "
        "assert old <= names, old - names; "
        "assert {p.name for p in r.parameters if p.secret} == {'access_key_id', 'secret_access_key'}; "
        "assert r.parameter('image').required; "
        "heavy = [n for n in sys.modules if n.split('.')[0] in ('boto3', 'botocore', 'fabric', 'paramiko')]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backend_parameters_document_every_parameter() -> None:
    params = api.backend_parameters("aws-ec2")["aws-ec2"]
    assert all(p["doc"] for p in params)
    assert {p["name"]: p["default"] for p in params}["instance_type"] == "t2.micro"


def test_factory_loads() -> None:
    from reproman.plugins.manager import get_plugin_manager
    from reproman_backend_aws.resource import EC2Resource

    assert get_plugin_manager().resource_type("aws-ec2").load() is EC2Resource


# -- lifecycle -----------------------------------------------------------------------
def test_create_ls_stop_start_delete(
    base_params: dict[str, Any], ec2: Any, isolated_user: Path, ssh_params: dict[str, Any], route: Callable[[str], None]
) -> None:
    params = {**base_params, **ssh_params, "instance_type": "t3.small"}
    resource = api.create("ec2-one", "aws-ec2", _b(params))
    assert resource.id and resource.id.startswith("i-")
    assert resource.status == "running"
    info = _instance(ec2, resource.id)
    assert info["State"]["Name"] == "running"
    assert info["InstanceType"] == "t3.small"
    assert {t["Key"]: t["Value"] for t in info["Tags"]}["Name"] == "ec2-one"
    # The user's key was imported as a key pair ReproMan owns; the user's file stays where it is.
    record = Inventory().load()["ec2-one"]
    assert record["public_ip"] == info["PublicIpAddress"]
    assert record["region_name"] == "us-east-1"
    assert record["key_filename"] == ssh_params["key_filename"]
    assert record["owned_key_pair"] == record["key_name"] == info["KeyName"]
    assert record["key_name"].startswith("reproman-ec2-one-")

    assert [r for r in api.ls() if r["name"] != "local"] == [
        {"name": "ec2-one", "type": "aws-ec2", "id": resource.id, "status": "running"}]

    route(info["PublicIpAddress"])
    result = api.execute("printf", ["%s", "hello"], resref="ec2-one")
    assert result.stdout == "hello"

    api.stop("ec2-one")
    assert _instance(ec2, resource.id)["State"]["Name"] == "stopped"
    assert Inventory().load()["ec2-one"]["status"] == "stopped"
    assert _status("ec2-one") == "stopped"

    api.start("ec2-one")
    info = _instance(ec2, resource.id)
    assert info["State"]["Name"] == "running"
    assert _status("ec2-one") == "running"
    # EC2 gives a started instance a new public IP; the session follows it.
    route(info["PublicIpAddress"])
    assert api.execute("printf", ["%s", "again"], resref="ec2-one").stdout == "again"

    assert api.delete("ec2-one", skip_confirmation=True) == "ec2-one"
    assert _instance(ec2, resource.id)["State"]["Name"] == "terminated"
    assert "ec2-one" not in Inventory().load()
    assert not ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [record["key_name"]]}])["KeyPairs"]
    assert Path(ssh_params["key_filename"]).exists()


def test_created_key_pair_is_saved_private_and_works(
    base_params: dict[str, Any],
    ec2: Any,
    isolated_user: Path,
    sshd: Any,
    ssh_config: Path,
    route: Callable[[str], None],
    authorize: Callable[[bytes], None],
) -> None:
    from reproman_backend_aws.resource import keys_dir, known_hosts_dir, public_key_for

    resource = api.create("made-key", "aws-ec2", {**base_params, "user": sshd.user, "ssh_config": str(ssh_config)})
    record = Inventory().load()["made-key"]
    key_file = Path(record["key_filename"])
    assert key_file.parent == keys_dir()
    assert key_file.name == f"{record['key_name']}.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir().stat().st_mode) == 0o700
    assert str(isolated_user) in str(key_file), "the key belongs under the user's config dir"
    # Only the path is recorded, never the key itself.
    assert "PRIVATE KEY" not in Inventory().path.read_text()

    # The saved key is the instance's key: authorize it on the sshd standing in for the instance.
    authorize(public_key_for(str(key_file)))
    route(record["public_ip"])
    session = resource.get_session()
    try:
        assert session.execute_command(["id", "-un"]).stdout.strip() == sshd.user
    finally:
        session.close()
    assert (known_hosts_dir() / str(resource.id)).is_file(), "host key recorded per instance"

    api.delete("made-key", skip_confirmation=True)
    assert not key_file.exists()
    assert not (known_hosts_dir() / str(resource.id)).exists()
    assert not ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [record["key_name"]]}])["KeyPairs"]


def test_existing_key_pair_is_used_and_kept(base_params: dict[str, Any], ec2: Any, tmp_path: Path) -> None:
    ec2.create_key_pair(KeyName="users-own")
    key = tmp_path / "users-own.pem"
    key.write_text("not checked until SSH\n")
    resource = api.create("own-key", "aws-ec2", {**base_params, "key_name": "users-own", "key_filename": str(key)})
    assert _instance(ec2, str(resource.id))["KeyName"] == "users-own"
    record = Inventory().load()["own-key"]
    assert record["key_name"] == "users-own" and "owned_key_pair" not in record
    api.delete("own-key", skip_confirmation=True)
    assert ec2.describe_key_pairs(KeyNames=["users-own"])["KeyPairs"], "a user's key pair is never deleted"
    assert key.exists()


def test_secrets_are_used_but_never_stored(base_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    api.create(
        "keyed", "aws-ec2", {**base_params, "access_key_id": "AKIDSECRETVALUE", "secret_access_key": "SUPERSECRET"}
    )
    text = Inventory().path.read_text()
    assert "keyed" in text
    assert "SUPERSECRET" not in text and "AKIDSECRETVALUE" not in text
    # Later commands use the credential chain (here: the environment again).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert _status("keyed") == "running"
    api.delete("keyed", skip_confirmation=True)


def test_region_defaults_to_aws_configuration(
    base_params: dict[str, Any], ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    params = {k: v for k, v in base_params.items() if k != "region_name"}
    resource = api.create("west", "aws-ec2", params)
    assert Inventory().load()["west"]["region_name"] == "eu-west-1"
    west = boto3.client("ec2", endpoint_url=base_params["endpoint_url"], region_name="eu-west-1")
    assert west.describe_instances(InstanceIds=[resource.id])["Reservations"]
    # The recorded region wins over a later change of the environment.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert _status("west") == "running"
    api.delete("west", skip_confirmation=True)


def test_stop_and_start_are_idempotent(base_params: dict[str, Any]) -> None:
    api.create("twice", "aws-ec2", base_params)
    api.start("twice")
    api.stop("twice")
    api.stop("twice")
    assert _status("twice") == "stopped"
    api.delete("twice", skip_confirmation=True)


def test_cli_create_ls_stop_delete(base_params: dict[str, Any], ec2: Any) -> None:
    args = [a for kv in _b(base_params) for a in ("-b", kv)]
    created = run_cli(["create", "-t", "aws-ec2", *args, "cli-box"])
    assert created.returncode == 0, created.stderr
    listed = run_cli(["ls", "--refresh", "--json"])
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    (row,) = [r for r in rows if r["name"] == "cli-box"]
    assert row["status"] == "running"
    assert run_cli(["stop", "cli-box"]).returncode == 0
    assert _instance(ec2, row["id"])["State"]["Name"] == "stopped"
    deleted = run_cli(["delete", "-y", "cli-box"])
    assert deleted.returncode == 0, deleted.stderr
    assert _instance(ec2, row["id"])["State"]["Name"] == "terminated"
