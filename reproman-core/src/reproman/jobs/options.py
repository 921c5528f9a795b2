"""Job specs and job parameters: merge ``--job-spec`` files and ``--job-parameter`` values, then validate.

A job spec file holds a whole request, so a saved job can be submitted
again: ``command`` (shell code, or a list of words), ``inputs``,
``outputs``, ``resource``, ``submitter``, ``orchestrator``, ``message``,
``batch_parameters`` (``KEY: [v1, v2]``) or ``batch_spec`` (a file) or
``batch`` (the records themselves), and the job parameters, either under
``job_parameters`` or as top-level keys. Two other shapes load too:

* what ``reproman jobs --show JOB`` prints (a job record, YAML or the
  ``--json`` list): command, input/output patterns, batch records,
  resource, submitter, orchestrator and job parameters are taken from it;
  what the record says about that one run (ids, directories, outcomes) is
  not;
* the old ReproMan's job specs: ``command_str``, ``resource_name`` /
  ``resource_id``, job parameters at the top level, ``_resolved_*`` keys
  (other ``_`` keys are its internals and are ignored).

Precedence, lowest first: each job spec file in the order given (nested
mappings merged key by key), then ``KEY=VALUE`` job parameters, then the
command line's own options. ``env`` is merged variable by variable at every
step (configuration, job specs, ``--jp env=``): a job spec made from
``reproman jobs --show`` plus ``--jp env=B=2`` keeps the spec's other
variables, which a whole-value replacement would silently drop. Parameter names are checked against
:data:`reproman.jobs.parameters.JOB_PARAMETERS` and against what the chosen
submitter honours (its own typed parameters included, see
:func:`reproman.jobs.parameters.submitter_parameters`), so a ``queue`` given
to the ``local`` submitter fails before anything runs instead of being
silently ignored, and values arrive converted to their declared types.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from reproman.errors import UsageError
from reproman.jobs.batch import check_records
from reproman.jobs.parameters import JOB_PARAMETERS, check_job_spec, env_mapping, submitter_parameters
from reproman.plugins.records import Parameter, SubmitterType

KNOWN: dict[str, Parameter] = {p.name: p for p in JOB_PARAMETERS}

#: Keys of a job spec that describe the request itself rather than job parameters.
REQUEST_KEYS = frozenset({
    "command", "command_str", "message", "resource", "resource_name", "resource_id", "submitter",
    "orchestrator", "inputs", "outputs", "batch_parameters", "batch_spec", "batch", "job_parameters",
})


@attrs.frozen(kw_only=True)
class JobRequest:
    """What the job spec files ask for (None: not given there)."""

    command: str | list[str] | None = None
    message: str | None = None
    resource: str | None = None
    #: How ``resource`` is meant: ``name`` or ``id`` (the old ``resource_id`` key).
    resource_type: str = "auto"
    submitter: str | None = None
    orchestrator: str | None = None
    inputs: list[str] | None = None
    outputs: list[str] | None = None
    batch_spec: str | None = None
    batch_parameters: dict[str, Any] | list[str] | None = None
    #: Batch records given literally (``batch``, or a record's subjobs).
    batch: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] = attrs.Factory(dict)
    #: Which file gave each job parameter (the last one that set it), for messages about it.
    sources: dict[str, str] = attrs.Factory(dict)


def load_request(paths: Sequence[str | os.PathLike[str]] | None) -> JobRequest:
    """The merged request of the job spec files (later files win, job parameters and ``env`` merged key by key).

    ``env`` values keep the text written (``010``, ``yes``, ``1e3``), as
    batch spec values do; other job parameters keep YAML's types, so a
    ``working_directory: true`` is still refused as no path.
    """
    fields: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for path in paths or ():
        read = _read_spec(path)
        if read is None:
            continue
        found, params = read
        check_job_spec(params, path)
        if _has_typed_scalars(params.get("env")):
            # Read again, every scalar as text: YAML made env value 010 into 10 and yes into True.
            params["env"] = (_read_spec(path, as_text=True) or ({}, {}))[1].get("env")
        if params.get("env") is not None:
            params["env"] = env_mapping(params["env"])  # checked above; a mapping merges name by name
        fields.update(found)
        parameters = deep_merge(parameters, params)
        sources.update(dict.fromkeys(params, str(path)))
    return JobRequest(parameters=parameters, sources=sources, **fields)


def _read_spec(path: str | os.PathLike[str], as_text: bool = False) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The request fields and the job parameters of one job spec file (None: the file is empty)."""
    from reproman.yamlio import load_file, text_scalars

    data = load_file(path, what="job spec", constructor=text_scalars() if as_text else None)
    if data is None:
        return None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], Mapping):
        data = data[0]  # 'reproman jobs --show --json JOB'
    if not isinstance(data, Mapping):
        raise UsageError(f"job spec {path} must be a YAML mapping (a request, job parameters or a job record)")
    return _from_record(data, str(path)) if "jobid" in data else _from_spec(data, str(path))


