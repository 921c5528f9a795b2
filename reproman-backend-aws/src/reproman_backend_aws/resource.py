"""The ``aws-ec2`` resource: an EC2 instance ReproMan launches and then uses over SSH.

Lifecycle: ``create`` runs one instance (with a key pair it was given, or
one it imports or creates), waits until it runs, and records its ID, state
and public IP; ``stop``/``start``/``delete`` (terminate) wait for the state
they asked for, so the next command sees a settled instance. A failed or
interrupted ``create`` terminates what it launched: nothing is left running
(and billed) that the inventory does not know about.

Sessions are the registry's ``ssh`` session type (whichever plugin provides
it), opened on the instance's *current* public IP, which EC2 changes on
every stop/start; the recorded ``public_ip`` is informative only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions

from reproman.plugins import (
    CONNECTION_ERROR,
    NOT_FOUND,
    ConfigError,
    ReproManError,
    Resource,
    ResourceConnectionError,
    ResourceError,
    Session,
    attach_persistent_session,
    config_dir,
    persistent_idle_seconds,
    persistent_sessions_enabled,
    session_class,
    shutdown_persistent_session,
)
from reproman_backend_aws import client as aws
from reproman_backend_aws.hooks import PARAMETERS

log = logging.getLogger("reproman.backend_aws")

#: EC2 states after which the instance is gone for good (or nearly: shutting-down).
GONE = frozenset({NOT_FOUND, "terminated", "shutting-down"})
#: Seconds between state polls against real AWS (moto answers at once).
POLL_DELAY = 5


def state_dir() -> Path:
    """Where this backend keeps private keys it created and per-instance known_hosts files."""
    return config_dir() / "aws-ec2"


def keys_dir() -> Path:
    return state_dir() / "keys"


def known_hosts_dir() -> Path:
    return state_dir() / "known_hosts"


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def public_key_for(private_key: str) -> bytes:
    """The OpenSSH public key line for a private key file (``KEY.pub`` if present, else derived).

    Why derive it: users usually have ``id_ed25519`` with its ``.pub`` beside
    it, but an AWS-made ``.pem`` has none.
    """
    pub = Path(private_key + ".pub")
    if pub.is_file():
        return pub.read_bytes().strip()
    from cryptography.hazmat.primitives import serialization

    data = Path(private_key).read_bytes()
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key: Any = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"key_filename {private_key} is encrypted, so its public key cannot be derived",
            hint=f"Put the public key next to it as {private_key}.pub.",
        ) from None
    except ValueError as exc:
        raise ConfigError(f"key_filename {private_key} is not a private key ReproMan can read: {exc}") from None
    return bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))


class EC2Resource(Resource):
    """An EC2 instance: created, stopped, started and terminated through the EC2 API."""

    type = "aws-ec2"

    # Backend parameters (set as attributes by Resource.__init__), for readers and mypy.
    image: str | None
    instance_type: str | None
    region_name: str | None
    key_name: str | None
    key_filename: str | None
    security_group: str | None
    subnet_id: str | None
    user: str | None
    access_key_id: str | None
    secret_access_key: str | None
    profile_name: str | None
    endpoint_url: str | None
    connect_timeout: int | None
    wait_timeout: int | None
    wait_status_ok: bool
    accept_new_host_key: bool
    known_hosts: str | None
    ssh_config: str | None
    persistent: bool | None
    #: Recorded by create: the public IP at launch, and the key pair ReproMan made (deleted with the instance).
    public_ip: str | None
    owned_key_pair: str | None

    def __init__(self, name: str, *, id: str | None = None, status: str | None = None, **params: Any) -> None:
        for param in PARAMETERS:
            params.setdefault(param.name, param.default)
        params.setdefault("public_ip", None)
        params.setdefault("owned_key_pair", None)
        super().__init__(name, id=id, status=status, **params)
        self._ec2: Any = None
        self._region: str | None = None
        self._described = False
        self.connection_error: str | None = None

    # -- EC2 API ----------------------------------------------------------------
    @property
    def region(self) -> str:
        """The region in use: the parameter, else the AWS configuration's, else us-east-1."""
        if self._region is None:
            self._connect_api()
        assert self._region is not None
        return self._region

    def _connect_api(self) -> Any:
        """The EC2 client, made once per resource object (cheap: no request is sent)."""
        if self._ec2 is None:
            session = aws.make_session(
                region_name=self.region_name,
                access_key_id=self.access_key_id,
                secret_access_key=self.secret_access_key,
                profile_name=self.profile_name,
            )
            self._region = self.region_name or session.region_name or aws.FALLBACK_REGION
            self._ec2 = aws.make_client(session, self._region, self.endpoint_url, self.connect_timeout)
        return self._ec2

    @contextlib.contextmanager
    def _aws(self, action: str) -> Iterator[Any]:
        """Yield the client; turn any boto3 error raised inside into a one-line ResourceError."""
        ec2 = self._connect_api()
        try:
            yield ec2
        except aws.AWS_ERRORS as exc:
            raise aws.translate(
                exc,
                action,
                region=self.region,
                endpoint_url=self.endpoint_url,
                image=self.image,
                key_name=self.key_name,
                security_group=self.security_group,
                subnet_id=self.subnet_id,
                instance_type=self.instance_type,
            ) from exc

    def _describe(self) -> dict[str, Any] | None:
        """The instance as EC2 describes it now, or None if EC2 does not know its ID."""
        if not self.id:
            return None
        try:
            with self._aws(f"look up instance {self.id}") as ec2:
                reply = ec2.describe_instances(InstanceIds=[self.id])
        except ResourceError as exc:
            cause = exc.__cause__
            if cause is not None and aws.error_code(cause).startswith("InvalidInstanceID"):
                return None
            raise
        for reservation in reply.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                if instance.get("InstanceId") == self.id:
                    return dict(instance)
        return None

    def _update_from(self, info: dict[str, Any] | None) -> None:
        self._described = True
        if info is None:
            self.status = NOT_FOUND
            return
        self.status = str(info.get("State", {}).get("Name") or "unknown")
        self.public_ip = info.get("PublicIpAddress") or None

    def _wait(self, waiter_name: str, state: str) -> None:
        """Wait (bounded by ``wait_timeout``) for the instance to reach ``state``."""
        timeout = int(self.wait_timeout or 600)
        delay = max(1, min(POLL_DELAY, timeout))
        log.info("waiting up to %d s for EC2 instance %s to be %s", timeout, self.id, state)
        try:
            with self._aws(f"wait for instance {self.id} to be {state}") as ec2:
                ec2.get_waiter(waiter_name).wait(
                    InstanceIds=[self.id], WaiterConfig={"Delay": delay, "MaxAttempts": max(1, timeout // delay)}
                )
        except ResourceError as exc:
            if not isinstance(exc.__cause__, botocore.exceptions.WaiterError):
                raise
            info = self._describe()
            now = info.get("State", {}).get("Name") if info else NOT_FOUND
            reason = (info or {}).get("StateReason", {}).get("Message")
            raise ResourceError(
                f"EC2 instance {self.id} of {self.name!r} did not become {state} within {timeout} s: "
                f"it is {now}" + (f" ({reason})" if reason else ""),
                hint="Check it in the AWS console; raise -b wait_timeout=SECONDS if it is just slow.",
            ) from None

    def _wait_ready(self) -> None:
        self._wait("instance_running", "running")
        if self.wait_status_ok:
            self._wait("instance_status_ok", "passing its status checks")

    # -- key pairs ----------------------------------------------------------------
    def _new_key_name(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-")[:80] or "resource"
        return f"reproman-{slug}-{secrets.token_hex(4)}"

    def _prepare_key_pair(self) -> None:
        """Settle ``key_name``/``key_filename``; set ``owned_key_pair`` when ReproMan made the pair.

        - key_name given: it must exist in the region (checked now: EC2-compatible
          APIs such as moto do not check it at launch); key_filename, if given, must exist.
        - only key_filename: its public key is imported as a new key pair.
        - neither: a key pair is created and its private key saved, mode 0600,
          under ReproMan's config directory; only the file's path is recorded.
        """
        if self.key_filename:
            self.key_filename = os.path.expanduser(self.key_filename)
            if not os.path.isfile(self.key_filename):
                raise ConfigError(f"key_filename {self.key_filename} does not exist")
        if self.key_name:
            with self._aws(f"use key pair {self.key_name!r}") as ec2:
                ec2.describe_key_pairs(KeyNames=[self.key_name])
            return
        name = self._new_key_name()
        if self.key_filename:
            material = public_key_for(self.key_filename)
            with self._aws(f"import the public key of {self.key_filename} as key pair {name!r}") as ec2:
                ec2.import_key_pair(KeyName=name, PublicKeyMaterial=material)
            log.info("imported the public key of %s as EC2 key pair %s", self.key_filename, name)
        else:
            with self._aws(f"create key pair {name!r}") as ec2:
                reply = ec2.create_key_pair(KeyName=name)
            path = _private_dir(keys_dir()) / f"{name}.pem"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(reply["KeyMaterial"])
            except OSError as exc:
                self._delete_key_pair(name)
                raise ResourceError(f"cannot save the private key of key pair {name!r} to {path}: {exc}") from None
            self.key_filename = str(path)
            log.info("created EC2 key pair %s; private key in %s", name, path)
        self.key_name = name
        self.owned_key_pair = name

    def _check_image(self) -> None:
        """Fail on an unknown AMI (and missing credentials, bad region) before making anything.

        The first request of ``create`` is the one whose error users see;
        it should be about the resource, not a key pair it was about to make.
        """
        if not self.image or self.image.startswith("resolve:"):
            return
        with self._aws(f"create {self.name!r}") as ec2:
            ec2.describe_images(ImageIds=[self.image])

    def _delete_key_pair(self, name: str) -> None:
        try:
            with self._aws(f"delete key pair {name!r}") as ec2:
                ec2.delete_key_pair(KeyName=name)
        except ReproManError as exc:
            log.warning("%s (delete it by hand)", exc)

    def _forget_owned_key(self) -> None:
        """Remove the key pair ReproMan made, and its private key file if ReproMan wrote it."""
        if self.owned_key_pair:
            self._delete_key_pair(self.owned_key_pair)
            if self.key_filename and Path(self.key_filename).parent == keys_dir():
                Path(self.key_filename).unlink(missing_ok=True)

    # -- lifecycle ------------------------------------------------------------------
    def _launch_arguments(self) -> dict[str, Any]:
        tags = [{"Key": "Name", "Value": self.name}, {"Key": "reproman:resource", "Value": self.name}]
        kwargs: dict[str, Any] = {
            "ImageId": self.image,
            "InstanceType": self.instance_type or "t2.micro",
            "KeyName": self.key_name,
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
        }
        if self.security_group:
            group = self.security_group
            kwargs["SecurityGroupIds" if group.startswith("sg-") else "SecurityGroups"] = [group]
        if self.subnet_id:
            kwargs["SubnetId"] = self.subnet_id
        return kwargs

    def create(self) -> dict[str, Any]:
        """Launch the instance and wait until it runs; terminate it again if that fails."""
        if self.id:
            raise ResourceError(f"{self.name!r} already has EC2 instance {self.id}")
        if not self.image:
            raise ConfigError("an aws-ec2 resource needs an image (AMI ID)", hint="Pass -b image=ami-....")
        self._check_image()
        self._prepare_key_pair()
        try:
            with self._aws(f"launch an instance of {self.image} in {self.region}") as ec2:
                reply = ec2.run_instances(**self._launch_arguments())
        except BaseException:
            self._forget_owned_key()
            raise
        self.id = str(reply["Instances"][0]["InstanceId"])
        log.info("launched EC2 instance %s for %r in %s", self.id, self.name, self.region)
        try:
            self._wait_ready()
            self._update_from(self._describe())
        except BaseException as exc:
            # Nothing may stay running (and billed) without an inventory entry.
            log.warning("terminating EC2 instance %s: creating %r failed", self.id, self.name)
            self._terminate_quietly()
            self._forget_owned_key()
            if isinstance(exc, ReproManError):
                raise ResourceError(f"{exc} (instance {self.id} was terminated again)") from exc
            raise
        return {
            "id": self.id,
            "status": self.status,
            "region_name": self.region,
            "key_name": self.key_name,
            "key_filename": self.key_filename,
            "owned_key_pair": self.owned_key_pair,
            "public_ip": self.public_ip,
        }

    def _terminate_quietly(self) -> None:
        try:
            with self._aws(f"terminate instance {self.id}") as ec2:
                ec2.terminate_instances(InstanceIds=[self.id])
        except ReproManError as exc:
            log.error("%s: terminate it by hand, it may be running and billed", exc)

    def connect(self) -> None:
        """Refresh status and public IP from EC2; NOT FOUND or CONNECTION ERROR instead of raising."""
        self.connection_error = None
        try:
            info = self._describe()
        except ReproManError as exc:
            self.status = CONNECTION_ERROR
            self.connection_error = str(exc)
            return
        self._update_from(info)

    def _settled(self, verb: str) -> str:
        """Current state, raising if the instance cannot be acted on at all."""
        if not self._described:
            self.connect()
        if self.status == CONNECTION_ERROR:
            raise ResourceConnectionError(self.connection_error or f"cannot reach EC2 for {self.name!r}")
        if self.status in GONE:
            raise ResourceError(
                f"cannot {verb} {self.name!r}: EC2 instance {self.id} is {self.status}",
                hint=f"Forget it with 'reproman delete {self.name}'.",
            )
        return str(self.status)

    def start(self) -> None:
        """Start a stopped instance and wait until it runs (and, by default, passes status checks)."""
        state = self._settled("start")
        if state == "running":
            return
        if state == "stopping":
            self._wait("instance_stopped", "stopped")
        if state != "pending":
            with self._aws(f"start instance {self.id}") as ec2:
                ec2.start_instances(InstanceIds=[self.id])
        self._wait_ready()
        self._update_from(self._describe())

    def stop(self) -> None:
        """Stop the instance (its disk is kept and billed) and wait until it is stopped."""
        state = self._settled("stop")
        self._close_persistent()
        if state == "stopped":
            return
        if state == "pending":
            self._wait("instance_running", "running")
        if state != "stopping":
            with self._aws(f"stop instance {self.id}") as ec2:
                ec2.stop_instances(InstanceIds=[self.id])
        self._wait("instance_stopped", "stopped")
        self._update_from(self._describe())

    def delete(self) -> None:
        """Terminate the instance and wait for it; remove the key pair and files ReproMan made for it.

        An instance EC2 no longer knows (or already terminated) is fine: there
        is nothing left to pay for. An unreachable API is not: the instance
        may still be running, so the error stops core from forgetting it.
        """
        if not self._described:
            self.connect()
        if self.status == CONNECTION_ERROR:
            raise ResourceConnectionError(
                self.connection_error or f"cannot reach EC2 for {self.name!r}",
                hint="The instance may still be running; fix access and retry, or use --force to forget it anyway.",
            )
        self._close_persistent()
        if self.status not in GONE:
            with self._aws(f"terminate instance {self.id}") as ec2:
                ec2.terminate_instances(InstanceIds=[self.id])
            self._wait("instance_terminated", "terminated")
            self.status = "terminated"
        elif self.status == "shutting-down":
            self._wait("instance_terminated", "terminated")
        self._forget_owned_key()
        if self.id:
            (known_hosts_dir() / self.id).unlink(missing_ok=True)

    # -- sessions -------------------------------------------------------------------
    def _ssh_params(self) -> dict[str, Any]:
        """Keyword arguments of the ``ssh`` session to the instance's current public IP (JSON-able)."""
        known_hosts = self.known_hosts
        if not known_hosts:
            # One file per instance: EC2 hands the same public IP to other
            # instances later, whose keys must not clash with this one's.
            known_hosts = str(_private_dir(known_hosts_dir()) / str(self.id))

        def absolute(path: str | None) -> str | None:
            return os.path.abspath(os.path.expanduser(path)) if path else None

        return {
            "host": self.public_ip,
            "user": self.user or None,
            "key_filename": absolute(self.key_filename),
            "connect_timeout": self.connect_timeout,
            "accept_new_host_key": bool(self.accept_new_host_key),
            "ssh_config": absolute(self.ssh_config),
            "known_hosts": absolute(known_hosts),
        }

    def get_session(self, pty: bool = False, shared: bool | None = None) -> Session:
        """An open session of the registry's ``ssh`` type to the instance's current public IP.

        ``pty`` and ``shared`` are accepted for the contract and ignored, as
        by the ssh resource. The SSH session type is looked up by name so any
        plugin registering ``ssh`` serves it. Unless ``persistent=no`` (or
        ``[ssh] persistent = no``), it lives in a session host shared by all
        ReproMan commands, as for ssh resources.
        """
        self.connect()
        state = self._settled("open a session on")
        if state != "running":
            raise ResourceError(
                f"{self.name!r} (EC2 instance {self.id}) is {state}, not running",
                hint=f"Start it with 'reproman start {self.name}'.",
            )
        if not self.public_ip:
            raise ResourceError(
                f"EC2 instance {self.id} of {self.name!r} has no public IP address",
                hint="Launch it in a subnet that assigns public IPs (-b subnet_id=...), or reach it via ssh_config.",
            )
        params = self._ssh_params()
        if persistent_sessions_enabled("ssh", self.persistent):
            hosted = attach_persistent_session("ssh", params, idle=persistent_idle_seconds("ssh"),
                                               label=f"aws-ec2 resource {self.name!r}")
            if hosted is not None:
                return hosted.open()
        session: Session = session_class("ssh")(**params)
        try:
            session.open()
        except BaseException:
            session.close()
            raise
        return session

    def _close_persistent(self) -> None:
        """End the session host of the current address (before the instance stops or goes)."""
        if self.public_ip and self.id:
            try:
                shutdown_persistent_session("ssh", self._ssh_params())
            except ReproManError as exc:
                log.debug("could not end the persistent connection to %s: %s", self.public_ip, exc)

    def refresh_status(self) -> str | None:
        self.connect()
        return self.status
