"""Entry point module: registers the ``ssh`` resource and session types.

Cheap to import on purpose (no fabric or paramiko here): core imports every
plugin's hooks module to list components, and only :meth:`load` on a record
imports the implementation.
"""

from __future__ import annotations

from reproman.plugins import Parameter, ResourceType, SessionType, hookimpl

PARAMETERS = (
    Parameter(name="host", doc="Host name, address or a Host alias from ~/.ssh/config", required=True),
    Parameter(name="port", doc="SSH port (default: Port from ssh_config, else 22)", type="int", minimum=1, maximum=65535),
    Parameter(name="user", doc="Login name (default: User from ssh_config, else the local user)"),
    Parameter(
        name="key_filename",
        doc="Private key file; tried before IdentityFile entries of ssh_config and the default keys",
    ),
    Parameter(
        name="connect_timeout",
        doc="Seconds to wait for the connection (default: ConnectTimeout from ssh_config, else 10)",
        type="int",
        minimum=1,
        maximum=24 * 3600,  # a day: longer is a typo, and a socket timeout must fit a C timeval
    ),
    Parameter(
        name="accept_new_host_key",
        doc="Trust and record the key of a host not yet in known_hosts (a changed key is always refused)",
        type="bool",
        default=False,
    ),
    Parameter(
        name="ssh_config",
        doc="SSH config file to use instead of ~/.ssh/config and /etc/ssh/ssh_config",
    ),
    Parameter(
        name="known_hosts",
        doc="known_hosts file (default: UserKnownHostsFile from ssh_config, else ~/.ssh/known_hosts)",
    ),
    Parameter(
        name="persistent",
        doc=(
            "Keep one authenticated connection for all ReproMan commands of this user, closed after "
            "[ssh] idle_timeout seconds unused (default: [ssh] persistent, else yes); no connects each time"
        ),
        type="bool",
    ),
)


@hookimpl
def reproman_resource_types() -> list[ResourceType]:
    return [
        ResourceType(
            name="ssh",
            description="An existing host over SSH (honours ~/.ssh/config; one persistent connection for all commands)",
            factory="reproman_backend_ssh.resource:SSHResource",
            parameters=PARAMETERS,
        )
    ]


@hookimpl
def reproman_session_types() -> list[SessionType]:
    return [
        SessionType(
            name="ssh",
            description="SSH via Fabric/paramiko: persistent remote shell, tar streams for trees",
            factory="reproman_backend_ssh.session:SSHSession",
        )
    ]
