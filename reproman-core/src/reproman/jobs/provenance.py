"""Every job records where it ran and what it produced: the submit-time and fetch-time steps.

Submission (called from :mod:`reproman.jobs.submit`):

* :func:`prepare` decides the capture mode (``run --trace``, else the
  ``[run] capture`` setting: ``environment``, ``trace`` or ``off``) and moves
  secret-looking ``env`` values out of the record (:mod:`reproman.jobs.secrets`);
* :func:`runscript_blocks` is the capture code the runscript carries
  (:mod:`reproman.jobs.capture`);
* :func:`stage` adds, to the one transfer that writes the job directory,
  the ``env/`` directory, the private secrets file and, the first time on
  a resource, the node tool (:mod:`reproman.jobs.nodetool`); :func:`staged`
  remembers it was sent once that transfer succeeded. Whether it was
  sent is remembered here rather than asked of the resource, so a
  submission costs no extra round trip; a job that finds the tool gone
  says so in its record and makes the next submission send it again.

Fetch (called from :func:`reproman.jobs.fetch.fetch_job`):
:func:`fetch_outputs` runs ONE command on the resource before the
orchestrator moves anything: it removes the secrets file, computes every
output's size and SHA-256 (:mod:`reproman.jobs.checksums`) and sends back
``env/`` as one tar stream, from which the record's ``environment`` and
``checksums`` are built. After the orchestrator's transfer, the landed
files are checked against those checksums.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import shlex
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproman.errors import UsageError
from reproman.jobs import capture, checksums, layout
from reproman.jobs.secrets import HIDDEN, REDACTED, split_env

if TYPE_CHECKING:
    from reproman.jobs.connection import Connection
    from reproman.jobs.contracts import Orchestrator
    from reproman.jobs.spec import JobSpec
    from reproman.jobs.status import JobStatus
    from reproman.resources.session import Session

lgr = logging.getLogger(__name__)


def configured_mode() -> str:
    """``[run] capture`` (``REPROMAN_RUN_CAPTURE``): environment (default), trace or off."""
    from reproman.config import get_config

    mode = (get_config().get("run", "capture") or "environment").strip().lower()
    if mode not in capture.MODES:
        raise UsageError(f"[run] capture = {mode!r} is not one of {', '.join(capture.MODES)}",
                         hint="Fix the setting in your reproman.cfg or REPROMAN_RUN_CAPTURE.")
    return mode


def prepare(job: JobSpec, trace: bool = False) -> None:
    """Set the job's capture mode and keep secret-looking ``env`` values out of its record."""
    job.capture = "trace" if trace else configured_mode()
    env = job.parameters.get("env")
    if isinstance(env, Mapping):
        # A job spec made from 'reproman jobs --show' carries ReproMan's placeholders, not values:
        # run with them and the command gets that text (or, for a secret, nothing).
        placeholders = sorted(str(k) for k, v in env.items() if v in (HIDDEN, REDACTED))
        if placeholders:
            raise UsageError(
                f"job parameter env: {', '.join(placeholders)} hold{'s' if len(placeholders) == 1 else ''} "
                "a placeholder from 'reproman jobs --show', not a value",
                hint="Give the values (--jp env=NAME=VALUE, or in the job spec), or use 'reproman rerun JOB', "
                     "which takes secret-looking values from your environment.",
            )
        kept, secret = split_env(env)
        if secret:
            job.secret_env.update(secret)
        job.parameters["env"] = {**kept, **{k: REDACTED for k in split_env(env)[1]}}


def exported_env(job: JobSpec) -> dict[str, str]:
    """The ``env`` variables the runscript may carry in clear (never the secret-looking ones)."""
    env = job.parameters.get("env") or {}
    return {k: v for k, v in env.items() if v != REDACTED}


def _tool_and_cache(job: JobSpec) -> tuple[str, str]:
    from reproman.jobs.nodetool import remote_tool

    return remote_tool(job.root_directory), posixpath.join(job.root_directory, capture.CACHE_SUBDIR)


def runscript_blocks(job: JobSpec) -> capture.Blocks:
    tool, cache = _tool_and_cache(job) if job.capture != "off" else ("", "")
    container = job.parameters.get("container")
    return capture.blocks(job.capture, [s.command for s in job.subjobs], tool=tool, cache=cache,
                          secrets=bool(job.secret_env), container=str(container) if container else None)


