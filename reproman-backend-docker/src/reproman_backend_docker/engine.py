"""Talking to the Docker Engine: opening a client and turning SDK failures into one-line errors.

The SDK raises ``requests`` connection errors with nested reprs several
hundred characters long, and ``APIError`` strings that repeat the request
URL. Users get neither: every failure leaves this package as a
:class:`~reproman.errors.ReproManError` subclass whose message is one line
saying what failed and what to do next.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from reproman.plugins import ReproManError, ResourceConnectionError, ResourceError

if TYPE_CHECKING:
    import docker

lgr = logging.getLogger("reproman.backend_docker.engine")

#: Shown in errors when neither ``engine_url`` nor ``DOCKER_HOST`` names an engine.
DEFAULT_ENGINE = "unix:///var/run/docker.sock"
_START_HINT = "Start the Docker Engine (dockerd) or point engine_url / DOCKER_HOST at a running one."


def engine_label(engine_url: str | None) -> str:
    """The engine address as a user would recognise it in a message."""
    return engine_url or os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE


def open_client(engine_url: str | None = None) -> docker.DockerClient:
    """A client for ``engine_url``, or for the environment (``DOCKER_HOST``...) when it is empty.

    The SDK asks the engine for its API version while constructing the
    client, so an engine that is down is reported here, once, as
    :class:`ResourceConnectionError`.
    """
    import docker

    try:
        if engine_url:
            return docker.DockerClient(base_url=engine_url)
        return docker.from_env()
    except docker.errors.DockerException as exc:
        raise ResourceConnectionError(
            f"cannot reach the Docker Engine at {engine_label(engine_url)}: {short_reason(exc)}.", hint=_START_HINT
        ) from None


def short_reason(exc: BaseException) -> str:
    """The innermost human-meaningful cause of ``exc``, on one line.

    For connection failures that is the ``OSError`` at the bottom of the
    chain (``Connection refused``, ``No such file or directory``); for API
    errors it is the engine's own explanation.
    """
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return _one_line(str(explanation))
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return _one_line(current.strerror)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    text = str(exc)
    for marker in ("Connection refused", "No such file or directory", "Permission denied", "timed out"):
        if marker in text:
            return marker
    return _one_line(text)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else "unknown error")[:300]


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the engine could not be talked to at all (not that it said no)."""
    import requests

    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError))


@contextlib.contextmanager
def engine_errors(
    what: str, engine_url: str | None = None, *, error: type[ReproManError] = ResourceError
) -> Iterator[None]:
    """Translate SDK failures raised inside the block into one-line ReproMan errors.

    ``what`` completes "cannot ..." (e.g. ``"start container 'c1'"``).
    Losing the engine becomes :class:`ResourceConnectionError`; anything
    the engine refused becomes ``error``. ReproMan errors pass unchanged.
    """
    import docker

    try:
        yield
    except ReproManError:
        raise
    except docker.errors.DockerException as exc:  # APIError and the SDK's own refusals
        raise error(f"cannot {what}: {short_reason(exc)}") from None
    except Exception as exc:
        if is_connection_failure(exc):
            raise ResourceConnectionError(
                f"cannot {what}: lost the Docker Engine at {engine_label(engine_url)} ({short_reason(exc)}).",
                hint=_START_HINT,
            ) from None
        raise
