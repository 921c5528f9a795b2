"""Which inventory a container belongs to, and whether the create that made it is still running.

``reproman create`` makes the container first and records it in the
inventory afterwards. A create killed in between (kill -9, a lost machine)
leaves a running container that no inventory knows about, and it holds the
resource's name in the Engine, so the next ``create`` of that name failed.

Every container a create makes therefore carries three labels: the resource
name, the inventory it is meant for (this host, this user and the inventory
file's path, hashed) and the creating process (host, PID and the process's
start time, so a reused PID is not mistaken for it). A container with this
inventory's label whose creator has exited and which no inventory record
names is left over from an interrupted create: the next create removes it.
Containers of other inventories or other users, of a create still running,
or made by another host (whose processes cannot be checked from here) are
never touched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from pathlib import Path

lgr = logging.getLogger("reproman.backend_docker.ownership")

#: The resource name; set on every container ReproMan creates.
RESOURCE_LABEL = "org.reproman.resource"
#: The inventory the container is recorded in (see :func:`inventory_id`).
INVENTORY_LABEL = "org.reproman.inventory"
#: The process that created it (see :func:`creator_id`).
CREATOR_LABEL = "org.reproman.creator"


def inventory_id() -> str:
    """This host, user and inventory file, as a short stable token for a label."""
    from reproman.plugins import inventory_path

    path = os.path.realpath(inventory_path())
    token = f"{socket.gethostname()}\0{os.getuid()}\0{path}"
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def creator_id(pid: int | None = None) -> str:
    """``host/pid/start`` of the running process (``start`` empty where /proc is absent)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{pid}/{_start_time(pid) or ''}"


def creator_exited(creator: str | None) -> bool:
    """Whether the process named by a :func:`creator_id` label has certainly exited.

    False when it still runs, when the label is missing or malformed, and
    when it names another host: only what can be checked here counts as gone.
    """
    host, _, rest = (creator or "").partition("/")
    pid_text, _, start = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's: compare start times below
        pass
    current = _start_time(pid)
    return bool(start) and current is not None and current != start


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name before ")" may hold spaces
    return fields[19] if len(fields) > 19 else None
