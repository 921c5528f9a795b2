"""Tar archives as streams: built while they are sent, unpacked while they arrive.

The Engine's archive endpoints (``PUT``/``GET /containers/{id}/archive``)
speak tar. Building the archive in a temporary file first (as the generic
:meth:`Session.put_many` does) costs a full extra copy on disk and, for a
1 GiB file, seconds; holding it in memory is not an option. Here the archive
is a generator of bounded chunks that ``requests`` sends with chunked
transfer encoding, and the download is read through a file-like wrapper by
:mod:`tarfile`'s stream mode, so memory use is a few MiB whatever the size.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from reproman.errors import SessionError

lgr = logging.getLogger(__name__)

#: Size of the pieces handed to the HTTP layer: big enough that a tree of
#: small files goes out in few writes, small enough to keep memory flat.
CHUNK_SIZE = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


def tar_chunks(
    items: Sequence[tuple[Path, str]], *, uid: int = 0, gid: int = 0, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """Yield a tar archive of ``items`` (local path, member name) in chunks of about ``chunk_size``.

    Directories are walked recursively; symlinks are stored as symlinks;
    regular files keep their mode bits and modification time. Members are
    owned by ``uid``:``gid`` because the Engine applies the archive's
    ownership when it unpacks, and files should belong to the container's
    user, not to whoever owns them here.
    """
    buffer = bytearray()
    for local, name in items:
        for header, path, size in _members(local, name.strip("/"), uid, gid):
            buffer += header
            if path is not None:
                with open(path, "rb") as stream:
                    remaining = size
                    while remaining:
                        room = max(chunk_size - len(buffer), _BLOCK)
                        piece = stream.read(min(room, remaining))
                        if not piece:
                            raise SessionError(f"cannot put {path}: the file shrank while it was being sent")
                        buffer += piece
                        remaining -= len(piece)
                        if len(buffer) >= chunk_size:
                            yield bytes(buffer)
                            buffer.clear()
                padding = -size % _BLOCK
                buffer += b"\0" * padding
            if len(buffer) >= chunk_size:
                yield bytes(buffer)
                buffer.clear()
    buffer += b"\0" * (2 * _BLOCK)
    yield bytes(buffer)


def _members(local: Path, name: str, uid: int, gid: int) -> Iterator[tuple[bytes, Path | None, int]]:
    """Headers (and the file to follow each, with its size) for ``local`` and, if a directory, its tree."""
    try:
        st = os.lstat(local)
    except FileNotFoundError:
        raise SessionError(f"cannot put {local}: no such file or directory") from None
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(local)
        yield _header(info), None, 0
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        yield _header(info), None, 0
        with os.scandir(local) as entries:
            children = sorted(entry.name for entry in entries)
        for child in children:
            yield from _members(local / child, f"{name}/{child}", uid, gid)
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        yield _header(info), local, st.st_size
    else:
        lgr.warning("not sending %s: only regular files, directories and symlinks can be put", local)


def _header(info: tarfile.TarInfo) -> bytes:
    # PAX headers carry long and non-ASCII names exactly; Go's archive/tar reads them.
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (the SDK's archive download).

    Only the current chunk is held, so :mod:`tarfile` can read an archive of
    any size with constant memory.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def extract_member_tree(stream: io.RawIOBase, top: str, dest: Path) -> None:
    """Unpack an archive whose members all live under ``top`` so that ``top`` becomes ``dest``.

    The archive is staged in a hidden directory next to ``dest`` (same file
    system, so the final step is a rename, not a copy of a large file) and
    then moved over whatever ``dest`` was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".reproman-get-", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BufferedReader(stream, CHUNK_SIZE), mode="r|") as tar:
            tar.extractall(staging, members=_renamed(tar, top, "0"), numeric_owner=True, filter=_keep_modes)
        staged = staging / "0"
        if not staged.exists() and not staged.is_symlink():
            raise SessionError(f"cannot get {top}: the engine sent an empty archive")
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.replace(staged, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _renamed(tar: tarfile.TarFile, top: str, new_top: str) -> Iterator[tarfile.TarInfo]:
    """Members of ``tar`` with the leading ``top`` component replaced, others refused."""
    prefix = top + "/"
    for member in tar:
        name = member.name.rstrip("/")
        if name == top or name.startswith(prefix):
            member.name = new_top + name[len(top):]
        else:
            raise SessionError(f"unexpected member {member.name!r} in the archive of {top}")
        if member.islnk() and (member.linkname == top or member.linkname.startswith(prefix)):
            member.linkname = new_top + member.linkname[len(top):]
        yield member


def _keep_modes(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """The ``tar`` safety filter (no absolute names, nothing outside ``path``), but all permission bits kept.

    The stock filter also clears group/other write bits, which would make a
    round trip change a file's mode; those bits are the user's data here.
    Files become ours, as a local copy would: the container's user IDs mean
    nothing on this machine (and only root could apply them).
    """
    checked = tarfile.tar_filter(member, path)
    if checked is None:
        return None
    mode = checked.mode if member.mode is None else member.mode & 0o777
    return checked.replace(mode=mode, uid=os.getuid(), gid=os.getgid(), uname="", gname="", deep=False)
