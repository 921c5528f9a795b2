"""The job directory on the resource, and the runscript that fills it.

``<root_directory>/.reproman/jobs/<resource name>/<jobid>/`` holds::

    spec.yaml          the job record (also kept with fetched results)
    runscript          ``sh runscript INDEX`` runs subjob INDEX (0-based)
    submit             the submitter's submission script (name varies)
    status.INDEX       "running", "succeeded 0" or "failed CODE"; once final,
                       its mtime is when the subjob ended
    started.INDEX      its mtime is when the subjob started; holds the
                       environment capture's record of the subjob
    stdout.INDEX       the subjob's standard output
    stderr.INDEX       the subjob's standard error
    submission-id      what the scheduler called the job
    completed          marker: every subjob has finished (written by the
                       local submitter's launcher, or by core at fetch time)

Status lines are written in place, one ``write`` of a few bytes each, and
readers take a line only once its newline is there (``read`` fails on a
partial line): a reader racing a write sees the previous line or nothing,
which reads as not finished yet, never half a line. That saves the
``mv`` of a write-then-rename: a process per subjob, which is most of what a
trivial subjob costs. Times cost no process either: ``started.INDEX`` is
made by a redirection, and the final status file's mtime is the end; one
``find`` reads them all (:mod:`reproman.jobs.timing`).

Per subjob the runscript starts only what it must: a command given as
separate words (``reproman run prog arg``) runs directly, not under an
extra ``sh -c`` (which shell code needs, so that an ``exit`` in it cannot
skip the status line), and the caller's umask comes from the launcher
(``REPROMAN_UMASK``) rather than from a ``$(umask)`` subshell. Under the
local launcher's workers the subjob's subshell becomes the command
(``exec``) when nothing is left to do after it, and the worker writes the
final status from the exit status (:func:`render_runscript`). A
1,000-subjob local batch thus costs about what ``xargs -P`` of the same
commands costs. The runscript needs only POSIX ``sh`` and ``printf``.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reproman.jobs.capture import Blocks

JOBS_SUBDIR = ".reproman/jobs"
SPEC_FILE = "spec.yaml"
RUNSCRIPT = "runscript"
COMPLETED = "completed"
#: Marker written by ``cancel`` so a killed job reads as cancelled, not lost.
CANCELLED = "cancelled"
SUBMISSION_ID = "submission-id"
#: Prefix of the per-subjob files whose mtime says when the subjob started (the
#: environment capture's record of the subjob goes in them, see :mod:`reproman.jobs.capture`).
STARTED = "started"
#: ``. runscript`` with this as ``$1`` defines the runscript's functions and runs nothing
#: (a positional argument: no variable in the environment can turn a subjob into a no-op).
WORKER_FLAG = "--define-only"


class JobFiles:
    """Names of the files core keeps in a job directory, for submitters and orchestrators.

    The submission script runs ``sh <job_dir>/<RUNSCRIPT> INDEX`` once per
    subjob. A submitter's ``cancel`` writes ``<job_dir>/<CANCELLED>`` before
    it stops anything, so subjobs it kills read as cancelled rather than
    lost or failed. ``SPEC`` is the job record, ``SUBMISSION_ID`` what the
    scheduler called the job, ``COMPLETED`` the marker that every subjob has
    finished; ``status.INDEX`` and ``started.INDEX`` are per subjob (see
    the module docstring of :mod:`reproman.jobs.layout`).
    """

    RUNSCRIPT = RUNSCRIPT
    SPEC = SPEC_FILE
    CANCELLED = CANCELLED
    COMPLETED = COMPLETED
    SUBMISSION_ID = SUBMISSION_ID

    @staticmethod
    def path(job_dir: str, name: str) -> str:
        """``<job_dir>/<name>`` on the resource (POSIX paths whatever the local system)."""
        return posixpath.join(str(job_dir), name)


def local_record_dir(local_directory: str, resource_name: str, jobid: str) -> str:
    """``<local_directory>/.reproman/jobs/<resource>/<jobid>``: logs and spec kept with the results."""
    import os

    return os.path.join(local_directory, *JOBS_SUBDIR.split("/"), resource_name, jobid)


def job_dir(root_directory: str, resource_name: str, jobid: str) -> str:
    return posixpath.join(root_directory, JOBS_SUBDIR, resource_name, jobid)


def status_file(jobdir: str, index: int) -> str:
    return posixpath.join(jobdir, f"status.{index}")


def stdout_file(jobdir: str, index: int) -> str:
    return posixpath.join(jobdir, f"stdout.{index}")


def stderr_file(jobdir: str, index: int) -> str:
    return posixpath.join(jobdir, f"stderr.{index}")


def render_runscript(
    *,
    jobid: str,
    jobdir: str,
    working_directory: str,
    commands: Sequence[str],
    wrapper: str | None = None,
    env: Mapping[str, str] | None = None,
    provenance: Blocks | None = None,
    chunked: bool = False,
) -> str:
    """The runscript for a job's subjobs.

    With ``chunked`` the subjobs' commands are not in the runscript but in
    ``commands.K`` files of :data:`CHUNK` subjobs each (see
    :func:`command_chunks`), each defining a function the runscript sources
    when a subjob needs it: ``sh`` parses a script's ``case`` whole before
    running it, so a 1,000-arm runscript costs every subjob started with
    ``sh runscript INDEX`` a millisecond or two of parsing, more than the
    rest of what it does. The local launcher's workers source the runscript
    once (``$1`` = :data:`WORKER_FLAG`) and keep each chunk they loaded.

    Each command runs as ``sh -c COMMAND`` in the working directory, so an
    ``exit`` in it cannot skip recording its status. ``wrapper`` (for the
    ``container`` job parameter, e.g. ``singularity exec IMAGE``) is put in
    front of that ``sh``. ``env`` (the ``env`` job parameter) is exported
    before the command runs, after ReproMan's own variables.
    ``provenance`` is the environment-capture code of
    :mod:`reproman.jobs.capture`, kept in blocks of its own.
    """
    prefix = f"{wrapper} " if wrapper else ""
    if provenance is not None and provenance.runner:
        prefix = f"{provenance.runner} {prefix}"
    exec_when = _exec_condition(provenance)
    functions = provenance.functions if provenance is not None else ""
    capture_before = provenance.before if provenance is not None else ""
    capture_after = provenance.after if provenance is not None else ""
    started = "" if provenance is not None and provenance.writes_started else ': >"$reproman_started"\n'
    exports = "".join(f"{k}={shlex.quote(str(v))}; export {k}\n" for k, v in (env or {}).items())
    no_subjob = f'echo "runscript: no subjob $i in job {jobid}" >&2; mark "failed 2"; exit 2'
    if chunked:
        # Each commands.K defines reproman_commands_K; a worker that ran one subjob of
        # chunk K has it parsed already (reproman_load runs in the worker's own shell).
        loader = (
            "reproman_loaded=\n"
            "reproman_load() {\n"
            f"  case \" $reproman_loaded \" in *\" $(($1 / {CHUNK})) \"*) return 0 ;; esac\n"
            f'  [ -r "$jobdir/{COMMANDS}.$(($1 / {CHUNK}))" ] && . "$jobdir/{COMMANDS}.$(($1 / {CHUNK}))" &&\n'
            f'    reproman_loaded="$reproman_loaded $(($1 / {CHUNK}))"\n'
            "}\n"
        )
        dispatch = (
            f'case "$i" in ""|*[!0-9]*) {no_subjob} ;; esac\n'
            f"reproman_load \"$i\" || {{ {no_subjob}; }}\n"
            f'"reproman_commands_$((i / {CHUNK}))"\n'
        )
    else:
        loader = "reproman_load() { :; }\n"
        dispatch = _case(jobid, enumerate(commands), prefix, execs=exec_when is not None)
    if exec_when is None:
        become = ""
        worker = (
            "reproman_run() { reproman_load \"$1\"; (reproman_subjob \"$1\"); }\n"
        )
    else:
        # A local worker's subjob needs nothing after its command: its shell becomes the
        # command (one process fewer per subjob) and the worker writes the final status.
        become = ("# Under a local worker, with nothing left to do after the command, this shell becomes it.\n"
                  f"reproman_exec=; if {exec_when}; then reproman_exec=exec; fi\n")
        worker = (
            "reproman_run() {\n"
            "  reproman_load \"$1\"; (reproman_subjob \"$1\"); reproman_rc=$?; i=$1\n"
            '  if [ "$reproman_rc" -eq 0 ]; then mark "succeeded 0"; else mark "failed $reproman_rc"; fi\n'
            "}\n"
        )
    return f"""#!/bin/sh
