"""Every test as a throwaway user: its own inventory, jobs and configuration; plugins loaded strictly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_user(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    for name in list(os.environ):
        if name.startswith("REPROMAN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REPROMAN_PLUGINS_STRICT", "1")  # a plugin that fails to import fails the test
    from reproman.config import reset_config
    from reproman.plugins.manager import reset_plugin_manager

    reset_config()
    reset_plugin_manager()
    yield home
    reset_config()
    reset_plugin_manager()