def stage(session: Session, job: JobSpec, staging: Path) -> list[tuple[Path, str]]:
    """Fill the staged job directory; return further (local, remote) pairs for the same transfer."""
    if job.secret_env:
        path = staging / capture.SECRETS_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{k}={shlex.quote(v)}; export {k}\n" for k, v in job.secret_env.items()))
    if job.capture == "off":
        return []
    (staging / capture.ENV_SUBDIR).mkdir(mode=0o700)
    from reproman.jobs.nodetool import local_tool, was_sent

    tool, _cache = _tool_and_cache(job)
    if was_sent(job.resource_name, job.resource_id, tool):
        return []
    return [(local_tool(), tool)]


def staged(job: JobSpec, extra: Sequence[tuple[Path, str]]) -> None:
    """Call once the transfer carrying :func:`stage`'s ``extra`` succeeded: the node tool is there now.

    Remembered only then: a transfer that failed (or was interrupted) must
    leave the next submission sending the tool again, not trusting a copy
    that never arrived.
    """
    from reproman.jobs.nodetool import mark_sent

    tool, _cache = _tool_and_cache(job)
    if any(remote == tool for _local, remote in extra):
        mark_sent(job.resource_name, job.resource_id, tool)


# -- fetch ------------------------------------------------------------------------------------
def _collect_command(job: JobSpec) -> str:
    jd = shlex.quote(job.job_dir)
    wd = shlex.quote(job.working_directory)
    return (
        f"jd={jd}; e={jd}/{capture.ENV_SUBDIR}\n"
        # Tests first: the usual case (no secrets file, env/ made at submission) then starts no process.
        f'[ ! -e "$jd/{capture.SECRETS_FILE}" ] || rm -f "$jd/{capture.SECRETS_FILE}"\n'
        '[ -d "$e" ] || mkdir -p "$e" || exit 70\n'
        f"if cd {wd} 2>/dev/null; then\n{checksums.SCRIPT}fi\n"
        # The subjobs' own records are in started.*: no glob match means none (not a literal name).
        f'cd "$jd" && {{ set -- {layout.STARTED}.*; [ -e "$1" ] || set --; tar -cf - {capture.ENV_SUBDIR} "$@"; }}\n'
    )


_STARTED_PREFIX = f"{layout.STARTED}."


def collect(session: Session, job: JobSpec) -> dict[str, bytes]:
    """The one remote step: checksums computed, secrets removed, ``env/`` returned as ``{name: bytes}``."""
    from reproman.jobs.plain import relative_path

    outputs = [relative_path(o, job.local_directory) for o in job.outputs]
    result = session.execute_command(_collect_command(job), stdin=checksums.outputs_list(outputs))
    if result.returncode != 0 and not result.stdout_bytes:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        lgr.warning("job %s: could not read its environment and checksums on the resource: %s", job.jobid, detail)
        return {}
    files: dict[str, bytes] = {}
    try:
        members = _plain_tar_files(result.stdout_bytes)
        if members is None:
            members = _tar_files(result.stdout_bytes)
    except tarfile.TarError as exc:
        lgr.warning("job %s: the environment record from the resource is unreadable: %s", job.jobid, exc)
        return files
    for path, data in members:
        name = path.split("/", 1)[1] if "/" in path else path
        if name.startswith(_STARTED_PREFIX):
            # started.N holds subjob N's record; empty when capture was off or it never got there.
            if data:
                files.setdefault("s." + name[len(_STARTED_PREFIX):], data)
            continue
        files[name] = data
    return files


def _tar_files(data: bytes) -> list[tuple[str, bytes]]:
    """(name, content) of every regular file in a tar stream, in order, by :mod:`tarfile`."""
    found: list[tuple[str, bytes]] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive:
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is not None:
                found.append((member.name, handle.read()))
    return found


_BLOCK = 512


