"""The ``docker-container`` resource: one long-lived container on a Docker Engine.

The container's main process does nothing (``sleep infinity`` under the
Engine's init, so ``stop`` is immediate instead of waiting out the
10-second kill timeout); all work happens in exec instances opened by
:class:`~reproman_backend_docker.session.DockerSession`. The inventory keeps
the container's full ID; status always comes from the Engine.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

from reproman.plugins import (
    CONNECTION_ERROR,
    NOT_FOUND,
    RUNNING,
    BackendParameterError,
    Resource,
    ResourceConnectionError,
    ResourceError,
    Session,
)
from reproman_backend_docker.engine import engine_errors, open_client
from reproman_backend_docker.ownership import (
    CREATOR_LABEL,
    INVENTORY_LABEL,
    RESOURCE_LABEL,
    creator_exited,
    creator_id,
    inventory_id,
)

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

lgr = logging.getLogger("reproman.backend_docker.resource")

DEFAULT_IMAGE = "debian:bookworm"
#: Pull policies: ``missing`` pulls only when the image is not local.
PULL_POLICIES = ("missing", "always", "never")
_PULL_ALIASES = {"true": "missing", "yes": "missing", "1": "missing", "on": "missing",
                 "false": "never", "no": "never", "0": "never", "off": "never"}
#: Label on every container we create, naming its resource (see :mod:`reproman_backend_docker.ownership`).
LABEL = RESOURCE_LABEL
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_IDLE_COMMAND = ["sleep", "infinity"]
#: Exits 0 once a process named ``sleep`` runs (read from /proc: no ps needed in the image).
_IDLE_PROBE = 'for f in /proc/[0-9]*/comm; do read -r c <"$f" 2>/dev/null && [ "$c" = sleep ] && exit 0; done; exit 1'
_START_TIMEOUT = 15
#: The Engine's word for a container frozen with ``docker pause``.
PAUSED = "paused"


def normalize_image(image: str) -> str:
    """``name`` -> ``name:latest``; names with a tag or digest are kept.

    A colon only counts as a tag separator after the last slash, so a
    registry port (``localhost:5000/img``) is not mistaken for a tag.
    """
    image = image.strip()
    if not image:
        raise BackendParameterError("backend parameter 'image' is empty", hint="Pass e.g. -b image=debian:bookworm.")
    if "@" in image or ":" in image.rsplit("/", 1)[-1]:
        return image
    return f"{image}:latest"


def pull_policy(value: Any) -> str:
    """Read ``pull`` as a policy, accepting the yes/no spellings as ``missing``/``never``."""
    if isinstance(value, bool):
        return "missing" if value else "never"
    text = str(value if value is not None else "missing").strip().lower()
    text = _PULL_ALIASES.get(text, text)
    if text not in PULL_POLICIES:
        raise BackendParameterError(
            f"backend parameter 'pull': expected one of {', '.join(PULL_POLICIES)} (or yes/no); got {value!r}"
        )
    return text


def parse_key_values(items: list[str] | None, what: str) -> dict[str, str]:
    """``["K=V", ...]`` as a dict; a missing ``=`` is a parameter error naming ``what``."""
    result: dict[str, str] = {}
    for item in items or []:
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BackendParameterError(f"backend parameter {what!r}: {item!r} is not KEY=VALUE")
        result[key] = value
    return result


def parse_volumes(items: list[str] | None) -> list[str]:
    """Validate ``host:container[:ro|rw]`` bind mounts; the Engine receives them as given."""
    binds: list[str] = []
    for item in items or []:
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
            raise BackendParameterError(
                f"backend parameter 'volumes': {item!r} is not host:/container/path[:ro]"
            )
        if len(parts) == 3 and parts[2] not in ("ro", "rw"):
            raise BackendParameterError(f"backend parameter 'volumes': mode of {item!r} must be ro or rw")
        binds.append(item)
    return binds


class DockerContainer(Resource):
    """A container on a Docker Engine, created from ``image`` and kept running for exec sessions."""

    type: ClassVar[str] = "docker-container"

    # Defaults, for instances built without going through parameter validation.
    image: str = DEFAULT_IMAGE
    engine_url: str | None = None
    seccomp_unconfined: bool = False
    volumes: list[str] | None = None
    environment: list[str] | None = None
    labels: list[str] | None = None
    working_dir: str | None = None
    user: str | None = None
    pull: str = "missing"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._client_obj: docker.DockerClient | None = None
        self._container: Container | None = None

    # -- engine ------------------------------------------------------------------------------
    def _client(self) -> docker.DockerClient:
        if self._client_obj is None:
            self._client_obj = open_client(self.engine_url or None)
        return self._client_obj

    def _describe(self) -> str:
        return f"container {self.name!r}" + (f" ({self.id[:12]})" if self.id else "")

    def _lookup(self) -> Container:
        """The container, or a one-line error saying it vanished (``ResourceError``)."""
        import docker

        client = self._client()
        with engine_errors(f"look up {self._describe()}", self.engine_url):
            try:
                container = client.containers.get(self.id or self.name)
            except docker.errors.NotFound:
                self.status = NOT_FOUND
                raise ResourceError(
                    f"{self._describe()} no longer exists in the Docker Engine (removed outside ReproMan?).",
                    hint="Delete the resource with 'reproman delete' and create it again.",
                ) from None
        self._container = container
        self.id = container.id
        self.status = container.status
        return container

    # -- lifecycle ------------------------------------------------------------------------------
    def create(self) -> dict[str, Any]:
        """Create and start the container; the image is used if local, else pulled if ``pull`` allows."""
        import docker

        image = normalize_image(self.image or DEFAULT_IMAGE)
        policy = pull_policy(self.pull)
        labels = {
            **parse_key_values(self.labels, "labels"),
            RESOURCE_LABEL: self.name,
            INVENTORY_LABEL: inventory_id(),
            CREATOR_LABEL: creator_id(),
        }
        options: dict[str, Any] = {
            "command": _IDLE_COMMAND,
            "detach": True,
            "init": True,
            "labels": labels,
            "environment": parse_key_values(self.environment, "environment") or None,
            "volumes": parse_volumes(self.volumes) or None,
            "working_dir": self.working_dir or None,
            "user": self.user or None,
            "security_opt": ["seccomp=unconfined"] if self.seccomp_unconfined else None,
        }
        if _CONTAINER_NAME.match(self.name):
            options["name"] = self.name
        client = self._client()
        self._remove_interrupted_creates(client, labels[INVENTORY_LABEL])
        self._ensure_image(client, image, policy)
        with engine_errors(f"create container {self.name!r} from {image}", self.engine_url):
            try:
                container = client.containers.create(image, **{k: v for k, v in options.items() if v is not None})
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise self._name_taken(client, labels[INVENTORY_LABEL]) from None
                raise
        self._container = container
        self.id = container.id
        try:
            self._start_and_check(container)
        except BaseException:
            with engine_errors(f"clean up container {self.name!r}", self.engine_url):
                container.remove(force=True)
            raise
        self.image = image
        return {"id": container.id, "status": self.status, "image": image}

    def _name_taken(self, client: docker.DockerClient, inventory: str) -> ResourceError:
        """Why the Engine refused the container name: another create still running, or someone else's container."""
        try:
            holder = client.containers.get(self.name)
            labels = holder.labels or {}
        except Exception:  # gone meanwhile, or unreadable: the plain message serves
            labels = {}
        creator = labels.get(CREATOR_LABEL, "")
        pid = creator.split("/")[1] if creator.count("/") == 2 else ""
        if (labels.get(INVENTORY_LABEL) == inventory and pid and pid != str(os.getpid())
                and not creator_exited(creator)):
            return ResourceError(
                f"cannot create container {self.name!r}: process {pid} ('reproman create') is creating it.",
                hint="Wait for it to finish, then see 'reproman ls'.",
            )
        return ResourceError(
            f"cannot create container {self.name!r}: the Docker Engine already has a container of that name.",
            hint="Pick another resource name, or remove that container first.",
        )

    def _remove_interrupted_creates(self, client: docker.DockerClient, inventory: str) -> None:
        """Remove containers this inventory's creates left behind when they were killed.

        Left behind means: labelled for this inventory, made by a process
        that has exited, and named by no inventory record. The inventory is
        read after the creators were found gone, so a create that recorded
        its container and then exited is never mistaken for an interrupted one.
        """
        import docker

        from reproman.plugins import recorded_resources

        with engine_errors("list containers", self.engine_url):
            candidates = [
                row for row in client.api.containers(all=True, filters={"label": f"{INVENTORY_LABEL}={inventory}"})
                if creator_exited((row.get("Labels") or {}).get(CREATOR_LABEL))
            ]
        if not candidates:
            return
        recorded = {str(r.get("id")) for r in recorded_resources().values()}
        for row in candidates:
            if row["Id"] in recorded:
                continue
            name = ",".join(n.lstrip("/") for n in row.get("Names") or []) or row["Id"][:12]
            lgr.warning(
                "removing container %s (%s) left by an interrupted 'reproman create %s'",
                name, row["Id"][:12], (row.get("Labels") or {}).get(RESOURCE_LABEL, "?"),
            )
            with engine_errors(f"remove container {name} left by an interrupted create", self.engine_url):
                try:
                    client.api.remove_container(row["Id"], force=True)
                except docker.errors.NotFound:  # another create removed it meanwhile
                    pass

    def _ensure_image(self, client: docker.DockerClient, image: str, policy: str) -> None:
        """Make ``image`` local according to ``policy``, or say in one line why it cannot be."""
        import docker

        local = True
        with engine_errors(f"look up image {image}", self.engine_url):
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                local = False
        if local and policy != "always":
            return
        if not local and policy == "never":
            raise ResourceError(
                f"image {image} is not in the Docker Engine and pull=never.",
                hint="Load or build it first (docker load / docker import), or allow pulling with -b pull=missing.",
            )
        repository, _, tag = image.rpartition(":") if "@" not in image else (image, "", "")
        try:
            with engine_errors(f"pull image {image}", self.engine_url):
                client.images.pull(repository or image, tag=tag or None)
        except ResourceConnectionError:
            raise
        except ResourceError as exc:
            if local:  # pull=always but the registry is unreachable: the local copy still serves
                lgr.warning("could not pull %s (%s); using the local image", image, exc)
                return
            raise ResourceError(
                f"image {image} is not in the Docker Engine and could not be pulled: "
                f"{str(exc).split(': ', 1)[-1]}",
                hint="Load or build it locally (docker load / docker import), or check the registry.",
            ) from None

    def _start_and_check(self, container: Container) -> None:
        """Start ``container`` and wait until its idle process is up, or say why it is not.

        The Engine's init (``--init``) is what starts, so ``start`` succeeds
        even when the image has no ``sleep``; the init then exits a moment
        later, how long a moment depending on the machine's load. Instead
        of guessing a delay, a probe exec (which also proves ``/bin/sh``
        works, as sessions need) looks for the idle process.
        """
        import docker

        with engine_errors(f"start container {self.name!r}", self.engine_url):
            container.start()
            deadline = time.monotonic() + _START_TIMEOUT
            while True:
                container.reload()
                if container.status != RUNNING:
                    break
                try:
                    if self._probe_idle(container):
                        break
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:  # 409: it stopped meanwhile; the next reload says so
                        raise
                if time.monotonic() > deadline:
                    raise ResourceError(
                        f"container {self.name!r} started but its idle process "
                        f"'{' '.join(_IDLE_COMMAND)}' did not come up within {_START_TIMEOUT} s."
                    )
                time.sleep(0.05)
        self.status = container.status
        if container.status != RUNNING:
            with engine_errors(f"read the logs of container {self.name!r}", self.engine_url):
                logs = container.logs(tail=1).decode("utf-8", "replace").strip()
            raise ResourceError(
                f"container {self.name!r} stopped right after starting ({container.status})"
                + (f": {logs}" if logs else ""),
                hint=f"The image must provide /bin/sh and '{' '.join(_IDLE_COMMAND)}'.",
            )

    def _probe_idle(self, container: Container) -> bool:
        """Whether the idle process runs in ``container`` (one exec; raises if /bin/sh cannot run)."""
        api = self._client().api
        exec_id = api.exec_create(container.id, ["/bin/sh", "-c", _IDLE_PROBE])["Id"]
        api.exec_start(exec_id)
        code: int | None = api.exec_inspect(exec_id).get("ExitCode")
        if code in (126, 127):
            raise ResourceError(
                f"container {self.name!r} cannot run /bin/sh (exit {code}).",
                hint="Use an image with a POSIX shell at /bin/sh.",
            )
        return bool(code == 0)

    def connect(self) -> None:
        """Find the container by ID (or by name, or ID prefix, when no ID is recorded); never raises."""
        try:
            self._lookup()
        except ResourceConnectionError:
            self.status = CONNECTION_ERROR
            self._container = None
        except ResourceError:
            if self.status != NOT_FOUND:
                self.status = CONNECTION_ERROR
            self._container = None

    def start(self) -> None:
        """Start the container; a paused one is unpaused (the Engine will not start it, and 'start' is what we say)."""
        container = self._lookup()
        if container.status == PAUSED:
            with engine_errors(f"unpause {self._describe()}", self.engine_url):
                container.unpause()
                container.reload()
            self.status = container.status
        if container.status != RUNNING:
            self._start_and_check(container)

    def stop(self) -> None:
        container = self._lookup()
        with engine_errors(f"stop {self._describe()}", self.engine_url):
            container.stop(timeout=10)
            container.reload()
        self.status = container.status

    def delete(self) -> None:
        """Remove the container (running or not); one already gone is not an error."""
        import docker

        client = self._client()
        with engine_errors(f"delete {self._describe()}", self.engine_url):
            try:
                client.api.remove_container(self.id or self.name, force=True)
            except docker.errors.NotFound:
                lgr.info("%s was already gone from the Docker Engine", self._describe())
        self.status = NOT_FOUND
        self._container = None

    def get_session(self, pty: bool = False, shared: bool | None = None) -> Session:
        """A session into the running container (sharing this resource's engine client)."""
        from reproman_backend_docker.session import DockerSession

        container = self._lookup()
        if container.status != RUNNING:
            raise ResourceError(
                f"{self._describe()} is {container.status}, not running.",
                hint=f"Start it with 'reproman start {self.name}'.",
            )
        return DockerSession(container.id, engine_url=self.engine_url, client=self._client())

    def provenance(self) -> dict[str, Any]:
        """The image by name and by ID: ``reproman retrace IMAGE_ID`` can describe it later."""
        container = self._lookup()
        return {"image": self.image, "image_id": container.attrs.get("Image")}

    def refresh_status(self) -> str | None:
        self.connect()
        return self.status
