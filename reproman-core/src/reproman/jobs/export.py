"""``reproman jobs --export JOB DIR``: a job's provenance as an RO-Crate (Process Run Crate 0.5).

The crate is built with the ``rocrate`` library (``pip install
'reproman-core[export]'``), imported only here. Its shape follows the
Process Run Crate profile:

* the root dataset ``conformsTo`` the profile and ``mentions`` one
  ``CreateAction`` per subjob (each subjob is one execution of the tool);
* each action has the executable as ``instrument`` (a
  ``SoftwareApplication``, with the version of the package that provides
  it when the environment was traced), the subjob's inputs as ``object``,
  its outputs as ``result`` (``contentSize`` and ``sha256`` as computed on
  the resource), ``actionStatus``, and the node facts and scheduler IDs as
  ``environment`` (``PropertyValue`` entities);
* each distinct recorded environment is attached as
  ``environments/ID.yaml`` (the package spec, readable by ``reproman diff``
  and ``reproman install``) and ``environments/ID.json`` (the node facts),
  ``about`` the actions that ran in it; the job record itself is
  ``reproman-job.json``.

Data files are copied in only when the local copy still has the content the
job produced (its SHA-256 matches the record); otherwise the output is
described (name, size, checksum) without content, and the description
says why. Variables named like secrets are never written. Names that are
not UTF-8 are carried exactly (:mod:`reproman.jobs.crate_data`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reproman.errors import JobError, UsageError
from reproman.jobs import checksums, layout, outcome, timing
from reproman.jobs.capture import executable_name
from reproman.jobs.crate_data import DataFiles, make_readable, uri
from reproman.jobs.secrets import is_secret, redact
from reproman.jobs.spec import JobSpec

lgr = logging.getLogger(__name__)

PROFILE = "https://w3id.org/ro/wfrun/process/0.5"
#: Process Run Crate 0.5 is a profile of RO-Crate 1.1.
CRATE_VERSION = "1.1"
COMPLETED = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"
#: Terms the RO-Crate 1.1 context lacks, from the Workflow Run terms the profile uses.
EXTRA_TERMS = {
    "environment": "https://w3id.org/ro/terms/workflow-run#environment",
    "sha256": "https://w3id.org/ro/terms/workflow-run#sha256",
}
LICENSE_NOTE = ("ReproMan does not know under which terms these results may be used; "
                "replace this entity with the real license before publishing the crate.")


def _rocrate() -> Any:
    try:
        from rocrate.rocrate import ROCrate
    except ImportError:
        raise UsageError("exporting a job needs the rocrate library",
                         hint="Install it with: pip install 'reproman-core[export]'") from None
    return ROCrate


def _safe_record(job: JobSpec) -> dict[str, Any]:
    record = job.to_dict()
    params = record.get("parameters") or {}
    if isinstance(params.get("env"), Mapping):
        params["env"] = redact(params["env"])
    return record


def _package_version(spec: Mapping[str, Any], path: str | None) -> str | None:
    """The version of the package that ships ``path``, from a traced spec."""
    if not path:
        return None
    for dist in spec.get("distributions", []):
        for collection in ("packages", "environments"):
            for item in dist.get(collection) or []:
                if path in (item.get("files") or []):
                    return str(item.get("version")) if item.get("version") else None
    return None


def _property_values(crate: Any, ident: str, values: Mapping[str, Any]) -> list[Any]:
    from rocrate.model import ContextEntity

    entities = []
    for name, value in values.items():
        if value in (None, "", {}, []) or is_secret(name):
            continue
        entity = ContextEntity(crate, f"#{ident}-{name}", properties={
            "@type": "PropertyValue", "name": name,
            "value": value if isinstance(value, str) else json.dumps(value, sort_keys=True),
        })
        entities.append(crate.add(entity))
    return entities


def export_job(job: JobSpec, directory: str | os.PathLike[str]) -> Path:
    """Write ``job``'s crate into ``directory`` (new or empty); return the metadata file's path."""
    import tempfile

    ROCrate = _rocrate()
    target = Path(directory)
    # lexists: a symbolic link to nothing is in the way too (writing would follow it, or fail with "File exists").
    if os.path.lexists(target) and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} exists and is not an empty directory",
                         hint="Name a new directory for the crate.")
    from reproman.jobs.provenance import has_checksums

    if job.status != "fetched" or not has_checksums(job):
        raise JobError(f"job {job.jobid} has not been fetched, so its outputs' checksums are not recorded",
                       hint=f"Fetch it first: reproman jobs {job.jobid}")
    with tempfile.TemporaryDirectory(prefix="reproman-crate-") as tmp:
        return _build(ROCrate(version=CRATE_VERSION), job, target, Path(tmp))


def _build(crate: Any, job: JobSpec, target: Path, scratch: Path) -> Path:
    """Describe ``job`` in ``crate`` and write it to ``target``; generated files are made in ``scratch``."""
    import mimetypes

    from rocrate.model import ContextEntity

    from reproman.tracing.spec import EnvironmentSpec

    crate.metadata.extra_terms.update(EXTRA_TERMS)

    def encoding(name: str) -> str:
        return mimetypes.guess_type(name)[0] or "application/octet-stream"

    def single(values: list[Any]) -> Any:
        return values[0] if len(values) == 1 else values

    def generated(name: str, text: str, properties: dict[str, Any]) -> Any:
        path = scratch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return crate.add_file(str(path), dest_path=name, properties=properties)

    base = Path(job.local_directory)
    root = crate.root_dataset
    root["name"] = f"ReproMan job {job.jobid}"
    root["description"] = job.message or f"Provenance of '{job.command}' run by ReproMan on {job.resource_name}"
    root["datePublished"] = job.created
    profile = crate.add(ContextEntity(crate, PROFILE, properties={
        "@type": "CreativeWork", "name": "Process Run Crate", "version": "0.5"}))
    root["conformsTo"] = profile
    root["license"] = crate.add(ContextEntity(crate, "#license", properties={
        "@type": "CreativeWork", "name": "License not specified", "description": LICENSE_NOTE}))

    # Strict JSON: a name that is not UTF-8 is shown as \xNN here (its @id elsewhere is exact).
    generated("reproman-job.json", json.dumps(make_readable(_safe_record(job)), indent=2, default=str) + "\n",
              {"name": "ReproMan job record", "encodingFormat": "application/json"})

    environments = job.environment.get("environments") or {}
    env_subjobs = job.environment.get("subjobs") or []
    verified = checksums.verify(job.checksums, base)
    present = set(verified.matched)

    files: dict[str, Any] = {}
    data = DataFiles(crate)

    def output_entity(rel: str) -> Any:
        if rel in files:
            return files[rel]
        recorded = job.checksums.get(rel, {})
        props: dict[str, Any] = {"name": rel, "contentSize": str(recorded.get("size", "")),
                                 "sha256": recorded.get("sha256")}
        if rel in present:
            props["encodingFormat"] = encoding(rel)
            entity = data.file(base / rel, rel, props)
        else:
            why = "modified locally since the job produced it" if rel in verified.mismatched else "not present locally"
            props.update({"@type": "CreativeWork", "description": f"Output of the job, not included: {why}."})
            entity = crate.add(ContextEntity(crate, f"#output-{uri(rel)}", properties=make_readable(props)))
        files[rel] = entity
        return entity

    def input_entity(rel: str) -> Any:
        key = f"input:{rel}"
        if key in files:
            return files[key]
        local = base / rel
        if local.is_dir():
            entity = data.tree(local, rel)
        elif local.is_file():
            entity = data.file(local, rel, {"encodingFormat": encoding(rel)})
        else:
            entity = crate.add(ContextEntity(crate, f"#input-{uri(rel)}", properties=make_readable({
                "@type": "CreativeWork", "name": rel, "description": "Input of the job, not present locally."})))
        files[key] = entity
        return entity

    software: dict[str, Any] = {}
    env_files: dict[str, list[Any]] = {}
    for ident, env in environments.items():
        spec = EnvironmentSpec.from_dict(env.get("spec") or {"version": "0.0.1"}, ident)
        facts = {k: v for k, v in env.items() if k != "spec"}
        facts["variables"] = redact(facts.get("variables") or {})
        env_files[ident] = [
            generated(f"environments/{ident}.yaml", spec.to_yaml(), {
                "name": f"Environment {ident}: package spec ({env.get('spec_status', '')})",
                "encodingFormat": "application/yaml"}),
            generated(f"environments/{ident}.json", json.dumps(facts, indent=2, sort_keys=True) + "\n", {
                "name": f"Environment {ident}: node facts", "encodingFormat": "application/json"}),
        ]

    spans = _spans(job)
    actions = []
    for index, subjob in enumerate(job.subjobs):
        env_record = env_subjobs[index] if index < len(env_subjobs) else {}
        env = environments.get(env_record.get("environment") or "", {})
        exe = (env.get("executable") or {}) if env else {}
        name = exe.get("name") or executable_name(subjob.command) or "sh"
        path = exe.get("path")
        key = f"{name}\0{path}"
        if key not in software:
            props: dict[str, Any] = {"@type": "SoftwareApplication", "name": name}
            version = _package_version(env.get("spec") or {}, path)
            if version:
                props["softwareVersion"] = version
            if path:
                props["identifier"] = path
            software[key] = crate.add(ContextEntity(crate, f"#software-{len(software)}", properties=props))
        state = env_record.get("state")
        node: dict[str, Any] = {"host": env_record.get("host"), "environment": env_record.get("environment"),
                                **(env_record.get("scheduler") or {})}
        props = {
            "name": f"Subjob {index} of ReproMan job {job.jobid}",
            "description": subjob.command,
        }
        ended = outcome.recorded(job, index)
        if ended is not None:
            state = ended.state.value
        if state in ("succeeded", "failed"):
            props["actionStatus"] = COMPLETED if state == "succeeded" else FAILED
            if state == "failed":
                props["error"] = (_failure(ended) if ended is not None
                                  else f"exit code {env_record.get('exit_code')}")
        span = spans.get(index)
        if span is not None and span.start is not None:
            end = span.end
            if end is None and ended is not None and ended.usage and ended.usage.elapsed is not None:
                end = span.start + ended.usage.elapsed  # killed before writing its end: accounting knows
            props["startTime"] = timing.SubjobTimes(start=span.start).iso()["start"]
            if end is not None:
                props["endTime"] = timing.SubjobTimes(end=end).iso()["end"]
        action = crate.add_action(
            software[key], identifier=f"#subjob-{index}",
            object=[input_entity(i.strip('/')) for i in subjob.inputs],
            result=[output_entity(r) for r in sorted(job.checksums) if _under(r, subjob.outputs)],
            properties=props,
        )
        for name in ("object", "result"):
            if isinstance(action.get(name), list):
                if action[name]:
                    action[name] = single(action[name])
                else:
                    del action[name]
        environment = _property_values(crate, f"subjob-{index}", node)
        if environment:
            action["environment"] = single(environment)
        actions.append(action)
        if env_record.get("environment") in env_files:
            for entity in env_files[env_record["environment"]]:
                about = entity.get("about") or []
                entity["about"] = [*about, action] if isinstance(about, list) else [about, action]
    root["mentions"] = single(actions)
    for entity in (e for files in env_files.values() for e in files):
        if isinstance(entity.get("about"), list):
            entity["about"] = single(entity["about"])

    for entity in crate.get_entities():  # JSON is text: any other value naming such bytes shows them as \\xNN
        props = entity.properties()
        props.update(make_readable(props))
    target.mkdir(parents=True, exist_ok=True)
    try:
        crate.write(str(target))
        data.copy_into(target)
    except OSError as exc:
        raise JobError(f"cannot write the crate in {target}: {exc.strerror or exc}",
                       hint="Free space or fix the permissions there, remove the partial crate and export again.") from None
    return target / "ro-crate-metadata.json"


def _failure(ended: outcome.Outcome) -> str:
    """``walltime exceeded (TIMEOUT)``, ``non-zero exit, exit code 3``: the reason, the code where there is one."""
    words = [ended.reason.value if ended.reason else "failed"]
    if ended.exit_code is not None:
        words.append(f"exit code {ended.exit_code}")
    text = ", ".join(words)
    return f"{text} ({ended.detail})" if ended.detail else text


def _spans(job: JobSpec) -> dict[int, timing.SubjobTimes]:
    """Each subjob's start and end, from the file times in the fetched copy of its job directory."""
    from reproman.jobs.status import local_log_dir
    from reproman.report.collect import local_files

    copy = local_log_dir(job)
    final = {i: layout.parse_status_line(line)[0] in ("succeeded", "failed")
             for i, line in local_files(copy).lines.items()}
    return timing.combine(timing.read_local(copy), final)


def _under(path: str, outputs: list[str]) -> bool:
    return any(path == o.strip("/") or path.startswith(o.strip("/") + "/") or o.strip("/") in ("", ".")
               for o in outputs)


def export(query: str, directory: str) -> Path:
    """Export the registered job ``query`` names (see :func:`export_job`)."""
    from reproman.jobs.rerun import load_job

    return export_job(load_job(query), directory)
