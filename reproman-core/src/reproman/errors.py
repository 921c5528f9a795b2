"""The one exception tree that every ReproMan component raises.

The CLI turns a :class:`ReproManError` into a single line on stderr and the
exception's ``exit_code``; anything else is a bug and keeps its traceback.
Embedding applications catch the subclasses to tell failures apart.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings

if TYPE_CHECKING:
    from typing import Any


class ReproManError(Exception):
    """Base of all errors that are the user's or the environment's to fix."""

    exit_code: int = 1

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        if not self.hint:
            return base
        return f"{base}{'' if base.endswith(('.', '!', '?', ':')) else '.'} {self.hint}"


def one_line(text: str) -> str:
    """``text`` safe to print as one line: control characters shown escaped.

    Messages quote names and paths that users (or files) supplied; a newline
    in one must not split the error, and an escape sequence must not reach
    the terminal.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escaped(c) for c in text)


def _escaped(char: str) -> str:
    """``\\x1b`` for ESC; a byte that is not UTF-8 (a surrogate escape, as in file names) as that byte, ``\\xff``."""
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]


def terminal_lines(text: str) -> str:
    """``text`` with each of its lines made safe for a terminal (:func:`one_line`); its line breaks kept."""
    return "\n".join(one_line(line) for line in text.split("\n"))


#: What an exception that says nothing of itself (``EOFError()``, a bare ``ConnectionResetError``) means to a user.
_PLAIN_REASONS = {
    "EOFError": "the connection closed",
    "ConnectionResetError": "the connection was reset",
    "ConnectionAbortedError": "the connection was aborted",
    "BrokenPipeError": "the connection closed",
    "TimeoutError": "timed out",
    "timeout": "timed out",
}


def reason(exc: BaseException) -> str:
    """Why ``exc`` happened, as one line a user can read: never ``EOFError: EOFError`` or an empty string.

    The exception's own words when it has some (beyond its class name);
    otherwise what its kind of failure means, or "unexpected NAME" for a
    kind with no plain meaning.
    """
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if text and text not in (name, f"{name}()"):
        return one_line(text)
    for cls in type(exc).__mro__:
        if cls.__name__ in _PLAIN_REASONS:
            return _PLAIN_REASONS[cls.__name__]
    return f"unexpected {name}"


class ConfigError(ReproManError):
    """A configuration file or setting is malformed or contradictory."""


class UsageError(ReproManError):
    """The call's arguments are wrong; the message says which and how."""

    exit_code = 2


class PluginError(ReproManError):
    """A plugin failed to load or registered something inconsistent."""


class UnknownComponentError(PluginError, UsageError):
    """A resource type, submitter, orchestrator or tracer name is not registered.

    A usage error (exit 2), as argparse's own "invalid choice": the name was
    typed (``-t``, ``--submitter``) or read from a record, and either way
    this installation offers other names, which the message lists.
    """

    exit_code = 2


class DuplicateComponentError(PluginError):
    """Two installed distributions offer a component under the same name."""


class ResourceError(ReproManError):
    """A resource could not be created, found, started, stopped or deleted."""


class ResourceNotFoundError(ResourceError):
    """No resource in the inventory matches the reference."""


class AmbiguousResourceError(ResourceError):
    """A reference (usually an ID prefix) matches more than one resource."""


class ResourceExistsError(ResourceError):
    """A resource with that name is already in the inventory."""


class BackendParameterError(ResourceError, UsageError):
    """A ``KEY=VALUE`` backend parameter is unknown, missing or malformed."""

    exit_code = 2


class InventoryError(ReproManError):
    """The inventory file cannot be read or written."""


class LocalFileError(ReproManError):
    """A file on this machine cannot be read or written (permissions, disk full, read-only)."""


class ResourceConnectionError(ResourceError):
    """The resource could not be reached (network, engine or daemon down)."""


class SessionError(ReproManError):
    """A session operation (transfer, file query) failed on the resource."""


class ResourceGoneError(SessionError):
    """The resource no longer exists (removed outside ReproMan): waiting or retrying cannot bring it back.

    Raised by a session instead of a plain :class:`SessionError` when the
    backend can tell (the Docker Engine answers "no such container"), so that
    ``jobs --follow`` stops at once instead of riding it out as an outage.
    """


class CommandError(SessionError):
    """A command run through a session exited with a non-zero status."""

    def __init__(
        self,
        message: str = "",
        *,
        command: Any = None,
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.command = command
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class OutputConflictError(SessionError):
    """Fetched results cannot land without destroying local files; nothing was written."""


class JobError(ReproManError):
    """A job could not be prepared, found, followed or fetched."""


class FollowStoppedError(JobError):
    """Following gave up before the job's end (its resource stopped answering); the job itself runs on.

    Exit code 4, not 1: a script must be able to tell "some subjobs failed"
    from "nobody could ask"; 'reproman jobs --follow JOB' takes the job up again.
    """

    exit_code = 4


class JobNotFoundError(JobError):
    """No registered job matches the query."""


class SubmissionError(JobError):
    """The submitter could not hand the job to the resource's scheduler."""


class OrchestratorError(JobError):
    """The orchestrator could not stage inputs or bring results back."""


class TracingError(ReproManError):
    """Tracing files to packages failed."""


class SpecError(ReproManError):
    """An environment or job spec is malformed; the message names file and line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be (by the CLI), so the same clean-up runs.

    Not a :class:`ReproManError`: like :class:`KeyboardInterrupt` it passes
    through ``except Exception``. :meth:`Session.execute_interruptible`
    forwards it to the resource as SIGTERM rather than SIGINT.
    """


class DifferenceFound(ReproManError):
    """Raised by ``diff`` in the CLI to exit 3 when specs differ."""

    exit_code = 3
