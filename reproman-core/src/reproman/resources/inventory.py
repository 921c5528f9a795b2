"""The inventory: the YAML file that remembers the resources a user created.

Every change is a locked read-modify-write followed by an atomic rename, so
concurrent ``reproman create`` processes all land and a crash leaves the
previous file intact. A file that does not parse is never overwritten: the
user gets its path and line and fixes it. Secret backend parameters are
filtered out before anything is written, and the file is private (0600).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from reproman.errors import InventoryError, SpecError
from reproman.paths import config_dir

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings
if TYPE_CHECKING:
    from typing import Any

#: A thousand resources take ~100 KiB; anything near this is not an inventory.
INVENTORY_LIMIT = 16 * 1024 * 1024

HEADER = "ReproMan inventory: resources created with 'reproman create'.\nEdit with care; 'reproman ls' reads it."


def _configured() -> bool:
    from reproman.config import get_config

    return bool(get_config().get("general", "inventory_file"))


def inventory_path() -> Path:
    """The inventory file in use: ``[general] inventory_file``, else ``<config dir>/inventory.yml``."""
    from reproman.config import get_config

    configured = get_config().get("general", "inventory_file")
    return Path(os.path.expanduser(configured)) if configured else config_dir() / "inventory.yml"


def recorded_resources() -> dict[str, dict[str, Any]]:
    """The inventory's resource records by name, read now (a copy: changing it changes nothing).

    For backends that must tell their own leftovers from resources the user
    still has (a container an interrupted ``create`` left behind is in no
    record). Secret parameters are never in a record.
    """
    return Inventory().load()


class Inventory:
    """Resource records by name (a mapping of plain dicts)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else inventory_path()
        #: The path was chosen (``[general] inventory_file``, or given): its directory must exist already.
        self.chosen = path is not None or _configured()

    def _check_place(self) -> None:
        """Refuse an inventory that is not a regular file, or whose directory is missing where it was chosen.

        A FIFO would hang every command, a directory cannot be one; a
        configured path (or a link) into a directory that does not exist is
        most likely a typo or an unmounted disk, where creating directories
        would only hide the user's real inventory.
        """
        from reproman.errors import LocalFileError
        from reproman.localfiles import write_target

        try:
            target = write_target(self.path)
        except LocalFileError:
            # Read as "no inventory" it would look empty, and the next create would replace the link.
            raise InventoryError(f"inventory {self.path} is a symbolic link that loops back on itself",
                                 hint="Point it at your inventory file (or remove the link); nothing was changed."
                                 ) from None
        if target.exists():
            if not target.is_file():
                kind = "a FIFO" if target.is_fifo() else "a directory" if target.is_dir() else "not a regular file"
                raise InventoryError(f"inventory {self.path} is {kind}",
                                     hint="Point [general] inventory_file at a YAML file (or move it away).")
            return
        if (self.chosen or self.path.is_symlink()) and not target.parent.is_dir():
            via = f" (the link {self.path} points there)" if self.path.is_symlink() else ""
            raise InventoryError(f"inventory {target}: its directory {target.parent} does not exist{via}",
                                 hint="Create that directory, or fix [general] inventory_file; nothing was changed.")

    def load(self) -> dict[str, dict[str, Any]]:
        """Current records; an absent file is an empty inventory."""
        from reproman import yamlio
        from reproman.localfiles import read_text

        self._check_place()
        if not self.path.exists():
            return {}  # also a dangling link into an existing directory: the first write creates its target
        untouched = "(inventory left untouched; fix or move it away)"
        try:
            text = read_text(self.path, what="inventory", limit=INVENTORY_LIMIT, error=InventoryError)
            data = yamlio.load_json_first(text, str(self.path))
        except (InventoryError, SpecError) as exc:
            raise InventoryError(f"{exc} {untouched}") from None
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise InventoryError(f"inventory {self.path} is not a mapping of resource names to records {untouched}")
        records: dict[str, dict[str, Any]] = {}
        for name, record in data.items():
            # The key is the name: a record saying otherwise could never be deleted.
            record = {**{str(k): v for k, v in record.items()}, "name": str(name)}
            records[str(name)] = record
        return records

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Lock, load, let the caller change the mapping, then write it atomically.

        A symlinked inventory is locked and written at its target, so the
        link stays a link and every name for the file shares one lock.
        """
        from reproman.localfiles import os_error_text, private_dir, write_target

        self._check_place()
        target = write_target(self.path)
        private_dir(target.parent)
        lock_path = target.with_name(target.name + ".lock")
        try:
            lock = open(lock_path, "a")
        except OSError as exc:
            raise InventoryError(f"cannot lock inventory {self.path}: {os_error_text(exc)} ({lock_path})") from None
        with lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                records = self.load()
                yield records
                self._write(records)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, records: dict[str, dict[str, Any]]) -> None:
        from reproman import yamlio

        clean = {name: {k: v for k, v in rec.items() if v is not None} for name, rec in sorted(records.items())}
        yamlio.atomic_write(self.path, yamlio.dump_json(clean, header=HEADER), mode=0o600)