def _has_typed_scalars(env: Any) -> bool:
    """Whether YAML typed any of ``env``'s values (or ``KEY=VALUE`` items) as something other than text."""
    values = env.values() if isinstance(env, Mapping) else env if isinstance(env, list) else ()
    return any(v is not None and not isinstance(v, str) for v in values)


def _words(value: Any, key: str, source: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise UsageError(f"job spec {source}: {key} must be a path or a list of paths")


def _from_spec(data: Mapping[str, Any], source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request written by hand (or by the old ReproMan)."""
    found: dict[str, Any] = {}
    _check_names(data, source)
    command = data.get("command_str", data.get("command", data.get("_resolved_command_str")))
    if command is not None:
        if not isinstance(command, (str, list)) or not command or (
                isinstance(command, list) and not all(_is_scalar(w) for w in command)):
            raise UsageError(f"job spec {source}: command must be shell code or a list of words (text or numbers)")
        found["command"] = command if isinstance(command, str) else [str(w) for w in command]
    for key in ("message", "submitter", "orchestrator", "batch_spec"):
        if data.get(key) is not None:
            found[key] = _text(data, key, source)
    if data.get("resource") is not None or data.get("resource_name") is not None:
        key = "resource" if data.get("resource") is not None else "resource_name"
        found["resource"] = _text(data, key, source)
        found["resource_type"] = "name" if key == "resource_name" else "auto"
    elif data.get("resource_id") is not None:
        found["resource"], found["resource_type"] = _text(data, "resource_id", source), "id"
    for key in ("inputs", "outputs"):
        if data.get(key) is not None:
            found[key] = _words(data[key], key, source)
    if data.get("batch_parameters") is not None:
        value = data["batch_parameters"]
        if not isinstance(value, (Mapping, list)):
            raise UsageError(f"job spec {source}: batch_parameters must map KEY to values")
        _check_batch_parameters(value, source)
        found["batch_parameters"] = dict(value) if isinstance(value, Mapping) else [str(v) for v in value]
    batch = data.get("batch", data.get("_resolved_batch_parameters"))
    if batch is not None:
        if not isinstance(batch, list) or not all(isinstance(r, Mapping) for r in batch):
            raise UsageError(f"job spec {source}: batch must be a list of mappings (one record per subjob)")
        found["batch"] = check_records(batch, f"job spec {source}: batch")
    nested = data.get("job_parameters") or {}
    if not isinstance(nested, Mapping):
        raise UsageError(f"job spec {source}: job_parameters must be a mapping")
    _check_names(nested, source)
    top = {k: v for k, v in data.items() if k not in REQUEST_KEYS and not str(k).startswith("_")}
    twice = sorted(set(top) & set(nested))
    if twice:
        raise UsageError(f"job spec {source}: {twice[0]} is given both at the top level and under job_parameters",
                         hint="Keep one of them.")
    return found, {**top, **nested}


def _check_batch_parameters(value: Mapping[Any, Any] | list[Any], source: str) -> None:
    """The shape of a job spec's ``batch_parameters``, checked where the file can be named.

    Values are expanded (ranges, globs) later, relative to the directory
    the run starts in; what can be wrong with the file itself is said here.
    """
    from reproman.jobs.batch import check_value

    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise UsageError(f"job spec {source}: batch_parameters: {item!r} is not KEY=VALUE1,VALUE2"[:200])
        return
    for key, values in value.items():
        if not isinstance(key, str) or not key.strip():
            raise UsageError(f"job spec {source}: batch_parameters: {key!r} is not a parameter name"[:200])
        items = values if isinstance(values, list) else [values]
        if not items:
            raise UsageError(f"job spec {source}: batch_parameters: {key} has no values",
                             hint="Give at least one value, or leave the key out.")
        for item in items:
            if item is None:
                raise UsageError(f"job spec {source}: batch_parameters: {key}: no value (write '' for empty text)")
            check_value(item, f"job spec {source}: batch_parameters: {key}")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _text(data: Mapping[str, Any], key: str, source: str) -> str:
    """``data[key]`` as text; a list, mapping or boolean there is one line naming the file and the key."""
    value = data[key]
    if not _is_scalar(value):
        kind = ("a mapping" if isinstance(value, Mapping) else "a list" if isinstance(value, list)
                else "a boolean (quote it to make it text)" if isinstance(value, bool) else type(value).__name__)
        raise UsageError(f"job spec {source}: {key} must be text, got {kind}")
    return str(value)


def _check_names(data: Mapping[Any, Any], source: str) -> None:
    """Every key of a job spec mapping is text: ``1:`` or ``null:`` is no parameter name (and broke the suggestions)."""
    for key in data:
        if not isinstance(key, str) or not key.strip():
            raise UsageError(f"job spec {source}: {key!r} is not a parameter name"[:200])


def _record_command(data: Mapping[str, Any], source: str) -> str | list[str]:
    """A record's command in the form it was given: its words when it was argv, else its shell code.

    ``command`` alone is the words' shell-quoted join; read back as shell
    code, ``sh -c 'echo {p[v]!q}'`` would render a value inside the
    quotes meant for the whole word, and a value holding a quote would run
    as code. When both fields are there they must still agree: the one the
    user edited cannot be told.
    """
    import shlex

    words = data.get("command_words")
    if words is not None and not (isinstance(words, list) and words and all(isinstance(w, str) for w in words)):
        raise UsageError(f"job spec {source}: command_words must be a list of words")
    if not data.get("command"):
        return [str(w) for w in words or []]  # the user deleted 'command', as the README says they may
    text = str(data["command"])
    if words is None:
        return _older_record_command(data, text)
    if shlex.join(words) != text:
        raise UsageError(f"job spec {source}: 'command' and 'command_words' name different commands",
                         hint="Edit one of them and delete the other (command_words: the command as separate "
                              "words; command: shell code).")
    return list(words)


def _check_not_edited(data: Mapping[str, Any], key: str, subjobs: list[Mapping[str, Any]], source: str) -> None:
    """Refuse a record whose ``inputs``/``outputs`` list was edited: the ``*_patterns`` decide what moves.

    The list is the subjobs' rendered paths; a path added there (or removed)
    would silently not be fetched (or still be), and an output never fetched
    is freed with the job's files.
    """
    listed = data.get(key)
    if not isinstance(listed, list) or not subjobs:
        return
    rendered = {str(p) for s in subjobs for p in (s.get(key) or [])}
    if {str(p) for p in listed} != rendered:
        pattern_key = key[:-1] + "_patterns"
        raise UsageError(f"job spec {source}: {key!r} differs from what its {pattern_key!r} give the subjobs",
                         hint=f"Edit {pattern_key} (the paths as given to {'-i' if key == 'inputs' else '-o'}, "
                              f"{{p[KEY]}} placeholders and all), or give them with {'-i' if key == 'inputs' else '-o'}; "
                              f"'{key}' is only the record of what the subjobs had.")


def _older_record_command(data: Mapping[str, Any], text: str) -> str | list[str]:
    """For a record written before ``command_words``: the form that renders every subjob's recorded command.

    Shell code unless only its words (``shlex.split``) reproduce what the
    subjobs ran; a command the user edited reproduces neither and is
    taken as the shell code they wrote.
    """
    import shlex

    from reproman.jobs.batch import render_command

    subjobs = [s for s in data.get("subjobs") or [] if isinstance(s, Mapping) and isinstance(s.get("command"), str)]
    if not subjobs:
        return text

    def renders(command: str | list[str]) -> bool:
        try:
            return all(render_command(command, dict(s.get("p") or {}), list(s.get("inputs") or []),
                                      list(s.get("outputs") or [])) == s["command"] for s in subjobs)
        except (UsageError, ValueError, TypeError, KeyError, IndexError):
            return False

    if renders(text):
        return text
    try:
        words = shlex.split(text)
    except ValueError:
        return text
    return words if len(words) > 1 and renders(words) else text


def _from_record(data: Mapping[str, Any], source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job record as ``reproman jobs --show`` prints it: the request part only."""
    found: dict[str, Any] = {}
    if data.get("command") or data.get("command_words"):
        found["command"] = _record_command(data, source)
    for key in ("message", "submitter", "orchestrator"):
        if data.get(key) is not None:
            found[key] = _text(data, key, source)
    if data.get("resource_name"):
        found["resource"], found["resource_type"] = _text(data, "resource_name", source), "name"
    subjobs = [s for s in data.get("subjobs") or [] if isinstance(s, Mapping)]
    records = [s.get("p") or {} for s in subjobs]
    if not all(isinstance(r, Mapping) for r in records):
        raise UsageError(f"job spec {source}: each subjob's p must be a mapping of its batch parameters")
    if len(records) > 1 or any(records):
        found["batch"] = check_records(records, f"job spec {source}: subjobs")
    for key in ("inputs", "outputs"):
        patterns = data.get(key[:-1] + "_patterns")
        if patterns:
            _check_not_edited(data, key, subjobs, source)
            found[key] = _words(patterns, key, source)
        elif len(subjobs) <= 1 or len({tuple(s.get(key) or ()) for s in subjobs}) == 1:
            # An older record without patterns: each subjob had the same paths.
            found[key] = _words(data.get(key) or [], key, source)
        else:
            raise UsageError(f"job record {source} predates {key} patterns and its subjobs differ",
                             hint=f"Give the {key} again with {'-i' if key == 'inputs' else '-o'}.")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise UsageError(f"job record {source}: parameters must be a mapping")
    _check_names(parameters, source)
    return found, dict(parameters)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; mappings present in both are merged recursively."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_job_parameters(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["k=v", ...]`` (or a mapping) as a dict; a missing ``=`` is a usage error.

    ``env`` comes back as a mapping, so that it merges name by name over a
    job spec's; given twice (``--jp env=A=1 --jp env=B=2``) it sets both.
    """
    if items is None:
        return {}
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    else:
        for item in items:
            key, sep, text = str(item).partition("=")
            if not sep or not key.strip():
                raise UsageError(f"job parameter {item!r} is not of the form KEY=VALUE")
            pairs.append((key.strip(), text))
    result: dict[str, Any] = {}
    for key, raw in pairs:
        value: Any = raw
        if key == "env" and raw is not None:
            try:
                value = {**(result.get("env") or {}), **env_mapping(raw)}
            except ValueError as exc:
                raise UsageError(f"job parameter 'env': {exc}",
                                 hint="Write env=NAME=VALUE,NAME2=VALUE2 (\\, for a comma in a value).") from None
        result[key] = value
    return result


def configured_defaults(submitter: SubmitterType, resource_name: str | None = None) -> dict[str, Any]:
    """Job-parameter defaults from ``[submitter-NAME]`` and ``[submitter-NAME:RESOURCE]``, checked and converted.

    The same for every submitter, built-in or plugin: the defaults become
    the job's parameters (and so its record says what was submitted). A key
    that is not a job parameter the submitter takes (nor one of its
    ``settings``) or a value that does not convert is a :class:`ConfigError`
    naming the section, before anything is created.
    """
    from reproman.config import get_config
    from reproman.errors import ConfigError

    config = get_config()
    base = f"submitter-{submitter.name}"
    sections = [base, f"{base}:{resource_name}"] if resource_name else [base]
    supported = submitter_parameters(submitter)
    values: dict[str, Any] = {}
    for section in sections:
        for raw_key, raw in config.section(section).items():
            key = raw_key.replace("-", "_")
            if key in submitter.settings:
                continue
            param = supported.get(key)
            if param is None:
                close = difflib.get_close_matches(key, list(supported), n=1)
                raise ConfigError(
                    f"[{section}] {raw_key}: not a job parameter the {submitter.name} submitter takes",
                    hint=f"Did you mean {close[0]!r}?" if close else
                    f"See 'reproman run --list parameters'; it takes: {', '.join(sorted(supported))}.")
            try:
                converted = _convert(param, raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"[{section}] {raw_key} = {raw!r}: {exc}"[:300]) from None
            try:
                check_no_placeholder(key, converted)
            except UsageError as exc:
                raise ConfigError(f"[{section}] {raw_key}: {exc}"[:300]) from None
            values[key] = {**values.get(key, {}), **converted} if key == "env" else converted
    return values


def resolve_job_parameters(
    job_specs: Sequence[str | os.PathLike[str]] | JobRequest | None,
    job_parameters: Sequence[str] | Mapping[str, Any] | None,
    submitter: SubmitterType,
    resource_name: str | None = None,
) -> dict[str, Any]:
    """Merged, validated and converted job parameters for ``submitter``, configured defaults included.

    ``job_specs`` are job spec files, or the request already loaded from
    them. Precedence, lowest first: ``[submitter-NAME]``,
    ``[submitter-NAME:RESOURCE]`` (``resource_name``), job spec files,
    ``job_parameters``.
    """
    request = job_specs if isinstance(job_specs, JobRequest) else load_request(job_specs)
    given_here = parse_job_parameters(job_parameters)
    given = deep_merge(request.parameters, given_here)
    sources = {key: path for key, path in request.sources.items() if key not in given_here}
    return merge_job_parameters(configured_defaults(submitter, resource_name), given, submitter, sources=sources)


def merge_job_parameters(base: Mapping[str, Any], given: Mapping[str, Any], submitter: SubmitterType, *,
                         sources: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``given`` (raw values) checked against ``submitter``, converted, and put over ``base`` (converted values).

    ``env`` is merged name by name: setting one variable keeps the others
    (the configuration's, a job spec's, a rerun's original ones). A
    parameter that ``sources`` says came from a job spec file is refused
    with that file's name in front.
    """
    supported = submitter_parameters(submitter)
    values: dict[str, Any] = dict(base)
    for key, raw in given.items():
        where = f"job spec {sources[key]}: " if sources and key in sources else ""
        param = supported.get(key)
        if param is None:
            if key not in KNOWN:
                # In a job spec file a misspelt request key (comand:, ouputs:) lands here too.
                names = [*KNOWN, *supported, *(sorted(REQUEST_KEYS) if where else [])]
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"Did you mean {close[0]!r}?" if close else "See 'reproman run --list parameters'."
                raise UsageError(f"{where}unknown job parameter {key!r}.", hint=hint)
            raise UsageError(
                f"{where}job parameter {key!r} is not supported by submitter {submitter.name!r}"
                f" (it supports: {', '.join(sorted(supported))}).",
                hint="Choose another submitter with --submitter, or drop the parameter.",
            )
        try:
            converted = _convert(param, raw)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{where}job parameter {key!r}: {exc}") from None
        try:
            check_no_placeholder(key, converted)
        except UsageError as exc:
            raise UsageError(f"{where}{exc}") from None
        values[key] = {**(values.get(key) or {}), **converted} if key == "env" else converted
    return values


def check_no_placeholder(key: str, value: Any) -> None:
    """Refuse a job parameter holding a batch placeholder (``env=X={p[i]}``): it would stay as written.

    Job parameters are one value for the whole job (the runscript exports
    ``env`` once, a scheduler gets one ``memory``), so ``{p[KEY]}`` there
    cannot become each subjob's value; passed on literally, every subjob
    would see the text ``{p[i]}`` and nothing would say why.
    """
    from reproman.jobs.batch import PLACEHOLDER

    texts = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else [value]
    for text in texts:
        found = PLACEHOLDER.search(text) if isinstance(text, str) else None
        if found:
            hint = ("Set the variable in the command instead: env NAME={p[KEY]} PROGRAM ARGS." if key == "env"
                    else "A job parameter is one value for every subjob; for different values, run one job each.")
            raise UsageError(f"job parameter {key!r}: {found.group(0)[:60]} would stay as written: placeholders "
                             "work only in the command and in -i/-o paths", hint=hint)


def _convert(param: Parameter, raw: Any) -> Any:
    if param.name == "env":
        return env_mapping(raw)
    return param.convert(raw)
