"""A session into a running container, through the Engine API only (no docker CLI).

Commands are Engine *exec* instances run with ``/bin/sh -c``: one create,
one start (its output demultiplexed, so stdout and stderr stay apart, which
the old tool's merged stream could not do) and one inspect for the exact exit
status: the same three calls the SDK's own ``exec_run`` makes, so a command
costs what ``exec_run`` costs. Files travel as tar streams through the
archive endpoints (see :mod:`reproman_backend_docker.tarstream`), never
through a command, so a 1 GiB file needs neither a temporary archive nor
memory for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import shlex
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproman.errors import ReproManError, ResourceConnectionError, SessionError
from reproman.resources.session import CommandResult, Session
from reproman_backend_docker.engine import engine_label, is_connection_failure, open_client, short_reason
from reproman_backend_docker.tarstream import CHUNK_SIZE, ChunkReader, extract_member_tree, tar_chunks

if TYPE_CHECKING:
    import docker

lgr = logging.getLogger(__name__)

_SHELL = "/bin/sh"
#: Go's ``os.ModeSymlink`` as the Engine reports it in archive stats.
_GO_MODE_SYMLINK = 1 << 27


class DockerSession(Session):
    """Runs commands in, and moves files to and from, one running container.

    ``container`` is a container name, ID or unique ID prefix. Pass
    ``client`` to share an open SDK client (the resource does); otherwise
    the session opens its own for ``engine_url`` (``DOCKER_HOST`` and the
    local socket when empty) and closes it in :meth:`close`.
    """

    def __init__(
        self, container: str, *, engine_url: str | None = None, client: docker.DockerClient | None = None
    ) -> None:
        super().__init__()
        self._engine_url = engine_url
        self._own_client = client is None
        self._client = client if client is not None else open_client(engine_url)
        self._api = self._client.api
        self._ref = container
        info = self._inspect()
        #: Full container ID: exec and archive calls use it, not the name, so a
        #: container renamed meanwhile is still the one we opened.
        self.container_id: str = info["Id"]
        self.label: str = (info.get("Name") or "").lstrip("/") or self.container_id[:12]
        config = info.get("Config") or {}
        #: Where relative paths point: the container's working directory.
        self.workdir: str = config.get("WorkingDir") or "/"
        self._user: str = config.get("User") or ""
        self._owner: tuple[int, int] | None = None
        if not (info.get("State") or {}).get("Running"):
            raise self._not_running(info)

    # -- errors -------------------------------------------------------------------
    def _inspect(self) -> dict[str, Any]:
        import docker

        try:
            return self._api.inspect_container(self._ref)  # type: ignore[no-any-return]
        except docker.errors.NotFound:
            raise self._gone() from None
        except docker.errors.DockerException as exc:  # API refusals, and NullResource for an empty reference
            raise SessionError(f"cannot inspect container {self._ref!r}: {short_reason(exc)}") from None
        except Exception as exc:
            if is_connection_failure(exc):
                raise self._lost(exc) from None
            raise

    def _gone(self) -> SessionError:
        return SessionError(
            f"container {getattr(self, 'label', self._ref)!r} no longer exists in the Docker Engine "
            "(removed outside ReproMan?).",
            hint="Delete the resource with 'reproman delete' and create it again.",
        )

    def _not_running(self, info: dict[str, Any] | None = None) -> SessionError:
        state = ((info or {}).get("State") or {}).get("Status") or "not running"
        return SessionError(
            f"container {self.label!r} is {state}, not running.", hint=f"Start it with 'reproman start {self.label}'."
        )

    def _lost(self, exc: BaseException) -> ResourceConnectionError:
        return ResourceConnectionError(
            f"lost the Docker Engine at {engine_label(self._engine_url)} ({short_reason(exc)}).",
            hint="Check that dockerd is running.",
        )

    @contextlib.contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Turn SDK failures inside the block into one-line session errors about ``what``."""
        import docker

        try:
            yield
        except ReproManError:
            raise
        except docker.errors.NotFound as exc:
            if "no such container" in short_reason(exc).lower():
                raise self._gone() from None
            raise SessionError(f"cannot {what}: {short_reason(exc)}") from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "not running" in short_reason(exc):
                raise self._not_running(self._inspect()) from None
            raise SessionError(f"cannot {what} in container {self.label!r}: {short_reason(exc)}") from None
        except Exception as exc:
            if is_connection_failure(exc):
                raise self._lost(exc) from None
            raise

    # -- commands -------------------------------------------------------------------
    def _execute(self, command: str, stdin: bytes | None = None) -> CommandResult:
        with self._calling("run a command"):
            exec_id = self._api.exec_create(
                self.container_id, [_SHELL, "-c", command], stdout=True, stderr=True, stdin=stdin is not None
            )["Id"]
            if stdin is None:
                out, err = self._api.exec_start(exec_id, demux=True)
            else:
                out, err = self._run_with_stdin(exec_id, stdin)
            returncode = self._exit_code(exec_id)
        return CommandResult(
            command=command,
            returncode=returncode,
            stdout_bytes=out or b"",
            stderr_bytes=err or b"",
        )

    def _run_with_stdin(self, exec_id: str, data: bytes) -> tuple[bytes | None, bytes | None]:
        """Start an exec on a hijacked socket, feed ``data`` then end-of-file, collect both streams.

        The feeding happens in a thread: a command may write more output
        than the pipes hold before it reads all of its input, and a writer
        that waited for the reader (or the reverse) would deadlock.
        """
        from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter

        hijacked = self._api.exec_start(exec_id, socket=True)
        raw: socket.socket = getattr(hijacked, "_sock", hijacked)
        errors: list[BaseException] = []

        def feed() -> None:
            try:
                raw.sendall(data)
                raw.shutdown(socket.SHUT_WR)
            except OSError as exc:  # the command may exit without reading its input
                if exc.errno not in (32, 104):  # EPIPE, ECONNRESET
                    errors.append(exc)

        writer = threading.Thread(target=feed, name="reproman-docker-stdin", daemon=True)
        writer.start()
        try:
            frames = (demux_adaptor(*frame) for frame in frames_iter(hijacked, tty=False))
            out, err = consume_socket_output(frames, demux=True)
        finally:
            writer.join()
            hijacked.close()
        if errors:
            raise SessionError(f"cannot pass input to the command: {short_reason(errors[0])}")
        return out, err

    def _exit_code(self, exec_id: str) -> int:
        """The exec's exit status, waiting briefly if the Engine has not recorded it yet.

        The output stream ends when the process closes its outputs, which
        can be a moment before the Engine has reaped it.
        """
        deadline = time.monotonic() + 5
        while True:
            info = self._api.exec_inspect(exec_id)
            code = info.get("ExitCode")
            if not info.get("Running") and code is not None:
                return int(code)
            if time.monotonic() > deadline:
                raise SessionError(f"the Docker Engine did not report the exit status of a command in {self.label!r}")
            time.sleep(0.01)

    def _interactive(self, command: str | None = None) -> int:
        from reproman_backend_docker.terminal import run_interactive

        shell = "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self._env.items())
        line = (f"export {env}; " if env else "") + (command if command is not None else shell)
        with self._calling("open an interactive shell"):
            return run_interactive(self._api, self.container_id, line, shell=_SHELL)

    def close(self) -> None:
        if self._own_client:
            with contextlib.suppress(Exception):
                self._client.close()

    # -- paths ---------------------------------------------------------------------------
    def realpath(self, path: str) -> str:
        """Absolute path in the container; relative ones are taken from its working directory."""
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def _owner_ids(self) -> tuple[int, int]:
        """UID and GID that files we put should belong to: the container's user.

        Asked once per session, and only when the container runs as someone
        other than root (the usual case needs no command at all).
        """
        if self._owner is None:
            if self._user in ("", "root", "0", "0:0", "root:root"):
                self._owner = (0, 0)
            else:
                out = self.execute_command("id -u; id -g", check=True).stdout.split()
                self._owner = (int(out[0]), int(out[1]))
        return self._owner

    # -- transfers ------------------------------------------------------------------------
    def _put_file(self, local: Path, remote: str) -> None:
        target = self.realpath(remote)
        uid, gid = self._owner_ids()
        chunks = tar_chunks([(local, posixpath.basename(target))], uid=uid, gid=gid)
        with self._calling(f"put {local} to {remote}"):
            self._api.put_archive(self.container_id, posixpath.dirname(target) or "/", chunks)

    def _get_file(self, remote: str, local: Path) -> None:
        self._download(remote, local)

    def put(self, src: str | os.PathLike[str], dest: str, uid: int = -1, gid: int = -1) -> None:
        """Copy a local file or tree to ``dest`` as one streamed archive (after one preparing command)."""
        self.put_many([(src, dest)])
        if uid != -1 or gid != -1:
            self.chown("" if uid == -1 else str(uid), dest, recursive=True, group=None if gid == -1 else gid)

    def put_many(self, items: Iterable[tuple[str | os.PathLike[str], str]]) -> None:
        """Copy many local paths in two calls whatever their number: prepare targets, send one archive.

        The preparing command creates the destinations' parents and removes
        what the copies replace; the archive is then unpacked at ``/`` with
        members named after the absolute destinations, so it needs no
        staging directory and no second command in the container.
        """
        pairs = [(Path(src), self.realpath(dest)) for src, dest in items]
        if not pairs:
            return
        for src, _dest in pairs:
            if not os.path.lexists(src):
                raise SessionError(f"cannot put {src}: no such file or directory")
        if any(dest == "/" for _src, dest in pairs):
            raise SessionError("cannot put over the container's root directory")
        parents = sorted({posixpath.dirname(dest) for _src, dest in pairs} - {"/"})
        dests = [dest for _src, dest in pairs]
        prepare = (f"mkdir -p {shlex.join(parents)} && " if parents else "") + f"rm -rf {shlex.join(dests)}"
        result = self.execute_command(prepare)
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["failed"])[-1]
            raise SessionError(f"cannot put to {', '.join(dests)}: {detail}")
        uid, gid = self._owner_ids()
        chunks = tar_chunks([(src, dest.lstrip("/")) for src, dest in pairs], uid=uid, gid=gid)
        with self._calling(f"put {', '.join(str(s) for s, _ in pairs)}"):
            self._api.put_archive(self.container_id, "/", chunks)

    def _fetch(self, staged: Sequence[tuple[str, Path]]) -> None:
        """Each remote path streamed as its own archive into its staging path (no command in the container)."""
        for src, dest in staged:
            self._download(src, dest)

    def _download(self, src: str, dest: Path) -> None:
        """Stream ``src``'s archive from the Engine and unpack it as ``dest``; symlinks are followed."""
        import docker

        target = self.realpath(src)
        for _hop in range(10):
            with self._calling(f"get {src}"):
                try:
                    stream, stat = self._api.get_archive(self.container_id, target, chunk_size=CHUNK_SIZE)
                except docker.errors.NotFound:
                    self._inspect()  # a vanished container says so; otherwise the path is missing
                    raise SessionError(f"cannot get {src}: no such file or directory") from None
            link = stat.get("linkTarget") or ""
            if int(stat.get("mode", 0)) & _GO_MODE_SYMLINK and link:
                target = link if posixpath.isabs(link) else posixpath.join(posixpath.dirname(target), link)
                continue
            break
        else:
            raise SessionError(f"cannot get {src}: too many levels of symbolic links")
        try:
            extract_member_tree(ChunkReader(stream), str(stat.get("name") or posixpath.basename(target)), dest)
        except ReproManError:
            raise
        except Exception as exc:
            if is_connection_failure(exc):
                raise self._lost(exc) from None
            raise SessionError(f"cannot get {src}: {short_reason(exc)}") from None
