"""``reproman diff JOB1 JOB2``: did two runs produce the same outputs, and in what environments?

Outputs are compared by the checksums computed on the resources when each
job was fetched (not by the local files, which the user may have edited or
a later fetch replaced): each is ``identical``, ``differs`` or ``missing``
(recorded for one job only). Environments are compared subjob by subjob:
for each distinct pair of recorded environments, the node facts that
differ and the package spec difference from the existing spec ``diff``.

The verdict (``equal``, exit 0, else 3) is about the outputs: reproducing a
result in another environment is a success, and the environment
difference is reported beside it. Two jobs without any recorded output
have no verdict: that is an error (exit 1), never "equal". A ``rerun --failed`` job is compared on
its own subjobs only, mapped to the original's indices.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from reproman.errors import JobError, UsageError
from reproman.jobs import inputstate
from reproman.jobs.spec import JobSpec

if TYPE_CHECKING:
    from reproman.jobs.registry import BrokenRecord, Registry

IDENTICAL, DIFFERS, MISSING = "identical", "differs", "missing"
#: Node facts compared between environments, in report order.
FACTS = ("os", "kernel", "cpu", "memory", "executable", "variables", "container", "resource")


@attrs.frozen(kw_only=True)
class OutputComparison:
    path: str
    status: str
    left: str | None = None
    right: str | None = None


@attrs.frozen(kw_only=True)
class EnvironmentComparison:
    """One pair of environments and the subjobs (left indices) that ran in them."""

    subjobs: list[int]
    left: str | None
    right: str | None
    facts: list[tuple[str, Any, Any]] = attrs.Factory(list)
    spec: Any = None  # reproman.tracing.diff.DiffReport, or None when either side has no spec
    note: str = ""

    @property
    def equal(self) -> bool:
        return not self.facts and (self.spec is None or self.spec.equal) and not self.note


def index_ranges(indices: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = None
    for i in sorted(indices):
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, "", {}, []))
    return str(value)


@attrs.frozen(kw_only=True)
class JobDiff:
    """Two jobs compared by :func:`diff_jobs`, which never makes one without outputs (it refuses two
    jobs that recorded none: "equal" there would be a verdict on nothing)."""

    left: str
    right: str
    outputs: list[OutputComparison] = attrs.Factory(list)
    environments: list[EnvironmentComparison] = attrs.Factory(list)
    hosts: tuple[list[str], list[str]] = ([], [])
    #: Inputs whose size or modification time differed between the two submissions.
    inputs_changed: list[str] = attrs.Factory(list)

    @property
    def equal(self) -> bool:
        """Every output identical (the environments may differ: see :attr:`environment_equal`)."""
        return all(o.status == IDENTICAL for o in self.outputs)

    @property
    def environment_equal(self) -> bool:
        return all(e.equal for e in self.environments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "left": self.left,
            "right": self.right,
            "equal": self.equal,
            "environment_equal": self.environment_equal,
            "outputs": [attrs.asdict(o) for o in self.outputs],
            "hosts": {"left": self.hosts[0], "right": self.hosts[1]},
            "inputs_changed": self.inputs_changed,
            "environments": [
                {"subjobs": e.subjobs, "left": e.left, "right": e.right, "equal": e.equal, "note": e.note or None,
                 "facts": [{"fact": f, "left": lv, "right": rv} for f, lv, rv in e.facts],
                 "spec": e.spec.to_dict() if e.spec is not None else None}
                for e in self.environments
            ],
        }

    def render(self) -> str:
        lines: list[str] = []
        counts = {s: sum(1 for o in self.outputs if o.status == s) for s in (IDENTICAL, DIFFERS, MISSING)}
        lines.append(f"Outputs of {self.left} and {self.right}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        for o in self.outputs:
            if o.status == DIFFERS:
                lines.append(f"  differs    {o.path}  ({(o.left or '')[:12]} vs {(o.right or '')[:12]})")
            elif o.status == MISSING:
                side = self.left if o.left else self.right
                lines.append(f"  missing    {o.path}  (only in {side})")
        if self.inputs_changed:
            shown = ", ".join(self.inputs_changed[:5]) + (
                f" and {len(self.inputs_changed) - 5} more" if len(self.inputs_changed) > 5 else "")
            lines.append(f"Inputs changed between the two submissions (size or modification time): {shown}")
        if self.hosts[0] != self.hosts[1]:
            lines.append(f"Hosts: {', '.join(self.hosts[0]) or '(none)'} -> {', '.join(self.hosts[1]) or '(none)'}")
        for env in self.environments:
            if env.equal:
                continue
            lines.append(f"Environment of subjobs {index_ranges(env.subjobs)}:")
            if env.note:
                lines.append(f"  {env.note}")
            for fact, lv, rv in env.facts:
                lines.append(f"  {fact}:")
                lines.append(f"  < {_short(lv) or '(none)'}")
                lines.append("  ---")
                lines.append(f"  > {_short(rv) or '(none)'}")
            if env.spec is not None and not env.spec.equal:
                lines.extend(f"  {line}" for line in env.spec.render().splitlines())
        if self.environments and self.environment_equal:
            lines.append("Environments: identical")
        return "\n".join(lines) + "\n"


def _outputs_of(job: JobSpec, indices: Sequence[int] | None) -> list[str]:
    subjobs = job.subjobs if indices is None else [job.subjobs[i] for i in indices if i < job.n_subjobs]
    return [o.strip("/") for s in subjobs for o in s.outputs]


def _within(path: str, outputs: Sequence[str]) -> bool:
    return any(path == o or path.startswith(o + "/") or o in ("", ".") for o in outputs)


def require_comparable(job: JobSpec, then: str = "compare") -> None:
    """Refuse a job whose outputs have no checksums to compare by: not fetched yet, or fetched before they existed.

    Checked before anything is done (``rerun --verify`` submits nothing), so
    ``then`` is what the hint tells the user to run once the job is fetched.
    """
    from reproman.jobs.outcome import SUBMISSION_FAILED

    if job.status == SUBMISSION_FAILED:
        raise JobError(f"job {job.jobid} never ran (its submission failed), so it has no outputs to compare",
                       hint=f"Remove it with 'reproman jobs --delete {job.jobid}' and submit the command again.")
    if not job.was_fetched:
        raise JobError(f"job {job.jobid} is not fetched yet (it may still be running), so it cannot be compared",
                       hint=f"Wait for it and fetch it with 'reproman jobs --follow {job.jobid}', then {then}.")
    from reproman.jobs.provenance import has_checksums

    if not has_checksums(job):
        raise JobError(f"job {job.jobid} has no recorded output checksums",
                       hint="It was fetched before ReproMan recorded checksums; compare a rerun of it instead "
                            f"('reproman rerun --follow {job.jobid}').")


def compare_outputs(left: JobSpec, right: JobSpec, indices: Sequence[int] | None = None) -> list[OutputComparison]:
    """Per output file, by checksum; ``indices`` (left subjobs) limits the comparison to those subjobs' outputs."""
    for job in (left, right):
        require_comparable(job)
    scope = _outputs_of(left, indices) if indices is not None else None
    paths = sorted(set(left.checksums) | set(right.checksums))
    result: list[OutputComparison] = []
    for path in paths:
        if scope is not None and not _within(path, scope):
            continue
        lv = left.checksums.get(path, {}).get("sha256")
        rv = right.checksums.get(path, {}).get("sha256")
        status = MISSING if lv is None or rv is None else (IDENTICAL if lv == rv else DIFFERS)
        result.append(OutputComparison(path=path, status=status, left=lv, right=rv))
    return result


