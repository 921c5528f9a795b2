"""Test images built without a registry, for this package's tests, benchmarks and other plugins' tests.

No registry is reachable on the project's machines, so images come from
what Debian ships and ``docker import`` (here: the SDK's image import).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

BUSYBOX_IMAGE = "reproman-test-busybox:latest"
DEBIAN_IMAGE = "reproman-test-debian:bookworm"


def ensure_busybox_image(client: docker.DockerClient, name: str = BUSYBOX_IMAGE) -> str:
    """``name``, imported first if the Engine does not have it."""
    import docker

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        build_busybox_image(client, name)
    return name


def build_busybox_image(client: docker.DockerClient, name: str = BUSYBOX_IMAGE) -> None:
    """Import a busybox-only root file system as ``name`` (what tools/ci/docker.sh does with the CLI).

    Needs Debian's ``busybox-static`` on this machine. The result has every
    tool the session contract uses (``stat -c``, ``mktemp``, ``tar``,
    ``env -0``...), ``/tmp``, and a root user, in 2 MB.
    """
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise FileNotFoundError("/bin/busybox is missing: apt-get install busybox-static (or run tools/ci/docker.sh)")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for directory, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777),
                                ("dev", 0o755), ("proc", 0o755), ("sys", 0o755)):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
                tar.addfile(info)
        for path, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
            payload = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(payload), 0o644
            tar.addfile(info, io.BytesIO(payload))
    repository, _, tag = name.rpartition(":")
    client.api.import_image_from_data(
        data.getvalue(), repository=repository, tag=tag, changes=["ENV PATH=/bin", 'CMD ["/bin/sh"]']
    )
