"""Where ReproMan keeps its files on the user's machine (XDG directories)."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    """ReproMan's configuration directory, ``$XDG_CONFIG_HOME/reproman`` (``~/.config/reproman``).

    Where backends keep per-user state that is not a resource record (key
    pairs ReproMan created, per-host ``known_hosts``); make private
    subdirectories (0700) for anything secret.
    """
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "reproman"


def data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "reproman"


def config_files() -> list[Path]:
    """Config files in increasing precedence, as the old ReproMan read them."""
    return [
        Path("/etc/reproman/reproman.cfg"),
        config_dir() / "reproman.cfg",
        Path.cwd() / ".reproman.cfg",
    ]
