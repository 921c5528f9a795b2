"""Entry point module: registers the ``aws-ec2`` resource type.

Cheap to import on purpose: core imports every plugin's hooks module to list
components and print ``--help``, so nothing here (or in what it imports)
touches boto3, botocore, fabric or paramiko. The implementation is named by
import path and loaded only when a command needs an EC2 resource.

The parameter names are the old ReproMan ``aws-ec2`` backend's
(``region_name``, ``instance_type``, ``image``, ``key_name``,
``key_filename``, ``security_group``, ``access_key_id``,
``secret_access_key``, ``user``), so existing command lines keep working.
"""

from __future__ import annotations

from reproman.plugins import Parameter, ResourceType, hookimpl

#: Default seconds to wait for the instance to reach a state (running, stopped...).
DEFAULT_WAIT_TIMEOUT = 600

PARAMETERS = (
    Parameter(
        name="image",
        doc=(
            "AMI ID to boot (ami-...; AMI IDs differ per region), or 'resolve:ssm:PARAMETER' to let EC2 "
            "look one up, e.g. resolve:ssm:/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/"
            "hvm/ebs-gp2/ami-id"
        ),
        required=True,
    ),
    Parameter(name="instance_type", doc="EC2 instance type (e.g. t3.medium)", default="t2.micro"),
    Parameter(
        name="region_name",
        doc="AWS region (default: your AWS configuration's region, else us-east-1); recorded at create",
    ),
    Parameter(
        name="key_name",
        doc=(
            "Name of an EC2 key pair that already exists in the region. Omit it to have ReproMan import "
            "key_filename's public key, or (without key_filename) create a key pair and keep its private "
            "key under ReproMan's config directory"
        ),
    ),
    Parameter(
        name="key_filename",
        doc="Private SSH key file matching key_name (or to import when key_name is not given)",
    ),
    Parameter(
        name="security_group",
        doc="Security group ID (sg-...) or, in a default VPC, name (default: the VPC's default group); "
        "it must allow inbound SSH from this machine",
    ),
    Parameter(name="subnet_id", doc="Subnet to launch into (default: the default VPC's subnet for the zone)"),
    Parameter(name="user", doc="Login user on the instance (ubuntu for Ubuntu AMIs, ec2-user for Amazon Linux)",
              default="ubuntu"),
    Parameter(
        name="access_key_id",
        doc="AWS access key ID; never stored. Prefer the usual AWS credential chain "
        "(AWS_ACCESS_KEY_ID, ~/.aws/credentials, profile_name, instance roles)",
        secret=True,
    ),
    Parameter(name="secret_access_key", doc="AWS secret access key; never stored (see access_key_id)", secret=True),
    Parameter(name="profile_name", doc="Named profile of ~/.aws/credentials and ~/.aws/config to use"),
    Parameter(
        name="endpoint_url",
        doc="EC2 API URL to use instead of AWS's (an EC2-compatible cloud, or moto for tests)",
    ),
    Parameter(
        name="connect_timeout",
        doc="Seconds to wait when connecting to the EC2 API or to the instance over SSH (default 10)",
        type="int",
        minimum=1,
        maximum=24 * 3600,  # a day: longer is a typo, and a socket timeout must fit a C timeval
    ),
    Parameter(
        name="wait_timeout",
        doc="Seconds to wait for the instance to become running, stopped or terminated",
        type="int",
        minimum=1,
        maximum=24 * 3600,  # a day: longer is a typo
        default=DEFAULT_WAIT_TIMEOUT,
    ),
    Parameter(
        name="wait_status_ok",
        doc="After create and start, also wait for EC2's status checks to pass (sshd is up by then)",
        type="bool",
        default=True,
    ),
    Parameter(
        name="accept_new_host_key",
        doc=(
            "Trust the new instance's SSH host key on first contact (a fresh instance's key cannot be known "
            "in advance). Keys are kept per instance, so a public IP reused by another instance never "
            "clashes; a changed key for the same instance is always refused"
        ),
        type="bool",
        default=True,
    ),
    Parameter(
        name="known_hosts",
        doc="known_hosts file for the instance (default: one file per instance under ReproMan's config directory)",
    ),
    Parameter(name="ssh_config", doc="SSH config file to use instead of ~/.ssh/config (e.g. for ProxyJump)"),
    Parameter(
        name="persistent",
        doc=(
            "Keep one SSH connection to the instance for all ReproMan commands, closed after [ssh] "
            "idle_timeout seconds unused, on stop and on delete (default: [ssh] persistent, else yes)"
        ),
        type="bool",
    ),
)


@hookimpl
def reproman_resource_types() -> list[ResourceType]:
    return [
        ResourceType(
            name="aws-ec2",
            description="An Amazon EC2 instance ReproMan launches, stops, starts and terminates; used over SSH",
            factory="reproman_backend_aws.resource:EC2Resource",
            parameters=PARAMETERS,
        )
    ]
