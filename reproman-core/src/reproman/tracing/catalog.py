"""Records of the tracers built into core (cheap: no tracer is imported here)."""

from __future__ import annotations

from reproman.plugins.records import TracerType

BUILTIN_TRACERS: tuple[TracerType, ...] = ()
