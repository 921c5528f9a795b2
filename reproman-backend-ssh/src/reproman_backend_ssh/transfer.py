"""Moving files over SSH: any number of listed paths in one tar stream, each way.

Sending: a local ``tarfile`` writer streams straight into ``tar -xf -``
running at the remote root, members named after their absolute
destinations, so existing remote directories are merged into (never removed)
and no path ever appears on a command line. Fetching: the list of remote
paths is written to ``tar -cf - -T -`` on its standard input (NUL-separated
where tar is GNU tar, so any file name works) and the archive it writes is
unpacked as it arrives into core's fresh staging paths. Symbolic links
travel as links both ways.

Both directions run on one extra exec channel: its standard input is fed
from a thread while the main thread reads, because either side may fill the
SSH window (tar's error messages, the archive) while the other still writes.
"""

from __future__ import annotations

import io
import logging
import re
import select
import tarfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import paramiko

from reproman.plugins import SessionError, decode_output, extract_to_staging
from reproman_backend_ssh.shells import CHUNK, read_available

log = logging.getLogger("reproman.backend_ssh.transfer")

#: Prints what the remote tar can do; its output is parsed by :meth:`TarFlavour.parse`.
DETECT_TAR = (
    "if tar --version 2>/dev/null | grep -q 'GNU tar'; then printf gnu; "
    "tar --help 2>/dev/null | grep -q -- --keep-directory-symlink && printf ' keep-directory-symlink'; "
    "else printf other; fi"
)
#: Bytes of tar's error output kept for the message.
_STDERR_LIMIT = 64 * 1024
_MISSING = re.compile(r"^tar: \.(/.*): Cannot stat: No such file or directory$")


@attrs.frozen
class TarFlavour:
    """What the remote ``tar`` understands beyond POSIX."""

    gnu: bool = False
    keep_directory_symlink: bool = False

    @classmethod
    def parse(cls, text: str) -> TarFlavour:
        words = text.split()
        return cls(gnu="gnu" in words, keep_directory_symlink="keep-directory-symlink" in words)

    def extract_command(self) -> str:
        options = ""
        if self.gnu:
            # Existing directories keep their modes; a link to a directory stays a link.
            options = " --no-overwrite-dir" + (" --keep-directory-symlink" if self.keep_directory_symlink else "")
        return f"cd / && exec tar -xf -{options}"

    def create_command(self) -> str:
        # GNU tar: NUL-separated names, taken literally (no backslash unquoting).
        options = " --null --no-unquote" if self.gnu else ""
        return f"cd / && exec tar -cf -{options} -T -"

    def name_list(self, sources: Sequence[str]) -> bytes:
        """The names tar reads on stdin, relative to ``/`` so none starts with a dash."""
        if not self.gnu:
            bad = [s for s in sources if "\n" in s]
            if bad:
                raise SessionError(
                    f"cannot get {bad[0]!r}: a file name with a newline needs GNU tar on the resource"
                )
        separator = b"\0" if self.gnu else b"\n"
        return b"".join(b"./" + s.lstrip("/").encode("utf-8", "surrogateescape") + separator for s in sources)


class _ChannelWriter(io.RawIOBase):
    """Write-only file over a channel's stdin, in large chunks (what ``tarfile`` mode ``w|`` needs)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self.channel.sendall(bytes(self.buffer))
            self.buffer.clear()


class _ChannelReader(io.RawIOBase):
    """Read-only file over a channel's stdout that keeps draining its stderr (what ``r|`` needs)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self.stderr = bytearray()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def _keep_stderr(self, data: bytes) -> None:
        if len(self.stderr) < _STDERR_LIMIT:
            self.stderr += data

    def _stash(self, data: bytes) -> None:
        self._pending += data

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if read_available(self.channel, self._stash, self._keep_stderr):
                continue
            channel = self.channel
            if channel.eof_received or channel.closed:
                if channel.recv_ready() or channel.recv_stderr_ready():
                    continue
                return 0
            select.select([channel], [], [], 1.0)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def drain(self) -> None:
        """Read the rest of both streams (stdout discarded) until end of file."""
        while self.read(CHUNK):
            pass