# ReproMan runscript for job {jobid}.
# Usage: sh runscript INDEX   (INDEX counts subjobs from 0)
# Sourced with "$1" = {WORKER_FLAG}, it only defines its functions; a worker of
# the local launcher then calls reproman_run INDEX per subjob: the script is
# parsed once per worker, not once per subjob.
jobdir={shlex.quote(jobdir)}
reproman_worker=
mark() {{ umask 077; printf '%s\\n' "$1" > "$jobdir/status.$i"; }}
{functions}{loader}reproman_subjob() {{
i=$1; reproman_started="$jobdir/{STARTED}.$i"
# ReproMan's files in the job directory are private; the command gets the caller's umask back.
reproman_umask=${{REPROMAN_UMASK:-$(umask)}}; umask 077
exec >"$jobdir/stdout.$i" 2>"$jobdir/stderr.$i" </dev/null
{started}printf 'running\\n' > "$jobdir/status.$i"
cd {shlex.quote(working_directory)} || {{ mark "failed 1"; exit 1; }}
REPROMAN_JOBID={shlex.quote(jobid)}; REPROMAN_SUBJOB="$i"; export REPROMAN_JOBID REPROMAN_SUBJOB
{exports}{capture_before}umask "$reproman_umask"
{become}{dispatch}rc=$?
{capture_after}if [ "$rc" -eq 0 ]; then mark "succeeded 0"; else mark "failed $rc"; fi
exit "$rc"
}}
{worker}if [ "${{1-}}" = {WORKER_FLAG} ]; then reproman_worker=y; else reproman_subjob "${{1:?usage: runscript SUBJOB-INDEX}}"; fi
"""


#: Words that would act on the runscript's own shell if run directly (``exit 3`` would skip the status line).
_SHELL_SPECIAL = frozenset({
    ".", ":", "alias", "bg", "break", "builtin", "cd", "command", "continue", "eval", "exec", "exit", "export",
    "fc", "fg", "getopts", "hash", "jobs", "local", "read", "readonly", "return", "set", "shift", "source",
    "times", "trap", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
})
_PROGRAM = re.compile(r"[A-Za-z0-9_./+-][A-Za-z0-9_./+=-]*")


#: Subjobs per ``commands.K`` file of a chunked runscript.
CHUNK = 100
COMMANDS = "commands"


def _exec_condition(provenance: Blocks | None) -> str | None:
    """When a local worker's subjob shell may become its command: a shell condition, or None for never.

    Never under a runner (``run --trace`` wraps the command in a shell
    function) or when the capture's ``after`` code has work it cannot say
    when; otherwise whenever the capture has nothing to do after the command.
    """
    if provenance is None or not provenance.after:
        return '[ -n "$reproman_worker" ]'
    if provenance.runner or not provenance.after_needed:
        return None
    return f'[ -n "$reproman_worker" ] && ! {{ {provenance.after_needed}; }}'


def _case(jobid: str, commands: Iterable[tuple[int, str]], prefix: str, *, execs: bool = False) -> str:
    start = "$reproman_exec " if execs else ""
    arms = "\n".join(f"  {i}) {start}{_arm(cmd, prefix)} ;;" for i, cmd in commands)
    return (f'case "$i" in\n{arms}\n'
            f'  *) echo "runscript: no subjob $i in job {jobid}" >&2; mark "failed 2"; exit 2 ;;\nesac\n')


def command_chunks(
    jobid: str, commands: Sequence[str], wrapper: str | None = None, provenance: Blocks | None = None
) -> dict[str, str]:
    """The ``commands.K`` files a chunked runscript sources: file name -> text."""
    prefix = f"{wrapper} " if wrapper else ""
    if provenance is not None and provenance.runner:
        prefix = f"{provenance.runner} {prefix}"
    numbered = list(enumerate(commands))
    execs = _exec_condition(provenance) is not None
    return {
        f"{COMMANDS}.{k}": f"reproman_commands_{k}() {{\n"
        + _case(jobid, numbered[k * CHUNK:(k + 1) * CHUNK], prefix, execs=execs) + "}\n"
        for k in range((len(numbered) + CHUNK - 1) // CHUNK)
    }


def _arm(command: str, prefix: str) -> str:
    """How one subjob's command runs: directly when it is plain words, else as ``sh -c`` code.

    "Plain words" means what ``shlex.join`` of an argv gives (every word
    already quoted, no operator, no expansion) starting with a program that
    is not a shell builtin acting on the shell itself.
    """
    if not prefix:
        try:
            words = shlex.split(command)
        except ValueError:
            words = []
        if (words and shlex.join(words) == command and _PROGRAM.fullmatch(words[0])
                and words[0] not in _SHELL_SPECIAL and "=" not in words[0]):
            return command
    return f"{prefix}sh -c {shlex.quote(command)}"


def parse_status_line(text: str) -> tuple[str, int | None]:
    """``"failed 3"`` -> ``("failed", 3)``; ``"running"`` -> ``("running", None)``."""
    parts = text.split()
    if not parts:
        return "unknown", None
    code = int(parts[1]) if len(parts) > 1 and parts[1].lstrip("-").isdigit() else None
    return parts[0], code
