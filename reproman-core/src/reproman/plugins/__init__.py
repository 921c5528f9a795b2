"""Plugin machinery: hook specifications, component records and the manager.

Importing this package is cheap; the manager discovers entry points only when
a component is first asked for.
"""

from reproman.plugins.markers import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec"]
