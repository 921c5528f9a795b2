"""Keep one test's ReproMan state out of the next: configuration read again, session hosts stopped.

For fixtures of plugin test suites, which import ReproMan only from
:mod:`reproman.plugins` and :mod:`reproman.testing`.
"""

from __future__ import annotations

from pathlib import Path


def reset_configuration() -> None:
    """Forget the merged configuration: the next read sees the ``REPROMAN_*`` variables a fixture just set."""
    from reproman.config import reset_config

    reset_config()


def stop_session_hosts(directory: Path | None = None) -> int:
    """Ask every session host in ``directory`` (default: the control directory) to exit; how many were running.

    A fixture that gave a test its own ``[sessions] control_dir`` calls this
    afterwards, so no host process outlives the test.
    """
    from reproman.resources.persistent import shutdown_all

    return shutdown_all(directory)
