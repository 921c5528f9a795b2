"""Batch expansion: one command template and N parameter records -> N subjobs.

Records come from ``--batch-spec`` (a YAML list of mappings) or from
``--batch-parameter KEY=v1,v2`` (the product over keys; a value that is a glob
pattern expands against the working directory). Each record is available as
``{p[KEY]}`` in the command, the inputs and the outputs; the command can also
use ``{inputs}`` and ``{outputs}`` (the subjob's rendered paths).

Placeholders are substituted with a small, explicit renderer rather than
``str.format``: shell code is full of braces (``${HOME}``, ``awk '{print}'``)
that ``str.format`` would reject or, worse, evaluate, and a renderer that
only knows three field names cannot raise the old tool's ``KeyError: 'p'``
or reach attributes of the values. It keeps ``str.format``'s format specs
(``{p[n]:03}``) with widths and precisions of at most :data:`MAX_WIDTH`
(``{p[v]:>1500000000}`` would need 1.5 GB), and adds the conversion
``{p[K]!q}``: the value quoted for the shell. A command given as one string
is shell code, and a plain ``{p[K]}`` is pasted into it as is, so a value
``x; rm -rf ~`` runs ``rm``; ``!q`` makes it one word. Rendering is a pure
function of its arguments, so repeated or concurrent batch runs share no
state.
"""

from __future__ import annotations

import datetime
import glob
import itertools
import math
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reproman.errors import UsageError
from reproman.jobs.spec import Subjob
from reproman.textlist import split_escaped

_GLOB_CHARS = re.compile(r"[*?\[]")
PLACEHOLDER = re.compile(
    r"\{(?:p\[(?P<key>[^\[\]{}]+)\](?:!(?P<conversion>\w))?|(?P<list>inputs|outputs))(?::(?P<spec>[^{}]*))?\}"
)
#: ``str.format``'s mini-language (fill, align, sign, z, #, 0, width, grouping, precision, type).
_FORMAT_SPEC = re.compile(
    r"(?:[^{}]?[<>=^])?(?P<sign>[-+ ])?z?#?(?P<zero>0)?(?P<width>\d+)?(?P<grouping>[_,])?"
    r"(?:\.(?P<precision>\d+))?(?P<type>[bcdeEfFgGnosxX%])?"
)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_NUMERIC_TYPES = frozenset("bcdoxXn")
#: Largest width or precision a placeholder may ask for.
MAX_WIDTH = 1000
#: Most subjobs one run may have (a product of --bp values grows fast).
MAX_SUBJOBS = 100_000
#: Types a batch parameter value may have (what a YAML scalar becomes).
_SCALARS = (str, int, float, bool, type(None), datetime.date)


