"""Turn what the runscript captured on the nodes into the job record's ``environment``.

Input: the files of ``<job dir>/env/`` (see :mod:`reproman.jobs.capture`)
as bytes, keyed by name. Output::

    environments:
      3f2a9c...:                       # SHA-256 of the content: same content, same ID
        os: {id: debian, version_id: '12', pretty_name: Debian GNU/Linux 12 (bookworm)}
        kernel: Linux 6.1.0-18-amd64 #1 SMP ... x86_64
        cpu: {model: AMD EPYC 7B13, count: 2}
        memory: 24576000 kB
        executable: {name: python, path: /opt/venv/bin/python, interpreter: null}
        variables: {PATH: ..., LOADEDMODULES: ..., VIRTUAL_ENV: ...}
        container: {image_id: sha256:..., ...}       # where the resource or node knows one
        spec: {version: 0.0.1, distributions: [...]} # the traced package spec
        spec_status: traced | cached | none: why
    subjobs:
      - {index: 0, host: node17, environment: 3f2a9c..., scheduler: {SLURM_JOB_ID: '4242', ...},
         state: succeeded, exit_code: 0, trace: {status: traced, opened: 812, spec: 9b01...}}
    traces:                            # run --trace: each distinct strace-based spec once
      9b01...: {version: 0.0.1, distributions: [...]}

Identical environments (same facts and spec, on any number of nodes) are
stored once; the host name is a subjob's, not its environment's. Variables
named like secrets are dropped here whatever captured them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from reproman.jobs.secrets import is_secret

lgr = logging.getLogger(__name__)

#: Fields of the per-subjob context string and the variables they came from.
CONTEXT_VARIABLES = {
    "path": "PATH", "ld": "LD_LIBRARY_PATH", "modules": "LOADEDMODULES", "modulefiles": "_LMFILES_",
    "venv": "VIRTUAL_ENV", "conda": "CONDA_PREFIX",
}


def parse_lines(data: bytes) -> dict[str, str]:
    """``key=value`` lines (first value of a key wins; undecodable bytes kept as escapes)."""
    facts: dict[str, str] = {}
    for line in data.decode("utf-8", "backslashreplace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key and key not in facts:
            facts[key] = value
    return facts


def parse_context(ctx: str) -> tuple[str, dict[str, str]]:
    """The runscript's ``exe=...;path=...;...`` string as (executable name, variables).

    Fields are split at ``;NAME=`` for the known names only, so a ``;`` inside
    a value (rare in PATH, common in nothing else we record) stays in it.
    """
    names = ["exe", *CONTEXT_VARIABLES]
    positions = []
    for name in names:
        marker = f"{name}=" if name == "exe" else f";{name}="
        at = ctx.find(marker)
        if at >= 0:
            positions.append((at, name, at + len(marker)))
    positions.sort()
    values: dict[str, str] = {}
    for n, (_at, name, start) in enumerate(positions):
        end = positions[n + 1][0] if n + 1 < len(positions) else len(ctx)
        values[name] = ctx[start:end]
    exe = values.pop("exe", "")
    variables = {CONTEXT_VARIABLES[k]: v for k, v in values.items() if v}
    return exe, {k: v for k, v in variables.items() if not is_secret(k)}


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def node_facts(facts: Mapping[str, str]) -> dict[str, Any]:
    """The environment-describing part of a node's facts file."""
    exe, variables = parse_context(facts.get("ctx", ""))
    env: dict[str, Any] = {
        "os": {k[3:].lower(): _unquote(v) for k, v in facts.items() if k.startswith("os.")},
        "kernel": facts.get("uname", ""),
        "cpu": {"model": facts.get("cpu", ""), "count": int(facts["cpus"]) if facts.get("cpus", "").isdigit() else None},
        "memory": " ".join(facts.get("memory", "").replace("MemTotal:", "").split()),
        "executable": {"name": facts.get("exe", exe), "path": facts.get("exe_path") or None},
        "variables": variables,
    }
    container = {k[len("container."):]: v for k, v in facts.items() if k.startswith("container.")}
    if container:
        env["container"] = container
    return env