def _plain_tar_files(data: bytes) -> list[tuple[str, bytes]] | None:
    """The same as :func:`_tar_files` for the plain archives the collection step makes, or None.

    Why: :mod:`tarfile` spends ~40 us per member, 40 ms of a 1,000-subjob
    fetch, on generality this stream never needs (short names, regular
    files and directories). Anything else (a long name, a pax header, a
    bad checksum) answers None and :mod:`tarfile` reads the stream.
    """
    found: list[tuple[str, bytes]] = []
    view = memoryview(data)
    at, end = 0, len(data)
    while at + _BLOCK <= end:
        header = bytes(view[at:at + _BLOCK])
        if header == bytes(_BLOCK):
            return found  # the end-of-archive blocks
        kind = header[156:157]
        raw_size, raw_sum = header[124:136], header[148:156]
        if kind not in (b"0", b"\0", b"5") or raw_size[:1] >= b"\x80" or header[257:262] != b"ustar":
            return None
        try:
            size = int(raw_size.rstrip(b"\0 ") or b"0", 8)
            checksum = int(raw_sum.rstrip(b"\0 ") or b"0", 8)
        except ValueError:
            return None
        if checksum != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            return None
        name = header[:100].split(b"\0", 1)[0]
        if header[257:263] == b"ustar\0" and header[345:346] != b"\0":
            name = header[345:500].split(b"\0", 1)[0] + b"/" + name
        at += _BLOCK
        if at + size > end:
            return None
        if kind != b"5":
            found.append((name.decode("utf-8", "surrogateescape"), bytes(view[at:at + size])))
        at += -(-size // _BLOCK) * _BLOCK
    return found if at == end else None


def _states(status: JobStatus | None) -> dict[int, dict[str, Any]]:
    if status is None:
        return {}
    return {s.index: {"state": s.state.value, "exit_code": s.exit_code,
                      **({"reason": s.reason.value} if s.reason else {})} for s in status.subjobs}


#: ``job.extra`` key: the fetch computed output checksums (``job.checksums`` may be empty: no output files).
CHECKSUMMED = "checksummed"


def has_checksums(job: JobSpec) -> bool:
    """Whether ``job``'s outputs were checksummed when it was fetched (an empty set included)."""
    return bool(job.checksums) or bool(job.extra.get(CHECKSUMMED)) or not job.outputs


def record(session: Session, job: JobSpec, status: JobStatus | None) -> None:
    """Fill ``job.checksums`` and ``job.environment`` from the resource."""
    from reproman.jobs import environment

    files = collect(session, job)
    if not files:
        return
    if any(b"the node tool " in data and name.endswith(".facts") for name, data in files.items()):
        from reproman.jobs.nodetool import forget_sent

        # Removed from the resource since we sent it: the next job sends it again.
        forget_sent(job.resource_name, job.resource_id, _tool_and_cache(job)[0])
    job.checksums = checksums.parse(files.get(checksums.FILES, b""), files.get(checksums.SHA256, b""),
                                    files.get(checksums.SIZES, b""))
    # Recorded, even when empty (no output was produced): not a record from before checksums existed.
    job.extra[CHECKSUMMED] = checksums.FILES in files
    if job.capture != "off" or any(n.startswith("s.") for n in files):
        container = job.parameters.get("container")
        job.environment = environment.build(
            files, job.n_subjobs, resource_facts=job.extra.get("resource") or None, states=_states(status),
            container_parameter=str(container) if container else None,
        )


def verify_landed(job: JobSpec, orchestrator: Orchestrator) -> checksums.Verification:
    """Check the outputs that just landed against the checksums computed on the resource."""
    report = orchestrator.landing_report
    elsewhere: dict[str, str] = {}
    if report is not None:
        base = os.path.abspath(job.local_directory)
        for kept in report.kept:
            rel = os.path.relpath(os.path.abspath(kept.local), base).replace(os.sep, "/")
            elsewhere[rel] = str(kept.fetched)
    # Paths a fetch never writes (under .git or .reproman) were not fetched: nothing to check there.
    from reproman.resources.landing import SKIPPED_NAMES

    wanted = {rel: sums for rel, sums in job.checksums.items()
              if not SKIPPED_NAMES & set(posixpath.normpath(rel).split("/"))}
    result = checksums.verify(wanted, job.local_directory, elsewhere)
    job.extra["verified"] = result.to_dict()
    for path in result.mismatched:
        lgr.warning("job %s: fetched %s does not match the checksum computed on the resource; "
                    "the transfer may have altered it. Fetch again with 'reproman jobs --fetch %s'.",
                    job.jobid, path, job.jobid)
    return result


def fetch_outputs(connection: Connection, job: JobSpec, orchestrator: Orchestrator,
                  status: JobStatus | None = None) -> list[str]:
    """Record provenance on the resource, let the orchestrator fetch, check what landed (under its lock)."""
    with orchestrator.fetch_lock():
        orchestrator.settle_outputs()
        if job.capture != "off":
            record(connection.session, job, status)
        paths = orchestrator.fetch()
        if job.checksums:
            verify_landed(job, orchestrator)
    return paths