def parse_batch_parameters(
    items: Sequence[str] | Mapping[str, Any] | None, cwd: str | os.PathLike[str] | None = None
) -> dict[str, list[Any]]:
    """``["subj=a,b", "day=1,2"]`` -> ``{"subj": ["a", "b"], "day": ["1", "2"]}``.

    Values given as text are split at commas; ``\\,`` is a comma inside a
    value and ``\\\\`` a backslash (:mod:`reproman.textlist`). A list of
    values (a mapping from the API or a job spec) is taken as it is.

    A value containing glob characters is replaced by the sorted matches
    relative to ``cwd``; a glob matching nothing is an error, because a
    silently empty batch hides a typo. ``START..END`` (whole numbers, END
    included, optionally ``START..END..STEP``) is the range of numbers, kept
    as text with START's zero padding (``001..120`` gives ``001``...``120``).
    A key given twice adds values.
    """
    if not items:
        return {}
    base = os.fspath(cwd) if cwd is not None else os.getcwd()
    pairs: Iterable[tuple[str, Any]]
    if isinstance(items, Mapping):
        for key in items:
            if not isinstance(key, str) or not key:
                raise UsageError(f"batch parameter names must be text, got {key!r}"[:200])
        pairs = items.items()
    else:
        parsed: list[tuple[str, Any]] = []
        for item in [items] if isinstance(items, str) else items:
            if not isinstance(item, str):
                raise UsageError(f"batch parameter {item!r} is not a KEY=VALUE1,VALUE2 string"[:200])
            key, sep, values = item.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"batch parameter {item!r} is not of the form KEY=VALUE1,VALUE2")
            parsed.append((key.strip(), values))
        pairs = parsed
    result: dict[str, list[Any]] = {}
    for key, values in pairs:
        if isinstance(values, str):
            raw: list[Any] = split_escaped(values)
        elif isinstance(values, (list, tuple)):
            raw = list(values)
        else:
            raw = [values]
        if not raw:
            raise UsageError(f"batch parameter {key}: no values", hint="Give at least one value, or leave the key out.")
        for value in raw:
            check_value(value, f"batch parameter {key}")
        expanded: list[Any] = []
        for value in raw:
            numbers = _RANGE.fullmatch(value) if isinstance(value, str) else None
            if numbers:
                expanded.extend(_number_range(key, *numbers.groups()))
            elif isinstance(value, str) and _GLOB_CHARS.search(value):
                # glob(root_dir=) needs Python 3.10; join and strip for 3.9.
                if os.path.isabs(value):
                    matches = sorted(glob.glob(value))
                else:
                    matches = sorted(os.path.relpath(m, base) for m in glob.glob(os.path.join(base, value)))
                if not matches:
                    raise UsageError(
                        f"batch parameter {key}: pattern {value!r} matches nothing in {base}",
                        hint="Check the pattern, or run from the directory it is relative to.",
                    )
                expanded.extend(matches)
            else:
                expanded.append(value)
        result.setdefault(key, []).extend(expanded)
    for name, given in result.items():
        _refuse_repeated(name, given)
    return result


#: Said when a batch would hold two subjobs with the same parameters.
_REPEATED_HINT = ("Two subjobs with the same parameters would share their name and their outputs; "
                  "to run a command several times, add a parameter that counts them, e.g. --bp run=1..3.")


def _refuse_repeated(key: str, values: Sequence[Any]) -> None:
    """A value given twice (``i=1,1,2``, a glob that matches a value also given literally) is refused."""
    seen: set[str] = set()
    for value in values:
        text = str(value)
        if text in seen:
            raise UsageError(f"batch parameter {key}: value {text!r} is given more than once", hint=_REPEATED_HINT)
        seen.add(text)


_RANGE = re.compile(r"\s*(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?\s*")


def _number_range(key: str, start: str, end: str, step: str | None) -> list[str]:
    """``1..10`` -> ``["1", ..., "10"]``; bounded like any batch, so a typo cannot ask for a billion subjobs."""
    first, last, by = int(start), int(end), int(step) if step else 1
    if by <= 0:
        raise UsageError(f"batch parameter {key}: the step of {start}..{end}..{step} must be positive")
    count = abs(last - first) // by + 1
    if count > MAX_SUBJOBS:
        raise UsageError(f"batch parameter {key}: {start}..{end} has {count:,} values, more than the "
                         f"{MAX_SUBJOBS:,} subjobs one run can have")
    width = len(start.lstrip("-")) if start.lstrip("-").startswith("0") and len(start.lstrip("-")) > 1 else 0
    sign = 1 if last >= first else -1
    return [str(n).zfill(width) if n >= 0 else "-" + str(-n).zfill(width)
            for n in range(first, last + sign, sign * by)]


def check_value(value: Any, what: str) -> None:
    """A batch value must be a scalar: it is pasted into commands and paths as text."""
    if not isinstance(value, _SCALARS):
        kind = "a mapping" if isinstance(value, Mapping) else "a list" if isinstance(value, (list, tuple, set)) \
            else type(value).__name__
        raise UsageError(f"{what}: values must be text or numbers, got {kind}")


