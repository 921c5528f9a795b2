"""boto3 clients for the EC2 backend, and AWS errors turned into one-line ReproMan errors.

Why a module of its own: every lifecycle verb talks to EC2 and every one of
them must fail the same way, with a message that says what to do (fix the
credentials, pick an AMI of that region...) instead of a botocore traceback.
Credentials follow boto3's normal chain (environment, shared files,
``profile_name``, SSO, instance roles); keys given as backend parameters
are used for the current command only and never written anywhere.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.parsers
import botocore.session

from reproman.plugins import ConfigError, ResourceConnectionError, ResourceError

log = logging.getLogger("reproman.backend_aws")

#: Region used when neither the parameter nor the AWS configuration names one
#: (the old ReproMan default).
FALLBACK_REGION = "us-east-1"
DEFAULT_API_CONNECT_TIMEOUT = 10

#: Error codes meaning "these credentials are not valid" (as opposed to "not allowed").
AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "RequestExpired",
        "InvalidToken",
        "UnrecognizedClientException",
    }
)
CREDENTIALS_HINT = (
    "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run 'aws configure', pass -b profile_name=PROFILE, "
    "or pass -b access_key_id=... -b secret_access_key=... (never stored)."
)

#: Every exception boto3 raises for an AWS or transport problem.
AWS_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    # Not a BotoCoreError: raised when the endpoint answers with something
    # that is not an EC2 response (an HTML error page, a proxy's message).
    botocore.parsers.ResponseParserError,
)


_shared_loader: Any = None


def _botocore_session() -> botocore.session.Session:
    """A fresh botocore session sharing one data loader with the others of this process.

    Why: each session otherwise re-reads and parses EC2's large service model
    (about 0.5 s), so ``ls --refresh`` over ten EC2 resources would spend
    seconds before sending a single request. Credentials and region stay per session.
    """
    global _shared_loader
    session = botocore.session.get_session()
    if _shared_loader is None:
        _shared_loader = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _shared_loader)
    return session


def make_session(
    *,
    region_name: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    profile_name: str | None = None,
) -> boto3.session.Session:
    """A boto3 session; explicit keys win, otherwise boto3's own credential chain applies."""
    if bool(access_key_id) != bool(secret_access_key):
        raise ConfigError(
            "access_key_id and secret_access_key go together: give both or neither",
            hint="Better, give neither and let the AWS credential chain (environment, ~/.aws) provide them.",
        )
    try:
        session = boto3.session.Session(
            botocore_session=_botocore_session(),
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            profile_name=profile_name or None,
            region_name=region_name or None,
        )
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError(
            f"AWS profile {profile_name!r} is not defined",
            hint="Check ~/.aws/config and ~/.aws/credentials, or drop profile_name.",
        ) from None
    # boto3 appends its data directory to the (shared) loader's path on every session.
    paths = _shared_loader.search_paths
    paths[:] = list(dict.fromkeys(paths))
    return session


def make_client(session: boto3.session.Session, region: str, endpoint_url: str | None, connect_timeout: int | None) -> Any:
    """An EC2 client with bounded timeouts and few retries, so a dead endpoint fails in seconds."""
    config = botocore.config.Config(
        connect_timeout=connect_timeout or DEFAULT_API_CONNECT_TIMEOUT,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 2},
    )
    try:
        return session.client("ec2", region_name=region, endpoint_url=endpoint_url or None, config=config)
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError(
            f"AWS profile {session.profile_name!r} is not defined",
            hint="Check ~/.aws/config and ~/.aws/credentials, or drop profile_name.",
        ) from None
    except botocore.exceptions.InvalidRegionError:
        raise ConfigError(
            f"{region!r} is not a valid AWS region name",
            hint="Use a name such as us-east-1 or eu-central-1 (see 'aws ec2 describe-regions').",
        ) from None
    except ValueError as exc:  # e.g. a malformed endpoint_url
        raise ConfigError(f"cannot use EC2 endpoint {endpoint_url!r}: {exc}") from None


