"""Commit messages: a plain save record, or a ``datalad run`` record that ``datalad rerun`` reads.

The run record follows the format DataLad writes (``[DATALAD RUNCMD]``
subject, JSON between the "Do not change" markers, keys sorted, indent 1) so
that ``datalad rerun`` treats a job as if ``datalad run`` had made it.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from reproman.plugins import JobSpec

RUN_TEMPLATE = """\
[DATALAD RUNCMD] {subject}

=== Do not change lines below ===
{record}
^^^ Do not change lines above ^^^
"""


def shorty(text: str, width: int = 40) -> str:
    """The first ``width`` characters, as DataLad abbreviates a command in a subject line."""
    text = " ".join(text.split())
    return text[:width] + ("..." if len(text) > width else "")


def failure_note(failed: int, total: int) -> str:
    return f" ({failed} of {total} subjob{'s' if total != 1 else ''} failed)" if failed else ""


def save_message(job: JobSpec, failed: int) -> str:
    """Message for ``datalad-pair``/``datalad-no-remote`` commits: the user's message plus the job."""
    subject = job.message or f"save results of job {job.jobid}"
    lines = [
        f"[ReproMan] {subject}{failure_note(failed, job.n_subjobs)}",
        "",
        f"ReproMan job: {job.jobid}",
        f"Resource: {job.resource_name} ({job.resource_type}), orchestrator {job.orchestrator}",
        f"Command: {job.command}",
    ]
    if job.n_subjobs > 1:
        lines.append(f"Subjobs: {job.n_subjobs}")
    lines.append(f"Record: .reproman/jobs/{job.resource_name}/{job.jobid}/")
    return "\n".join(lines) + "\n"


def rerun_command(job: JobSpec) -> str:
    """One shell command that redoes the whole job where ``datalad rerun`` runs it.

    A single job is its command, as ``datalad run`` would record it. A
    batch runs every subjob as ``sh -c COMMAND`` (as the runscript did), in
    order, *whatever failed before*, and then exits with the first failing
    subjob's exit code: the code recorded as ``exit``, which ``datalad
    rerun`` compares with the rerun's. (Chaining with ``&&`` would stop at
    the first failure and still match that code, so a rerun would silently
    skip every later subjob.)

    Braces are doubled because ``datalad rerun`` expands ``{placeholders}``
    and the commands were already rendered by the batch expansion.
    """
    commands = [s.command for s in job.subjobs] or [job.command]
    if len(commands) == 1:
        text = commands[0]
    else:
        steps = [f"sh -c {shlex.quote(c)} || {{ e=$?; [ $s -ne 0 ] || s=$e; }}" for c in commands]
        text = "; ".join(["s=0", *steps, 'exit "$s"'])
    return text.replace("{", "{{").replace("}", "}}")


def _union(lists: list[list[str]]) -> list[str]:
    return list(dict.fromkeys(p for paths in lists for p in paths))


def run_record(job: JobSpec, dataset_id: str, exit_code: int) -> dict[str, Any]:
    return {
        "cmd": rerun_command(job),
        "chain": [],
        "dsid": dataset_id,
        "exit": exit_code,
        "extra_inputs": [],
        "inputs": _union([s.inputs for s in job.subjobs]) or list(job.inputs),
        "outputs": _union([s.outputs for s in job.subjobs]) or list(job.outputs),
        "pwd": ".",
        "reproman_jobid": job.jobid,
        "reproman_orchestrator": job.orchestrator,
        "reproman_resource": job.resource_name,
    }


def run_message(job: JobSpec, dataset_id: str, exit_code: int, failed: int, kept: str = "") -> str:
    """Message for ``datalad-pair-run``/``datalad-local-run`` commits: a rerunnable run record.

    ``kept`` (:func:`reproman_orchestrators_datalad.guarding.note`) goes
    between the subject and the record, which DataLad reads between its
    markers only.
    """
    subject = (job.message or shorty(job.command)) + failure_note(failed, job.n_subjobs)
    record = json.dumps(run_record(job, dataset_id, exit_code), indent=1, sort_keys=True, ensure_ascii=False)
    return RUN_TEMPLATE.format(subject=subject + ("\n\n" + kept.rstrip("\n") if kept else ""), record=record)
