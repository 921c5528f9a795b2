"""Reading and writing ReproMan's own files on this machine, safely.

Every file ReproMan reads (inventory, configuration, job records, job and
batch specs, environment specs) may have been damaged, truncated, replaced
by a binary or grown without bound. :func:`read_text` reads at most a fixed
number of bytes and decodes strict UTF-8, so such a file gives one error
that names it instead of a ``UnicodeDecodeError`` traceback or a process
that swaps for minutes.

:func:`atomic_write` replaces a file so that readers see the old content or
the new, never half, writes through a symlink to its target (a user who
keeps the inventory in a synced folder and links to it keeps the link), and
creates files private (0600) unless asked otherwise: job records carry
environment values. Every ``OSError`` (disk full, permission denied,
read-only file system) becomes one :class:`~reproman.errors.LocalFileError`
line naming the path.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from reproman.errors import LocalFileError, ReproManError

#: Larger than any file ReproMan writes for a sane job (a 100,000-subjob record is ~30 MB).
DEFAULT_LIMIT = 64 * 1024 * 1024


def _size(n: int) -> str:
    """``67108864`` -> ``64 MiB``."""
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.0f} {unit}"


def os_error_text(exc: OSError | ValueError) -> str:
    """The reason of an ``OSError`` in the words users know (``No space left on device``)."""
    if isinstance(exc, ValueError):
        return "not a valid file name"
    return exc.strerror or str(exc)


def read_bytes(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    limit: int = DEFAULT_LIMIT,
    error: type[ReproManError] = LocalFileError,
) -> bytes:
    """At most ``limit`` bytes of ``path``, or ``error`` saying which file and why not."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {os_error_text(exc)}") from None
    except ValueError:  # a NUL byte in the name
        raise error(f"cannot read {what} {path!r}: not a valid file name") from None
    if len(data) > limit:
        raise error(
            f"{what} {path} is larger than {_size(limit)}, more than ReproMan reads",
            hint="Is it the right file?",
        )
    return data


def decode(data: bytes, path: str | os.PathLike[str], *, what: str = "file",
           error: type[ReproManError] = LocalFileError) -> str:
    """UTF-8 text (a byte-order mark is dropped), or ``error`` pointing at the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start
        line = data.count(b"\n", 0, offset) + 1
        raise error(
            f"cannot read {what} {path}: not UTF-8 text (byte 0x{data[offset]:02x} on line {line})",
            hint="Is it the right file? ReproMan's files are UTF-8 text.",
        ) from None


def read_text(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    limit: int = DEFAULT_LIMIT,
    error: type[ReproManError] = LocalFileError,
) -> str:
    """A bounded, strictly decoded text file; every failure is one ``error`` naming ``path``."""
    return decode(read_bytes(path, what=what, limit=limit, error=error), path, what=what, error=error)


def write_target(path: str | os.PathLike[str]) -> Path:
    """Where a write to ``path`` must land: through symlinks, to the file they point at."""
    target = Path(path)
    if target.is_symlink():
        try:
            return Path(os.path.realpath(target, strict=True))
        except FileNotFoundError:
            return Path(os.path.realpath(target))  # a dangling link: the write creates its target
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                # Writing "through" it would replace the link with a file, leaving the loop's other links broken.
                raise LocalFileError(f"cannot write {path}: it is a symbolic link that loops back on itself",
                                     hint="Point the link at a file, or remove it; nothing was changed.") from None
            return Path(os.path.realpath(target))
    return target


def atomic_create(path: str | os.PathLike[str], text: str) -> None:
    """Create ``path`` with ``text``, whole or not at all, and never over an existing file.

    For a file the user named for a result (``retrace -o``): a temporary
    file beside it is written and synced, then hard-linked into place, which
    fails if anything appeared there meanwhile (no check-then-write race).
    The file gets the usual mode (``0666`` minus the umask). Raises
    :class:`FileExistsError` for an existing file (the caller words the
    refusal) and :class:`~reproman.errors.LocalFileError` for other failures.
    """
    target = write_target(path)
    tmp = target.parent / f".{target.name}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except (OSError, ValueError) as exc:
        raise LocalFileError(f"cannot write {path}: {os_error_text(exc)}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError as exc:
        raise LocalFileError(f"cannot write {path}: {os_error_text(exc)}", hint="Nothing was written.") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def atomic_write(path: str | os.PathLike[str], text: str, mode: int | None = 0o600) -> None:
    """Replace ``path`` with ``text`` atomically; the old content survives any failure.

    ``mode`` is the new file's permission bits (default: private). ``None``
    keeps the mode of the file being replaced, or gives a new file the
    usual ``0666`` minus the umask: for files that are the user's results
    rather than ReproMan's records. Missing parent directories are created
    private (0700).
    """
    target = write_target(path)
    existed = target.exists()
    try:
        _mkdirs(target.parent)
        if mode is None and target.exists():
            mode = stat.S_IMODE(target.stat().st_mode)
        tmp = target.parent / f".{target.name}.{os.urandom(4).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if mode is not None else 0o666)
    except (OSError, ValueError) as exc:
        raise LocalFileError(f"cannot write {path}: {os_error_text(exc)}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise LocalFileError(
                f"cannot write {path}: {os_error_text(exc)}",
                hint="Its previous content is unchanged." if existed else None,
            ) from None
        raise


def _mkdirs(directory: Path) -> None:
    """Create ``directory`` and missing parents as 0700; existing ones are left as they are."""
    if directory.is_dir():
        return
    missing = []
    current = directory
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=0o700)
        except FileExistsError:
            pass


def private_dir(directory: str | os.PathLike[str]) -> Path:
    """``directory`` created 0700 if missing (an existing one keeps its mode)."""
    path = Path(directory)
    try:
        _mkdirs(path)
    except (OSError, ValueError) as exc:
        raise LocalFileError(f"cannot create directory {path}: {os_error_text(exc)}") from None
    return path
