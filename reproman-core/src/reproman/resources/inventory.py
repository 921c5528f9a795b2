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
from typing import Any

from reproman.errors import InventoryError, SpecError
from reproman.paths import config_dir

HEADER = "ReproMan inventory: resources created with 'reproman create'.\nEdit with care; 'reproman ls' reads it."


def inventory_path() -> Path:
    from reproman.config import get_config

    configured = get_config().get("general", "inventory_file")
    return Path(os.path.expanduser(configured)) if configured else config_dir() / "inventory.yml"


class Inventory:
    """Resource records by name (a mapping of plain dicts)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else inventory_path()

    def load(self) -> dict[str, dict[str, Any]]:
        """Current records; an absent file is an empty inventory."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise InventoryError(f"cannot read inventory {self.path}: {exc.strerror}") from None
        from reproman import yamlio

        try:
            data = yamlio.load(text, str(self.path))
        except SpecError as exc:
            raise InventoryError(f"{exc} (inventory left untouched; fix or move it away)") from None
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise InventoryError(
                f"inventory {self.path} is not a mapping of resource names to records "
                "(inventory left untouched; fix or move it away)"
            )
        records: dict[str, dict[str, Any]] = {}
        for name, record in data.items():
            record = dict(record)
            record.setdefault("name", name)
            records[str(name)] = record
        return records

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Lock, load, let the caller change the mapping, then write it atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
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
        yamlio.atomic_write(self.path, yamlio.dump(clean, header=HEADER), mode=0o600)