def known_regions() -> set[str]:
    """Regions botocore knows in any partition (it has no network cost)."""
    session = boto3.session.Session(botocore_session=_botocore_session())
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _message(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return " ".join(str(error.get("Message") or exc).split())
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def translate(
    exc: BaseException,
    action: str,
    *,
    region: str,
    endpoint_url: str | None = None,
    image: str | None = None,
    key_name: str | None = None,
    security_group: str | None = None,
    subnet_id: str | None = None,
    instance_type: str | None = None,
) -> ResourceError:
    """One-line :class:`ResourceError` for a boto3 exception raised while doing ``action``.

    ``action`` completes "cannot ..." (e.g. ``"launch the instance"``). The
    keyword arguments name the resource's settings so the message can say
    which one AWS refused.
    """
    where = f"region {region}" + (f" at {endpoint_url}" if endpoint_url else "")
    code = error_code(exc)
    message = _message(exc)
    if isinstance(exc, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError)):
        return ResourceError(f"cannot {action}: no AWS credentials found", hint=CREDENTIALS_HINT)
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return ResourceError(f"cannot {action}: {message}", hint="Check ~/.aws/config or drop profile_name.")
    if isinstance(
        exc,
        (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
        ),
    ):
        if region not in known_regions():
            return ResourceError(
                f"cannot {action}: unknown AWS region {region!r} (its EC2 endpoint cannot be reached)",
                hint="Check region_name (e.g. us-east-1); if the region is new, upgrade botocore.",
            )
        return ResourceConnectionError(
            f"cannot {action}: the EC2 API of {where} cannot be reached: {message}",
            hint="Check the network (or endpoint_url) and try again.",
        )
    if code in AUTH_CODES:
        return ResourceError(f"cannot {action}: AWS rejected the credentials ({code}: {message})", hint=CREDENTIALS_HINT)
    if code == "UnauthorizedOperation" or code == "AccessDenied":
        return ResourceError(
            f"cannot {action}: these AWS credentials are not allowed to ({code})",
            hint="Ask your AWS administrator for the EC2 permissions ReproMan needs (see the backend's README).",
        )
    if code == "OptInRequired":
        return ResourceError(f"cannot {action}: {message}", hint=f"Enable {region} (or the AMI's subscription) first.")
    if code.startswith("InvalidAMIID"):
        return ResourceError(
            f"cannot {action}: AMI {image!r} does not exist in {where} ({code})",
            hint="AMI IDs differ per region: look one up for this region (e.g. 'aws ec2 describe-images').",
        )
    if code.startswith("InvalidKeyPair"):
        return ResourceError(
            f"cannot {action}: key pair {key_name!r} does not exist in {where}",
            hint="Omit key_name to have ReproMan create or import one (with key_filename), "
            "or create it in this region first.",
        )
    if code.startswith("InvalidGroup"):
        return ResourceError(
            f"cannot {action}: security group {security_group!r} does not exist in {where} ({message})",
            hint="In a non-default VPC give the group's ID (sg-...).",
        )
    if code.startswith("InvalidSubnet"):
        return ResourceError(f"cannot {action}: subnet {subnet_id!r} does not exist in {where}")
    if code in ("Unsupported", "InvalidParameterValue") and instance_type and instance_type in message:
        return ResourceError(f"cannot {action}: instance type {instance_type!r} is not available: {message}")
    if code in ("InsufficientInstanceCapacity", "InstanceLimitExceeded", "VcpuLimitExceeded"):
        return ResourceError(f"cannot {action}: {message}", hint="Try another instance type, zone or region.")
    if isinstance(exc, botocore.exceptions.WaiterError):
        return ResourceError(f"cannot {action}: {message}")
    if isinstance(exc, botocore.parsers.ResponseParserError):
        return ResourceError(
            f"cannot {action}: the EC2 API of {where} sent a response that is not EC2's (an internal server error?)",
            hint="Check endpoint_url and the parameters (security_group, subnet_id...).",
        )
    if code:
        return ResourceError(f"cannot {action}: {code}: {message}")
    return ResourceError(f"cannot {action}: {type(exc).__name__}: {message}")
