"""The backend logs under ``reproman.backend_docker``, so the CLI's ``-l debug`` shows it."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import reproman_backend_docker
from reproman_backend_docker.resource import DockerContainer


def test_every_module_logger_is_under_the_reproman_logger() -> None:
    loggers = {}
    for info in pkgutil.iter_modules(reproman_backend_docker.__path__):
        module = importlib.import_module(f"reproman_backend_docker.{info.name}")
        for value in vars(module).values():
            if isinstance(value, logging.Logger):
                loggers[info.name] = value.name
    assert loggers, "no module logger found"
    assert {m: n for m, n in loggers.items() if not n.startswith("reproman.backend_docker.")} == {}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def reproman_log() -> Iterator[_Collect]:
    """What reaches the ``reproman`` logger (where the CLI puts its handler)."""
    handler = _Collect()
    logger = logging.getLogger("reproman")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_transfer_is_logged_where_the_cli_looks(
    shared_container: DockerContainer, tmp_path: Path, reproman_log: _Collect
) -> None:
    with shared_container.get_session() as session:
        session.get_many([("/etc/passwd", tmp_path / f"p{i}") for i in range(20)])
    assert any(r.name == "reproman.backend_docker.session" and "one tar stream" in r.getMessage()
               for r in reproman_log.records), [r.getMessage() for r in reproman_log.records]