def product(parameters: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values, keys in the order given."""
    if not parameters:
        return []
    keys = list(parameters)
    count = math.prod(len(parameters[k]) for k in keys)
    if count > MAX_SUBJOBS:
        raise UsageError(
            f"the batch parameters make {count:,} subjobs, more than the {MAX_SUBJOBS:,} one run can have",
            hint="Split the batch into several runs.",
        )
    return [dict(zip(keys, combo)) for combo in itertools.product(*(parameters[k] for k in keys))]


def load_batch_spec(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``--batch-spec`` file: a YAML list of mappings."""
    from reproman.yamlio import load_file, text_scalars

    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"batch spec must be a file name, got {type(path).__name__}")
    data = load_file(path, what="batch spec", constructor=text_scalars())
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UsageError(f"batch spec {path} must be a YAML list of mappings (one record per subjob)")
    return check_records(data, f"batch spec {path}")


def check_records(data: Sequence[Mapping[Any, Any]], source: str) -> list[dict[str, Any]]:
    """Batch records (a ``--batch-spec`` file's, a job spec's ``batch``) with text names and scalar values.

    One line naming ``source`` for no records, too many, a name that is
    not text, a value that is missing or not a scalar, and two records
    that are the same (they would share their subjob name and outputs).
    """
    if not data:
        raise UsageError(f"{source} has no records")
    if len(data) > MAX_SUBJOBS:
        raise UsageError(f"{source} has {len(data):,} records, more than the {MAX_SUBJOBS:,} one run can have",
                         hint="Split it into several runs.")
    records = []
    for i, record in enumerate(data, 1):
        clean: dict[str, Any] = {}
        for key, value in record.items():
            if not isinstance(key, (str, int, float)) or isinstance(key, bool):
                raise UsageError(f"{source}, record {i}: parameter names must be text, got {key!r}"[:200])
            if value is None:
                raise UsageError(f"{source}, record {i}, {key}: no value (write '' for empty text)")
            check_value(value, f"{source}, record {i}, {key}")
            clean[str(key)] = value
        records.append(clean)
    first: dict[frozenset[tuple[str, str]], int] = {}
    for i, record in enumerate(records, 1):
        same = first.setdefault(frozenset((k, str(v)) for k, v in record.items()), i)
        if same != i:
            named = " ".join(f"{k}={v}" for k, v in record.items())
            raise UsageError(f"{source}: records {same} and {i} are the same ({named})"[:300],
                             hint=_REPEATED_HINT.replace("--bp run=1..3", "run: 1, run: 2 in the records"))
    return records


