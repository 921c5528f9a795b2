"""The ``local-dir`` resource: a directory of this machine that jobs and commands run in."""

from __future__ import annotations

import os
import uuid
from typing import Any

from reproman.plugins import NOT_FOUND, ONLINE, Resource, ResourceError, Session
from reproman_example.session import LocalDirSession


class LocalDirResource(Resource):
    """Core sets the backend parameters (``path``, ``make``) as attributes, converted to their types."""

    type = "local-dir"
    path: str
    make: bool

    def create(self) -> dict[str, Any]:
        path = os.path.abspath(os.path.expanduser(self.path))
        if self.make:
            os.makedirs(path, exist_ok=True)
        if not os.path.isdir(path):
            raise ResourceError(f"{path} is not a directory", hint="Create it, or pass -b make=yes.")
        # Everything returned besides id and status is recorded as a parameter: the absolute path.
        return {"id": f"local-dir-{uuid.uuid4().hex[:12]}", "status": ONLINE, "path": path}

    def connect(self) -> None:
        # Never raise here: `reproman ls --refresh` shows the status instead.
        self.status = ONLINE if os.path.isdir(self.path) else NOT_FOUND

    def delete(self) -> None:
        """Forget the resource; the directory is the user's and stays."""

    def get_session(self, pty: bool = False, shared: bool | None = None) -> Session:
        self.connect()
        if self.status != ONLINE:
            raise ResourceError(f"directory {self.path} of resource {self.name!r} is gone",
                                hint=f"Recreate it, or 'reproman delete {self.name}'.")
        return LocalDirSession(self.path)
