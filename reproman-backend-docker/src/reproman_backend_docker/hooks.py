"""Entry point module: registers this distribution's components (cheap to import).

Only records live here; the ``docker`` SDK is imported by the resource and
session modules when a command actually touches a container, so
``reproman --help``, ``reproman plugins`` and ``backend-parameters`` never
pay for it (a test checks this).
"""

from __future__ import annotations

from reproman.plugins import Parameter, ResourceType, SessionType, hookimpl

#: Kept equal to ``resource.DEFAULT_IMAGE`` (not imported from there: that module loads docker lazily, but
#: importing it still costs more than this record needs).
DEFAULT_IMAGE = "debian:bookworm"

PARAMETERS = (
    Parameter(
        name="image",
        doc="Image to create the container from; a name without a tag means ':latest'",
        default=DEFAULT_IMAGE,
    ),
    Parameter(
        name="engine_url",
        doc="Docker Engine address (e.g. unix:///var/run/docker.sock, tcp://host:2375); "
        "empty means DOCKER_HOST, else the local socket",
    ),
    Parameter(
        name="seccomp_unconfined",
        doc="Run without the default seccomp profile (needed by some tracers and old images)",
        type="bool",
        default=False,
    ),
    Parameter(
        name="volumes",
        doc="Bind mounts, comma-separated host_path:/container/path[:ro]",
        type="list",
    ),
    Parameter(
        name="environment",
        doc="Environment variables of the container, comma-separated KEY=VALUE",
        type="list",
    ),
    Parameter(
        name="labels",
        doc="Extra container labels, comma-separated KEY=VALUE (org.reproman.resource is always set)",
        type="list",
    ),
    Parameter(
        name="working_dir",
        doc="Working directory in the container; relative paths in put/get and commands start here",
    ),
    Parameter(name="user", doc="User (name or UID[:GID]) that the container and its commands run as"),
    Parameter(
        name="pull",
        doc="When to pull the image: missing (only if not local), always, never; yes/no mean missing/never",
        default="missing",
    ),
)


@hookimpl
def reproman_resource_types() -> list[ResourceType]:
    return [
        ResourceType(
            name="docker-container",
            description="A long-lived container on a Docker Engine (via the Docker SDK)",
            factory="reproman_backend_docker.resource:DockerContainer",
            parameters=PARAMETERS,
        )
    ]


@hookimpl
def reproman_session_types() -> list[SessionType]:
    return [
        SessionType(
            name="docker",
            description="Exec and archive calls into a running container: DockerSession(container, engine_url=...)",
            factory="reproman_backend_docker.session:DockerSession",
        )
    ]