def batch_records(
    batch_spec: str | os.PathLike[str] | None,
    batch_parameters: Sequence[str] | Mapping[str, Any] | None,
    cwd: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """The parameter records of a run; ``[{}]`` (one subjob, no parameters) without a batch."""
    if batch_spec and batch_parameters:
        raise UsageError("give either --batch-spec or --batch-parameter, not both")
    if batch_spec:
        return load_batch_spec(batch_spec)
    records = product(parse_batch_parameters(batch_parameters, cwd))
    return records or [{}]


def render(
    template: str,
    p: Mapping[str, Any],
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    *,
    allow_lists: bool = True,
    quote_lists: bool = True,
) -> str:
    """Substitute ``{p[KEY]}``, ``{inputs}`` and ``{outputs}``; leave every other brace alone."""

    def substitute(match: re.Match[str]) -> str:
        key, name, spec = match.group("key"), match.group("list"), match.group("spec") or ""
        placeholder = match.group(0)
        if key is not None:
            if key not in p:
                known = ", ".join(p) or "none (no batch parameters given)"
                raise UsageError(f"{placeholder} in {template!r}: no batch parameter {key!r}; known: {known}")
            value = p[key]
            conversion = match.group("conversion")
            if conversion == "q":
                value = shlex.quote(str(value))
            elif conversion is not None:
                raise UsageError(f"{placeholder}: unknown conversion '!{conversion}'",
                                 hint="Use {p[KEY]!q} for the value quoted for the shell.")
            return _format(value, spec, placeholder)
        if not allow_lists:
            raise UsageError(f"{placeholder} can only be used in the command, not in {template!r}")
        values = inputs if name == "inputs" else outputs
        text = " ".join(shlex.quote(v) for v in values) if quote_lists else " ".join(values)
        return _format(text, spec, placeholder)

    return PLACEHOLDER.sub(substitute, template)


def _format(value: Any, spec: str, placeholder: str) -> str:
    """``format(value, spec)`` for a spec of bounded width, or a :class:`UsageError`."""
    if not spec:
        return str(value)
    match = _FORMAT_SPEC.fullmatch(spec)
    if match is None:
        raise UsageError(f"{placeholder}: {spec!r} is not a format specification")
    for part in ("width", "precision"):
        digits = match.group(part)
        if digits is not None and (len(digits) > 6 or int(digits) > MAX_WIDTH):
            raise UsageError(f"{placeholder}: {part} {digits[:10]} is larger than {MAX_WIDTH}")
    try:
        value = _as_number(value, match)
        return format(value, spec)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{placeholder}: cannot format {str(value)[:60]!r} with {spec!r}: {exc}"[:300]) from None


def _as_number(value: Any, spec: re.Match[str]) -> Any:
    """Text that is a number, as that number, when the spec asks for number formatting.

    Values arrive as the text the user wrote (``--bp n=7``, ``n: 007`` in a
    batch spec), and Python pads text on the right: ``format("7", "03")`` is
    ``700``. A spec with a number type (``d``, ``x``, ``f``...), zero padding,
    a sign or grouping formats the number instead (``007``); any other spec,
    and text that is no number, is left as text.
    """
    if not isinstance(value, str):
        return value
    kind = spec.group("type")
    if kind == "s" or not (kind or spec.group("zero") or spec.group("sign") or spec.group("grouping")):
        return value
    text = value.strip()
    if _INTEGER.fullmatch(text) and kind not in ("e", "E", "f", "F", "g", "G", "%"):
        try:
            return int(text)
        except ValueError:  # beyond Python's digit limit for int(): formatted as the text it is
            return value
    number = None
    if kind not in _NUMERIC_TYPES and "_" not in text:  # Python reads 1_000 as a number; a user means text
        try:
            number = float(text)
        except ValueError:
            pass
    if number is not None and math.isfinite(number):
        return number
    if kind in _NUMERIC_TYPES:
        raise ValueError(f"{value[:60]!r} is not a whole number, and {spec.group(0)!r} formats whole numbers")
    # Zero padding, a sign or grouping on text: Python would pad "ab" to "ab0"; say so instead.
    raise ValueError(f"{value[:60]!r} is not a number, and {spec.group(0)!r} formats numbers")


def command_text(command: Sequence[str] | str) -> str:
    """The command as the user gave it, as one line (for records and listings).

    A string, or a list of one word, is shell code; a longer list is argv and
    is quoted word by word, so ``run sh -c 'echo $X'`` runs exactly that.
    """
    if isinstance(command, str):
        return command
    words = [str(w) for w in command]
    return words[0] if len(words) == 1 else shlex.join(words)


def command_words(command: Sequence[str] | str) -> list[str] | None:
    """The words of a command given as argv (the form :func:`render_command` renders word by word), else None."""
    if isinstance(command, str) or len(command) == 1:
        return None
    return [str(w) for w in command]


def render_command(
    command: Sequence[str] | str, p: Mapping[str, Any], inputs: Sequence[str], outputs: Sequence[str]
) -> str:
    """One subjob's shell command.

    For an argv list each word is rendered before quoting, so a value with
    spaces or quotes stays one argument; a word that is exactly ``{inputs}``
    or ``{outputs}`` becomes one argument per path.
    """
    if isinstance(command, str) or len(command) == 1:
        template = command_text(command)
        return _checked_quotes(template, render(template, p, inputs, outputs), p, inputs, outputs)
    words: list[str] = []
    script = _shell_script_index(command)
    for index, word in enumerate(command):
        if word == "{inputs}":
            words.extend(inputs)
        elif word == "{outputs}":
            words.extend(outputs)
        else:
            rendered = render(str(word), p, inputs, outputs, quote_lists=False)
            if index == script:
                _checked_quotes(str(word), rendered, p, inputs, outputs)
            words.append(rendered)
    return shlex.join(words)


#: Shells whose ``-c`` word is a script: placeholders in it are read by that shell.
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"})
#: What ends each quoting context: a value holding one of these inside it ends the quotes early.
_ENDS_QUOTE = {"'": "'", '"': '"$`\\'}


def _shell_script_index(words: Sequence[str]) -> int | None:
    """The index of the script word of ``sh -c SCRIPT ...`` (options such as ``-ec`` included), else None."""
    if not words or os.path.basename(str(words[0])) not in _SHELLS:
        return None
    for index, word in enumerate(words[1:], 1):
        text = str(word)
        if not text.startswith("-") or text == "--":
            return None
        if "c" in text[1:] and not text.startswith("--"):
            return index + 1 if index + 1 < len(words) else None
    return None


def _quote_contexts(script: str) -> dict[int, str]:
    """For each placeholder in shell code, by its offset: the quotes it stands in (``'``, ``"``), if any."""
    contexts: dict[int, str] = {}
    starts = {m.start() for m in PLACEHOLDER.finditer(script)}
    quote = ""
    i = 0
    while i < len(script):
        if i in starts and quote:
            contexts[i] = quote
        char = script[i]
        if quote == "'":
            quote = "" if char == "'" else quote
        elif char == "\\":
            i += 1  # the next character is taken literally (in double quotes too, for the ones that matter)
        elif quote == '"':
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
        i += 1
    return contexts


def _checked_quotes(template: str, rendered: str, p: Mapping[str, Any], inputs: Sequence[str],
                    outputs: Sequence[str]) -> str:
    """``rendered``, unless a value put inside quotes of the shell code would end them.

    Why: in ``sh -c 'echo {p[v]}'`` (shell code) a value holding ``'`` closes
    the quotes, and the shell runs the rest of the value as code; ``!q``
    cannot help there (its own quotes end them too). Values that cannot end
    the quotes, the usual numbers and names, render as before.
    """
    contexts = _quote_contexts(template)
    if not contexts:
        return rendered
    for match in PLACEHOLDER.finditer(template):
        quote = contexts.get(match.start())
        if not quote:
            continue
        value = render(match.group(0), p, inputs, outputs)
        if any(c in value for c in _ENDS_QUOTE[quote]):
            kind = "single" if quote == "'" else "double"
            raise UsageError(
                f"{match.group(0)} stands inside {kind} quotes of shell code, and the shell would read its value "
                f"{value[:60]!r} as code there, not as text",
                hint="Put the placeholder outside the quotes with !q (sh -c 'echo '{p[v]!q}), or give the command "
                     "as separate words, each value one argument (sh -c 'echo \"$1\"' _ '{p[v]}').")
    return rendered


def expand(
    command: Sequence[str] | str,
    records: Sequence[Mapping[str, Any]],
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
) -> list[Subjob]:
    """One :class:`Subjob` per record, with command, inputs and outputs rendered."""
    subjobs: list[Subjob] = []
    for number, record in enumerate(records, 1):
        p = dict(record)
        try:
            sub_inputs = _unique(render(i, p, allow_lists=False) for i in inputs)
            sub_outputs = _unique(render(o, p, allow_lists=False) for o in outputs)
            rendered = render_command(command, p, sub_inputs, sub_outputs)
        except UsageError as exc:
            if len(records) < 2:
                raise
            # Records of a batch spec may differ: say which one lacks what.
            raise UsageError(f"batch record {number} of {len(records)}: {exc.args[0] if exc.args else exc}",
                             hint=exc.hint) from None
        subjobs.append(Subjob(command=rendered, inputs=sub_inputs, outputs=sub_outputs, p=p))
    return subjobs


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
