"""Entry point module: registers this distribution's components (cheap to import)."""

from __future__ import annotations

from reproman.plugins import hookimpl  # noqa: F401
