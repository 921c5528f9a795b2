"""A session into a running container, through the Engine API only (no docker CLI).

Commands are Engine *exec* instances run with ``/bin/sh -c``: one create,
one start and one inspect for the exact exit status, the same three calls the
SDK's own ``exec_run`` makes. Their output is read frame by frame as it
arrives (:mod:`reproman_backend_docker.execstream`): stdout and stderr apart,
bytes exact, time linear in size, streamed to a callback when asked.
Interrupting a command stops it through a second exec (the contract's
default :meth:`Session._execute_aside`).

Files travel as tar streams (:mod:`reproman_backend_docker.tarstream`): to
the container in one archive through the Engine's archive endpoint, from it
through that endpoint or, for many paths, as one archive written by ``tar``
in the container. Neither needs a temporary archive or memory for the data,
and none has a limit on the number of paths.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
import shlex
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproman.plugins import (
    TEXT_ERRORS,
    CommandResult,
    OutputCallback,
    ReproManError,
    ResourceConnectionError,
    ResourceGoneError,
    Session,
    SessionError,
    extract_to_staging,
    group_wrapper,
    stdin_watch_wrapper,
)
from reproman_backend_docker.engine import engine_label, is_connection_failure, open_client, short_reason
from reproman_backend_docker.execstream import STDERR, STDOUT, ConsumerFailed, ExecStream, run_exec
from reproman_backend_docker.tarstream import CHUNK_SIZE, ChunkReader, join_archives, tar_chunks

if TYPE_CHECKING:
    import docker

lgr = logging.getLogger("reproman.backend_docker.session")

_SHELL = "/bin/sh"


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
        #: Interrupted commands whose exec connection stays open until their group is stopped.
        self._held: dict[str, ExecStream] = {}
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

    def _gone(self) -> ResourceGoneError:
        return ResourceGoneError(
            f"container {getattr(self, 'label', self._ref)!r} no longer exists in the Docker Engine "
            "(removed outside ReproMan?).",
            hint="Delete the resource with 'reproman delete' and create it again.",
        )

    def _not_running(self, info: dict[str, Any] | None = None) -> SessionError:
        state = ((info or {}).get("State") or {}).get("Status") or "not running"
        if state in ("removing", "dead"):
            return self._gone()  # on its way out: "start it" would be no advice
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
        except (ReproManError, ConsumerFailed):
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
    def _execute(
        self, command: str, stdin: bytes | None = None, on_output: OutputCallback | None = None
    ) -> CommandResult:
        try:
            with self._calling("run a command"):
                returncode, out, err = run_exec(
                    self._api, self.container_id, [_SHELL, "-c", command], stdin=stdin, on_output=on_output,
                    label=repr(self.label),
                )
        except ConsumerFailed as failed:
            raise failed.error from None
        return CommandResult(command=command, returncode=returncode, stdout_bytes=out, stderr_bytes=err)

    def _execute_grouped(self, line: str, pgfile: str, stdin: bytes | None,
                         on_output: OutputCallback | None) -> CommandResult:
        """A user's command under a watch (:func:`stdin_watch_wrapper`): if this process is killed, it stops.

        The exec's input stays attached, unwritten, while the command runs;
        the Engine closes it when this process's connection ends, and the
        watcher in the container then stops the command's group. Interrupted
        (Ctrl-C), the connection stays open until :meth:`stop_interrupted`
        has stopped the group with the user's signal.
        """
        if stdin is not None:  # the exec's input carries the command's input: no watch
            return super()._execute_grouped(line, pgfile, stdin, on_output)
        argv = [_SHELL, "-c", stdin_watch_wrapper(line, pgfile)]
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            with self._calling("run a command"):
                execution = ExecStream(self._api, self.container_id, argv, watch=True)
                try:
                    for stream, payload in execution.frames():
                        if on_output is None:
                            (err if stream == STDERR else out).append(payload)
                            continue
                        try:
                            on_output(STDERR if stream == STDERR else STDOUT, payload)
                        except Exception as exc:  # the caller's failure, not a lost Engine
                            raise ConsumerFailed(exc) from exc
                    code = execution.exit_code(repr(self.label))
                except BaseException as exc:
                    interrupted = isinstance(exc, KeyboardInterrupt) or (
                        isinstance(exc, ConsumerFailed) and isinstance(exc.error, BrokenPipeError))
                    if interrupted:  # execute_interruptible stops the group next
                        self._held[pgfile] = execution
                    else:
                        execution.close()
                    raise
                execution.close()
        except ConsumerFailed as failed:
            raise failed.error from None
        return CommandResult(command=line, returncode=code, stdout_bytes=b"".join(out), stderr_bytes=b"".join(err))

    def stop_interrupted(self, pgfile: str, signal_name: str = "INT") -> str | None:
        try:
            return super().stop_interrupted(pgfile, signal_name)
        finally:
            held = self._held.pop(pgfile, None)
            if held is not None:
                held.close()

    def _interactive(self, command: str | None = None) -> int:
        from reproman_backend_docker.terminal import run_interactive

        shell = "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self._env.items())
        line = (f"export {env}; " if env else "") + (command if command is not None else shell)
        with self._calling("open an interactive shell"):
            return run_interactive(self._api, self.container_id, line, shell=_SHELL)

    def close(self) -> None:
        for held in self._held.values():
            held.close()
        self._held.clear()
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
        self._put_archive(tar_chunks([(local, target.lstrip("/"))], uid=uid, gid=gid), f"put {local} to {remote}")

    def _get_file(self, remote: str, local: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=".reproman-get-", dir=local.parent) as tmp:
            staged = Path(tmp) / "0"
            self._fetch([(remote, staged)])
            os.replace(staged, local)

    def _send(self, pairs: Sequence[tuple[Path, str]]) -> None:
        """All local paths in one archive streamed to the Engine, unpacked at ``/`` in the container.

        Members are named after their absolute destinations, so existing
        directories are merged into and files replaced, with no command in
        the container and no argument-length limit. A file where a directory
        is, or the reverse, is refused by the Engine (``noOverwriteDirNonDir``)
        instead of deleting the directory. The Engine creates missing parents
        as root; for a container running as another user they are made first
        by that user (:meth:`_make_parents`), so they are the user's to write in.
        """
        targets = [(src, self.realpath(dest)) for src, dest in pairs]
        if any(dest == "/" for _src, dest in targets):
            raise SessionError("cannot put over the container's root directory")
        uid, gid = self._owner_ids()
        if (uid, gid) != (0, 0):
            self._make_parents([dest for _src, dest in targets])
        chunks = tar_chunks([(src, dest.lstrip("/")) for src, dest in targets], uid=uid, gid=gid)
        self._put_archive(chunks, f"put {', '.join(str(src) for src, _ in pairs[:3])}{' ...' if len(pairs) > 3 else ''}")

    def _put_archive(self, chunks: Iterator[bytes], what: str) -> None:
        """Stream a tar archive to the Engine, unpacked at ``/``; type changes refused, not forced."""
        import docker

        with self._calling(what):
            url = self._api._url("/containers/{0}/archive", self.container_id)
            response = self._api._put(url, params={"path": "/", "noOverwriteDirNonDir": "true"}, data=chunks)
            try:
                self._api._raise_for_status(response)
            except docker.errors.APIError as exc:
                reason = short_reason(exc)
                if "cannot overwrite" in reason:
                    raise SessionError(
                        f"cannot {what}: a file would replace a directory in container {self.label!r}, or the "
                        f"reverse ({reason.split(': ', 1)[-1]})",
                        hint="Remove the path in the container first if it should be replaced.",
                    ) from None
                raise

    def _make_parents(self, targets: Sequence[str]) -> None:
        """Create the targets' missing parent directories as the container's user, a few commands at most.

        Only the deepest parents are named (``mkdir -p`` makes the rest),
        in command lines of bounded length, so no number of paths reaches
        the system's argument-length limit.
        """
        for batch in command_batches(deepest_parents(targets)):
            result = self.execute_command(["mkdir", "-p", "--", *batch])
            if result.returncode != 0:
                detail = (result.stderr.strip().splitlines() or ["mkdir failed"])[-1]
                raise SessionError(f"cannot create directories in container {self.label!r}: {detail}")

    def _fetch(self, staged: Sequence[tuple[str, Path]]) -> None:
        """Fill each staging path with its remote path; symbolic links arrive as links, never followed.

        A few paths come through the Engine's archive endpoint, one call
        each, with no command in the container. Beyond that, one ``tar`` in
        the container archives them all to its standard output, the list of
        names streamed to its standard input (``xargs -0``, so no length
        limit), and the archive is unpacked as it arrives: one stream for any
        number of paths. Images without ``tar`` or ``xargs`` fall back to the
        archive endpoint.

        A path that is not UTF-8 always goes through ``tar``: the endpoint
        takes the path in its URL, and the Engine answers for such a name
        with its last component replaced by U+FFFD (an empty archive for a
        file, a renamed top directory), so it cannot be fetched that way.
        """
        sources = [self.realpath(src) for src, _path in staged]
        if "/" in sources:
            raise SessionError(
                "cannot get the container's root directory", hint="Name the directories you need instead."
            )
        unnamable = [src for target, (src, _path) in zip(sources, staged) if not _is_utf8(target)]
        if (len(staged) > ARCHIVE_ENDPOINT_MAX or unnamable) and self._fetch_through_tar(sources, staged):
            return
        if unnamable:
            raise SessionError(
                f"cannot get {unnamable[0]!r} from container {self.label!r}: its name is not UTF-8, which the "
                "Docker Engine's archive endpoint cannot carry, and the image has no tar and xargs to send it",
                hint="Install tar in the image (or rename the path in the container to UTF-8), then fetch again.",
            )
        for target, (src, path) in zip(sources, staged):
            self._fetch_one(target, src, path)

    def _fetch_one(self, target: str, src: str, dest: Path) -> None:
        """``target`` (absolute) through the archive endpoint, unpacked as ``dest``; a link stays a link."""
        import docker

        with self._calling(f"get {src}"):
            try:
                stream, stat = self._api.get_archive(self.container_id, target, chunk_size=CHUNK_SIZE)
            except docker.errors.NotFound:
                self._inspect()  # a vanished container says so; otherwise the path is missing
                raise SessionError(f"cannot get {src}: no such file or directory") from None
        top = str(stat.get("name") or posixpath.basename(target))
        with self._receiving(f"get {src}"):
            extract_to_staging(io.BufferedReader(ChunkReader(stream), CHUNK_SIZE), [(top, dest)])

    def _fetch_through_tar(self, sources: Sequence[str], staged: Sequence[tuple[str, Path]]) -> bool:
        """One archive of all ``sources`` from ``tar`` in the container; False if the image cannot make it."""
        tops = covering_paths(sources)
        listing = b"".join(b"." + os.fsencode(top) + b"\0" for top in tops)
        errors = bytearray()

        def archive(execution: ExecStream) -> Iterator[bytes]:
            for stream, payload in execution.frames():
                if stream == STDOUT:
                    yield payload
                elif len(errors) < 65536:
                    errors.extend(payload)

        lgr.debug("fetching %d paths from %s through one tar stream", len(sources), self.label)
        # In a process group of its own: a tar left writing to a connection nobody reads any more
        # (Ctrl-C, a local failure) would block in the container for ever.
        pgfile = f"/tmp/.reproman-pg-{os.getpid()}-{os.urandom(6).hex()}"
        argv = [_SHELL, "-c", group_wrapper(_TAR_LIST_SCRIPT, pgfile)]
        try:
            with self._calling(f"get {len(sources)} paths"), self._receiving(f"get {len(sources)} paths"):
                with ExecStream(self._api, self.container_id, argv, stdin=listing, user="0") as execution:
                    chunks = archive(execution)
                    try:
                        extract_to_staging(
                            io.BufferedReader(ChunkReader(join_archives(chunks)), CHUNK_SIZE),
                            [(src.lstrip("/"), path) for src, (_s, path) in zip(sources, staged)],
                        )
                    except (SessionError, tarfile.TarError) as exc:  # judged below, with the exit status
                        failure: Exception | None = exc
                    else:
                        failure = None
                    for _rest in chunks:  # whatever follows the end of the archive
                        pass
                    code = execution.exit_code(repr(self.label))
        except BaseException:
            self.stop_interrupted(pgfile, "TERM")
            raise
        if code == _NO_TOOLS:
            lgr.debug("%s has no tar or xargs; fetching through the archive endpoint", self.label)
            return False
        if code != 0 or failure is not None:
            missing = self._first_missing(sources)
            if missing is not None:
                raise SessionError(f"cannot get {missing}: no such file or directory")
            said = errors.decode("utf-8", "replace").strip().splitlines()
            if said:
                raise SessionError(f"cannot get {len(sources)} paths from container {self.label!r}: {said[-1]}")
            if isinstance(failure, SessionError):
                raise failure
            reason = f"damaged archive ({failure})" if failure is not None else f"tar exited with {code}"
            raise SessionError(f"cannot get {len(sources)} paths from container {self.label!r}: {reason}")
        return True

    def _first_missing(self, sources: Sequence[str]) -> str | None:
        """The first of ``sources`` that does not exist (names with a newline are not checked)."""
        listed = "".join(f"{src}\n" for src in sources if "\n" not in src)
        result = self.execute_command(_FIRST_MISSING_SCRIPT, stdin=listed.encode("utf-8", TEXT_ERRORS))
        name = result.stdout_bytes.rstrip(b"\n")
        return os.fsdecode(name) if result.returncode == 0 and name else None

    @contextlib.contextmanager
    def _receiving(self, what: str) -> Iterator[None]:
        """Failures while an archive is read and unpacked, as one line about ``what``."""
        try:
            yield
        except ReproManError:
            raise
        except (tarfile.TarError, ValueError) as exc:
            raise SessionError(f"cannot {what}: damaged archive from the container ({exc})") from None
        except Exception as exc:
            if is_connection_failure(exc):
                raise self._lost(exc) from None
            raise


#: More paths than this are fetched through one ``tar`` stream rather than one archive call each.
ARCHIVE_ENDPOINT_MAX = 16
#: Exit status of :data:`_TAR_LIST_SCRIPT` when the image lacks ``tar`` or ``xargs``.
_NO_TOOLS = 97
#: Archive the NUL-separated names on stdin (relative to ``/``) to stdout; ``xargs`` may run tar several
#: times, each writing a whole archive (joined again by :func:`join_archives`).
_TAR_LIST_SCRIPT = (
    f"command -v tar >/dev/null 2>&1 && command -v xargs >/dev/null 2>&1 || exit {_NO_TOOLS}; "
    "cd / && exec xargs -0 tar -cf - --"
)
_FIRST_MISSING_SCRIPT = (
    'while IFS= read -r p; do [ -e "$p" ] || [ -L "$p" ] || { printf "%s\\n" "$p"; exit 0; }; done; exit 1'
)
#: Bytes of arguments per command line: far below Linux's 2 MiB total and 128 KiB per argument.
_BATCH_BYTES = 64 * 1024


def _is_utf8(path: str) -> bool:
    """Whether ``path`` is valid UTF-8 text (names read from bytes keep undecodable bytes as surrogates)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def covering_paths(paths: Sequence[str]) -> list[str]:
    """The distinct absolute ``paths`` that are not inside another one (archiving those gives them all)."""
    unique = set(paths)
    return sorted(p for p in unique if not any(a in unique for a in _ancestors(p)))


def deepest_parents(targets: Sequence[str]) -> list[str]:
    """The targets' parent directories, leaving out those that are parents of others (``mkdir -p`` makes them)."""
    parents = {posixpath.dirname(t) for t in targets} - {"/"}
    implied = {a for p in parents for a in _ancestors(p)}
    return sorted(parents - implied)


def _ancestors(path: str) -> Iterator[str]:
    while True:
        parent = posixpath.dirname(path)
        if parent == path:
            return
        yield parent
        path = parent


def command_batches(args: Sequence[str], limit: int = _BATCH_BYTES) -> Iterator[list[str]]:
    """``args`` in groups whose total length stays under ``limit`` bytes."""
    batch: list[str] = []
    size = 0
    for arg in args:
        length = len(os.fsencode(arg)) + 1
        if batch and size + length > limit:
            yield batch
            batch, size = [], 0
        batch.append(arg)
        size += length
    if batch:
        yield batch