def _run(channel: paramiko.Channel, feed: Callable[[_ChannelWriter], object],
         consume: Callable[[_ChannelReader], None]) -> tuple[int, str]:
    """Feed the channel's stdin from a thread while ``consume`` reads; return (exit status, stderr)."""
    writer = _ChannelWriter(channel)
    reader = _ChannelReader(channel)
    failures: list[BaseException] = []

    def feeder() -> None:
        try:
            feed(writer)
            writer.flush()
            channel.shutdown_write()
        except BaseException as exc:  # handed to the main thread below
            failures.append(exc)
            channel.close()

    thread = threading.Thread(target=feeder, name="reproman-ssh-feed", daemon=True)
    thread.start()
    try:
        consume(reader)
        reader.drain()
        status = channel.recv_exit_status()
    finally:
        channel.close()
        thread.join(timeout=30)
    if failures:
        raise failures[0]
    return status, decode_output(bytes(reader.stderr)).strip()


def send(channel: paramiko.Channel, flavour: TarFlavour, pairs: Sequence[tuple[Path, str]], where: str) -> None:
    """Stream local paths into ``tar -xf -`` at the remote root; ``pairs`` hold absolute destinations."""

    def feed(writer: _ChannelWriter) -> None:
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for src, dest in pairs:
                tar.add(str(src), arcname=dest.lstrip("/"), recursive=True, filter=_owned_by_receiver)

    channel.exec_command(flavour.extract_command())
    try:
        status, errors = _run(channel, feed, lambda reader: None)
    except OSError as exc:
        raise SessionError(f"cannot put files on {where}: {exc.strerror or exc}") from None
    except (EOFError, paramiko.SSHException) as exc:
        raise SessionError(f"cannot put files on {where}: {_one_line(exc)}") from None
    if status != 0:
        detail = errors.splitlines()[0] if errors else f"tar exited with {status}"
        raise SessionError(f"cannot put {_shown([d for _s, d in pairs])} on {where}: {detail}")


def fetch(channel: paramiko.Channel, flavour: TarFlavour, staged: Sequence[tuple[str, Path]], where: str) -> None:
    """Archive absolute remote paths with ``tar -cf - -T -`` and unpack them at their staged paths."""
    names = flavour.name_list([src for src, _path in staged])
    prefixes = [(src.lstrip("/"), path) for src, path in staged]
    unpacked: list[BaseException] = []

    def consume(reader: _ChannelReader) -> None:
        try:
            extract_to_staging(io.BufferedReader(reader, CHUNK), prefixes)
        except (SessionError, tarfile.TarError) as exc:
            unpacked.append(exc)  # tar's own complaint, if any, explains it better

    channel.exec_command(flavour.create_command())
    try:
        status, errors = _run(channel, lambda writer: writer.write(names), consume)
    except (EOFError, paramiko.SSHException) as exc:
        raise SessionError(f"cannot get files from {where}: {_one_line(exc)}") from None
    if status != 0:
        raise SessionError(_tar_complaint(errors, status, [s for s, _p in staged], where))
    if unpacked:
        problem = unpacked[0]
        if isinstance(problem, SessionError):
            raise problem
        raise SessionError(f"cannot unpack files from {where}: {problem}")


def _tar_complaint(errors: str, status: int, sources: Sequence[str], where: str) -> str:
    for line in errors.splitlines():
        missing = _MISSING.match(line)
        if missing:
            return f"cannot get {missing.group(1)} from {where}: no such file or directory"
    lines = [line for line in errors.splitlines() if "Exiting with failure" not in line]
    detail = lines[0] if lines else f"tar exited with {status}"
    return f"cannot get {_shown(sources)} from {where}: {detail}"


def _shown(paths: Sequence[str]) -> str:
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _owned_by_receiver(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Members carry no owner: whoever unpacks them on the resource owns them."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _one_line(text: object) -> str:
    return " ".join(str(text).split())