def _pairs(left: JobSpec, right: JobSpec) -> tuple[list[tuple[int, int]], list[int] | None]:
    """(left index, right index) pairs, and the left subjobs in scope (``None``: all).

    A ``rerun --failed`` job's subjob K is the original's subjob
    ``rerun_of["subjobs"][K]``, whichever side each job is on.
    """
    origin = right.rerun_of or {}
    if origin.get("jobid") == left.jobid and origin.get("subjobs") is not None:
        mapped = [int(i) for i in origin["subjobs"]]
        return [(orig, k) for k, orig in enumerate(mapped)], mapped
    origin = left.rerun_of or {}
    if origin.get("jobid") == right.jobid and origin.get("subjobs") is not None:
        mapped = [int(i) for i in origin["subjobs"]]
        return [(k, orig) for k, orig in enumerate(mapped)], None
    n = min(left.n_subjobs, right.n_subjobs)
    return [(i, i) for i in range(n)], None


def _subjob_env(job: JobSpec, index: int) -> str | None:
    subjobs = job.environment.get("subjobs") or []
    return subjobs[index].get("environment") if index < len(subjobs) else None


def _fact(value: Any) -> Any:
    """A node fact as compared: absent, null and empty are alike, at any depth.

    Captures from different ReproMan versions or node tools write an
    unknown field as ``null`` or leave it out (``"interpreter": null`` on
    one node, no key on the other): that is no difference between the nodes.
    """
    if isinstance(value, Mapping):
        value = {k: v for k, v in ((k, _fact(v)) for k, v in value.items()) if v is not None}
    return value if value not in ("", {}, []) else None