def _spec_answer(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _last_line(data: bytes | None) -> str:
    lines = (data or b"").decode("utf-8", "backslashreplace").strip().splitlines()
    return lines[-1] if lines else ""


#: Set on a subjob that traced its node's package spec while its command ran: its usage
#: figures include the tracing (seconds of CPU, tens of MB), not only the command's.
CAPTURED = "traced_environment"


def tracing_subjobs(record: Mapping[str, Any]) -> set[int]:
    """Indices of the subjobs whose usage includes the environment capture (see :data:`CAPTURED`)."""
    return {i for i, s in enumerate(record.get("subjobs") or []) if isinstance(s, Mapping) and s.get(CAPTURED)}


def environment_id(env: Mapping[str, Any]) -> str:
    """A content address: identical environments get the same ID wherever they were seen.

    Whether the spec was traced for this job or reused from the node's cache
    (``spec_status``) says how it was obtained, not what it is, and is left out.
    """
    content = {k: v for k, v in env.items() if k != "spec_status"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build(
    files: Mapping[str, bytes],
    n_subjobs: int,
    *,
    resource_facts: Mapping[str, Any] | None = None,
    states: Mapping[int, Mapping[str, Any]] | None = None,
    container_parameter: str | None = None,
) -> dict[str, Any]:
    """The ``environment`` record from the captured files (names relative to ``env/``).

    ``resource_facts`` is what the resource said about itself at submission
    (:meth:`Resource.provenance`, e.g. a container's image ID), added to every
    environment; ``states`` each subjob's final state and exit code.
    """
    environments: dict[str, dict[str, Any]] = {}
    traces: dict[str, dict[str, Any]] = {}
    by_key: dict[str, tuple[str, str]] = {}  # node key -> (environment id, context)
    tracers: set[int] = set()  # subjobs that traced a node's package spec (not a cache hit)
    for name in sorted(files):
        if not (name.startswith("n.") and name.endswith(".facts")):
            continue
        key = name[2:-len(".facts")]
        facts = parse_lines(files[name])
        env = node_facts(facts)
        answer = _spec_answer(files.get(f"n.{key}.spec.json"))
        if answer is not None:
            env["spec"] = answer.get("spec") or {}
            env["executable"]["interpreter"] = answer.get("interpreter")
            env["spec_status"] = "cached" if facts.get("spec") == "cached" else "traced"
        else:
            reason = facts.get("spec", "")
            if reason.startswith("none: "):
                env["spec_status"] = reason
            else:
                detail = _last_line(files.get(f"n.{key}.log"))
                env["spec_status"] = "none: tracing failed on the node" + (f" ({detail})" if detail else "")
        if container_parameter:
            env.setdefault("container", {})["image"] = container_parameter
        if resource_facts:
            env["resource"] = dict(resource_facts)
        ident = environment_id(env)
        environments.setdefault(ident, env)
        by_key[key] = (ident, facts.get("ctx", ""))
        holder = (files.get(f"n.{key}.lock") or b"").decode("ascii", "replace").strip()
        if env.get("spec_status") == "traced" and holder.isdigit():
            tracers.add(int(holder))

    subjobs: list[dict[str, Any]] = []
    for index in range(n_subjobs):
        record: dict[str, Any] = {"index": index}
        if states and index in states:
            record.update(states[index])
        raw = files.get(f"s.{index}")
        if raw is None:
            record["environment"] = None
            record["note"] = "no environment was captured (the subjob did not start, or ran before capture)"
            subjobs.append(record)
            continue
        facts = parse_lines(raw)
        record["host"] = facts.get("host", "")
        scheduler = {k[len("sched."):]: v for k, v in facts.items() if k.startswith("sched.") and v}
        if scheduler:
            record["scheduler"] = {k: v for k, v in scheduler.items() if not is_secret(k)}
        key = facts.get("key", "")
        found = by_key.get(key)
        if found is not None and found[1] == facts.get("ctx", ""):
            record["environment"] = found[0]
        else:
            # The subjob's node record is missing, or another subjob with a context of the same
            # length traced it: describe what this subjob saw, without a package spec.
            exe, variables = parse_context(facts.get("ctx", ""))
            env = {"executable": {"name": exe, "path": facts.get("resolved") or None}, "variables": variables,
                   "spec_status": "none: this subjob's node record is missing or belongs to another context"}
            ident = environment_id(env)
            environments.setdefault(ident, env)
            record["environment"] = ident
        if facts.get("resolved") and record["environment"] in environments:
            path = environments[record["environment"]]["executable"].get("path")
            if path and path != facts["resolved"]:
                record["executable_path"] = facts["resolved"]
        if index in tracers:
            record[CAPTURED] = True
        if "strace" in facts:
            record["trace"] = {"status": facts["strace"]}
        answer = _spec_answer(files.get(f"trace.{index}.json"))
        if answer is not None:
            spec = answer.get("spec") or {}
            trace_id = environment_id(spec)
            traces.setdefault(trace_id, spec)
            record["trace"] = {"status": "traced", "opened": answer.get("opened"), "spec": trace_id}
        elif f"strace.{index}" in files and "trace" not in record:
            record["trace"] = {"status": "untraced: the strace log was not processed on the node"}
        subjobs.append(record)
    result: dict[str, Any] = {"environments": environments, "subjobs": subjobs}
    if traces:
        result["traces"] = traces
    return result


def brief(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``environment`` record for people: each environment's facts with its spec as counts."""
    environments: dict[str, Any] = {}
    for ident, env in (record.get("environments") or {}).items():
        shown = {k: v for k, v in env.items() if k not in ("spec", "variables")}
        spec = env.get("spec") or {}
        shown["spec"] = ", ".join(
            f"{len(d.get('packages') or d.get('environments') or d.get('repositories') or d.get('images') or [])} "
            f"{d.get('name')}" for d in spec.get("distributions", [])
        ) + (f", {len(spec['files'])} other files" if spec.get("files") else "")
        environments[ident] = shown
    hosts = sorted({s.get("host", "") for s in record.get("subjobs") or []} - {""})
    return {"environments": environments, "hosts": hosts}
