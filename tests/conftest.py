"""Fixtures shared by every package's tests: an isolated user, strict plugins."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C must mean Ctrl-C in the tests of interrupted commands, however the run was started.

    A non-interactive shell starts a background command (``nox ... &``)
    with SIGINT ignored, and every process started from it, each CLI a
    test starts included, inherits that: Python then installs no
    KeyboardInterrupt, and those tests wait for an interrupt that never comes.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_user(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Config, data and inventory of a throwaway user, and strict plugin loading."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("REPROMAN_PLUGINS_STRICT", "1")
    for name in list(os.environ):
        if name.startswith("REPROMAN_") and name not in ("REPROMAN_PLUGINS_STRICT",):
            monkeypatch.delenv(name, raising=False)
    from reproman.config import reset_config
    from reproman.plugins.manager import reset_plugin_manager

    reset_config()
    reset_plugin_manager()
    yield home
    reset_config()
    reset_plugin_manager()
    # A test that ran the CLI in-process left its handler on the package logger.
    logger = logging.getLogger("reproman")
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
