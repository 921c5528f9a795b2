"""Tar archives as streams: built while they are sent, read while they arrive.

The Engine's archive endpoints (``PUT``/``GET /containers/{id}/archive``)
speak tar, and so does ``tar`` run in the container. Building an archive in
a temporary file first (as the generic :meth:`Session._send` does) costs a
full extra copy on disk and, for a 1 GiB file, seconds; holding it in memory
is not an option. Here the archive is a generator of bounded chunks that
``requests`` sends with chunked transfer encoding, and a download is read
through a file-like wrapper by :mod:`tarfile`'s stream mode, so memory use is
a few MiB whatever the size.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from reproman.plugins import SessionError

lgr = logging.getLogger("reproman.backend_docker.tarstream")

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


#: Member types that carry no data, whatever their size field says (as :mod:`tarfile` reads them).
_NO_DATA_TYPES = frozenset(b"123456")
_ZERO_BLOCK = bytes(_BLOCK)
_PAX_TYPES = frozenset(b"xX")
#: Headers whose data describes the next member (global pax records, GNU long names) without a size of its own.
_META_TYPES = frozenset(b"gLK")


def join_archives(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """One archive out of several written back to back, as ``xargs tar -c`` makes when it runs tar twice.

    Each archive ends with zero blocks that a reader takes for the end of
    everything; those are dropped here and one end marker is written after
    the last member. Headers are walked only to know how much data follows
    each (octal or base-256 sizes, a pax ``size`` record overriding the next
    member's); member data passes through unread.
    """
    pending = bytearray()
    data_left = 0  # member data (padded to blocks) still to pass through
    pax: bytearray | None = None  # the data of a pax header, gathered to read its size record
    next_size: int | None = None
    for chunk in chunks:
        pending += chunk
        pos = 0
        out = bytearray()
        with memoryview(pending) as view:
            while True:
                if data_left:
                    take = min(data_left, len(pending) - pos)
                    out += view[pos : pos + take]
                    if pax is not None:
                        pax += view[pos : pos + take]
                    pos += take
                    data_left -= take
                    if data_left:
                        break
                    if pax is not None:
                        next_size = _pax_size(bytes(pax), next_size)
                        pax = None
                if len(pending) - pos < _BLOCK:
                    break
                block = bytes(view[pos : pos + _BLOCK])
                pos += _BLOCK
                if block == _ZERO_BLOCK:
                    continue  # the end marker of one of the archives
                out += block
                kind = block[156]
                if kind in _PAX_TYPES:
                    pax = bytearray()
                    size = _header_size(block)
                elif kind in _META_TYPES:
                    size = _header_size(block)
                elif kind in _NO_DATA_TYPES:
                    size = 0
                    next_size = None
                else:
                    size = next_size if next_size is not None else _header_size(block)
                    next_size = None
                data_left = size + (-size % _BLOCK)
        del pending[:pos]
        if out:
            yield bytes(out)
    if pending or data_left:
        raise SessionError("the archive from the container ended in the middle of a member")
    yield b"\0" * (2 * _BLOCK)


def _header_size(block: bytes) -> int:
    """The size field of a tar header: octal digits, or base-256 when its first byte has the high bit."""
    field = bytes(block[124:136])
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits or b"0", 8)
    except ValueError:
        raise SessionError("the archive from the container has a damaged member header") from None


def _pax_size(data: bytes, current: int | None) -> int | None:
    """The ``size`` record of pax extended header data (``"<len> size=<n>\\n"``), if it has one."""
    for record in data.split(b"\n"):
        _length, _, keyword = record.partition(b" ")
        if keyword.startswith(b"size="):
            try:
                return int(keyword[5:])
            except ValueError:
                raise SessionError("the archive from the container has a damaged pax header") from None
    return current