def compare_environments(left: JobSpec, right: JobSpec, pairs: Sequence[tuple[int, int]]) -> list[EnvironmentComparison]:
    from reproman.tracing.diff import diff_specs
    from reproman.tracing.spec import EnvironmentSpec

    groups: dict[tuple[str | None, str | None], list[int]] = {}
    for li, ri in pairs:
        groups.setdefault((_subjob_env(left, li), _subjob_env(right, ri)), []).append(li)
    envs_l = left.environment.get("environments") or {}
    envs_r = right.environment.get("environments") or {}
    result: list[EnvironmentComparison] = []
    for (lid, rid), indices in groups.items():
        le, re_ = envs_l.get(lid or ""), envs_r.get(rid or "")
        if le is None or re_ is None:
            missing = [j.jobid for j, e in ((left, le), (right, re_)) if e is None]
            result.append(EnvironmentComparison(subjobs=indices, left=lid, right=rid,
                                                note=f"no environment recorded for {', '.join(missing)}"))
            continue
        facts = [(f, le.get(f), re_.get(f)) for f in FACTS if _fact(le.get(f)) != _fact(re_.get(f))]
        spec = None
        if le.get("spec") is not None and re_.get("spec") is not None:
            spec = diff_specs(EnvironmentSpec.from_dict(le["spec"] or {"version": "0.0.1"}, left.jobid),
                              EnvironmentSpec.from_dict(re_["spec"] or {"version": "0.0.1"}, right.jobid))
        note = ""
        if spec is None and le.get("spec_status", "").startswith("none") != re_.get("spec_status", "").startswith("none"):
            note = f"package spec: {le.get('spec_status')} vs {re_.get('spec_status')}"
        result.append(EnvironmentComparison(subjobs=indices, left=lid, right=rid, facts=facts, spec=spec, note=note))
    return result


def _hosts(job: JobSpec, indices: Sequence[int]) -> list[str]:
    subjobs = job.environment.get("subjobs") or []
    return sorted({subjobs[i].get("host", "") for i in indices if i < len(subjobs)} - {""})


def diff_jobs(left: JobSpec, right: JobSpec) -> JobDiff:
    """Compare two recorded jobs (see the module docstring).

    Two jobs that recorded no output at all are refused (:class:`JobError`,
    exit 1): "equal" would tell a script that the results agree when there
    were none to compare.
    """
    pairs, scope = _pairs(left, right)
    outputs = compare_outputs(left, right, scope)
    if not outputs:
        raise JobError(f"neither job {left.jobid} nor job {right.jobid} has a recorded output (none named with -o, "
                       "or none produced), so there is nothing to compare",
                       hint="Compare jobs that name their results with -o; 'reproman jobs --show JOB' shows a job's "
                            "environment.")
    return JobDiff(
        left=left.jobid,
        right=right.jobid,
        outputs=outputs,
        environments=compare_environments(left, right, pairs),
        hosts=(_hosts(left, [li for li, _ in pairs]), _hosts(right, [ri for _, ri in pairs])),
        inputs_changed=inputstate.changed(left.input_state, right.input_state),
    )


def _job_named(registry: Registry, query: str) -> JobSpec | BrokenRecord | None:
    """The one job ``query`` names; ``None`` when none does (an ambiguous one is the registry's error)."""
    from reproman.errors import JobNotFoundError

    try:
        (entry,) = registry.find([query])
    except JobNotFoundError:
        if any(query in e.jobid for e in registry.entries()):
            raise  # several jobs match: the registry's error lists them
        return None
    return entry


def job_references(prov1: str, prov2: str) -> tuple[JobSpec, JobSpec] | None:
    """Both arguments as registered jobs, or ``None`` when they are (meant as) spec files.

    An existing path is a spec file. When the other argument names a job,
    the arguments are refused: the one that is neither a job nor a file is
    named, or the mix of a job and a spec file is (a spec diff would only
    say it cannot read the job ID as a file).
    """
    from reproman.jobs.registry import Registry

    is_file = [os.path.exists(p) for p in (prov1, prov2)]
    if all(is_file):
        return None
    registry = Registry()
    found = [None if f else _job_named(registry, p) for p, f in zip((prov1, prov2), is_file)]
    if not any(found):
        return None  # no job named: spec files, and the spec diff says which it cannot read
    args = (prov1, prov2)
    jobs: list[JobSpec] = []
    for i, entry in enumerate(found):
        if is_file[i]:
            raise UsageError(f"{args[1 - i]!r} is a job but {args[i]!r} is a file: diff compares two jobs or two "
                             "spec files", hint="Give two job IDs (see 'reproman jobs') or two environment spec files.")
        if entry is None:
            raise UsageError(f"{args[i]!r} is neither a job nor a readable spec file",
                             hint="See 'reproman jobs' for job IDs, or give the path of an environment spec.")
        if not isinstance(entry, JobSpec):
            raise JobError(f"the record of job {entry.jobid} is unreadable: {entry.error}",
                           hint=f"Inspect or delete {entry.path}.")
        jobs.append(entry)
    return jobs[0], jobs[1]


def diff(prov1: str, prov2: str, satisfies: bool = False) -> JobDiff | None:
    """The job comparison when both arguments name jobs; ``None`` leaves them to the spec diff."""
    jobs = job_references(prov1, prov2)
    if jobs is None:
        return None
    if satisfies:
        raise UsageError("--satisfies compares environment specs, not jobs",
                         hint="Run 'reproman diff JOB1 JOB2' without it.")
    return diff_jobs(*jobs)
