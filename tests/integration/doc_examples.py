"""Find the examples in the project's Markdown and check them against the real code.

Every fenced block must say what it holds (```sh, ```console, ```python,
```ini, ```toml, ```text...). Shell blocks are run, in order, by bash in a
throwaway sandbox (its own HOME and XDG directories, a work directory with
the repository's folders linked in), one sandbox per document, so an
example may use what an earlier one made. In that script ``reproman`` is a
function calling :func:`shim_reproman` (``python doc_examples.py reproman
ARGS``), which sees exactly the words bash would hand the real command and

* **runs the real CLI** when everything the command touches exists here:
  the built-in ``local`` resource (or one of a type that needs no remote
  host), the ``local`` submitter and the ``plain`` orchestrator;
* otherwise **validates** it the way the real command would before it
  reaches a remote host: the real argument parser, the resource type and
  its backend parameters (names, types, required ones), the resource named
  (created earlier in the document, or assumed by it), the submitter and
  orchestrator, the job parameters the submitter accepts and their types,
  the batch parameters and every ``{p[KEY]}`` placeholder.

``JOB``, ``JOB1`` and ``JOB2`` stand for job IDs: the newest job of the
sandbox, and the second newest and newest for a pair. ``pip``, ``apt-get``,
``nox``, ``python`` (bare) and ``./tools/test-all.sh`` are checked, not
run: the paths, extras, package names, sessions and scripts they name must
exist. A line's exit status must be 0 unless its comment says ``exits N``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = {"sh", "console"}
KNOWN_LANGS = SHELL_LANGS | {"python", "ini", "toml", "text", "yaml", "json"}
#: Top-level entries of the repository that examples may name (linked into the sandbox).
LINKED = ("reproman-core", "reproman-backend-ssh", "reproman-backend-docker", "reproman-backend-aws",
          "reproman-submitters", "reproman-orchestrators-datalad", "tools", "benchmarks", "docs", "tests",
          "noxfile.py", ".ci")
#: Commands a shell example may start; everything else would run who knows what.
ALLOWED_COMMANDS = {
    "reproman", "pip", "apt-get", "nox", "python", "./tools/test-all.sh",
    "python3", "cd", "mkdir", "cat", "echo", "printf", "export", "ls", "wc", "head", "sort", "git",
    "~/reproman/bin/pip", "~/reproman/bin/reproman", "test", "[",
}
JOB_PLACEHOLDERS = {"JOB", "JOB1", "JOB2"}
#: Resource types whose resources live on this machine: their examples run for real.
LOCAL_TYPES = {"shell"}


@dataclass
class Block:
    path: Path
    lang: str
    line: int  # 1-based line of the first content line
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass
class Line:
    """One logical shell command line of a block (continuations joined)."""

    where: str
    text: str
    allowed_rc: set[int] = field(default_factory=lambda: {0})


FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file; a block without a language is an error."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, info = match.groups()
        lang = info.strip().split()[0] if info.strip() else ""
        start = i + 1
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        if lang.startswith("{"):  # a MyST directive (```{toctree}), not an example
            continue
        found.append(Block(path=path, lang=lang, line=start + 1, text="\n".join(body) + "\n"))
    return found


def split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)`` of one shell line: ``#`` starts a comment at a word start, outside quotes."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"':
                continue
            continue
        if char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


_EXITS = re.compile(r"\bexits (\d+)\b")


def shell_lines(block: Block) -> list[Line]:
    """The logical command lines of a shell block (``$ `` lines of a console block)."""
    raw = block.text.splitlines()
    result: list[Line] = []
    i = 0
    while i < len(raw):
        line = raw[i]
        number = block.line + i
        i += 1
        if block.lang == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\") and i < len(raw):
            line = line[:-1] + raw[i]  # as the shell joins them: the backslash-newline goes
            i += 1
        code, comment = split_comment(line)
        if "<<" in code:
            raise AssertionError(f"{block.path.name}:{number}: here-documents are not supported in examples")
        allowed = {0} | {int(n) for n in _EXITS.findall(comment)}
        result.append(Line(where=f"{block.path.relative_to(ROOT)}:{number}", text=code, allowed_rc=allowed))
    return result


def command_words(code: str) -> list[str]:
    """The words in command position of a shell line (after ``;``, ``&&``, ``||``, ``|``)."""
    lexer = shlex.shlex(code, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    words: list[str] = []
    expect = True
    for token in lexer:
        if token in {";", "&&", "||", "|", "&", "(", ")", ";;"}:
            expect = True
            continue
        if expect:
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
                continue
            words.append(token)
            expect = False
    return words


# -- the bash script ---------------------------------------------------------

PRELUDE = r"""
set +e
__at() { export DOCEX_WHERE="$1"; }
__rc() { printf '%s\t%s\n' "$2" "$1" >> "$DOCEX_DIR/lines.tsv"; }
reproman() { "$DOCEX_PYTHON" "$DOCEX_SHIM" reproman "$@"; }
pip() { "$DOCEX_PYTHON" "$DOCEX_SHIM" pip "$@"; }
apt-get() { "$DOCEX_PYTHON" "$DOCEX_SHIM" apt-get "$@"; }
nox() { "$DOCEX_PYTHON" "$DOCEX_SHIM" nox "$@"; }
python() { "$DOCEX_PYTHON" "$DOCEX_SHIM" python "$@"; }
function ./tools/test-all.sh { "$DOCEX_PYTHON" "$DOCEX_SHIM" test-all "$@"; }
"""


def script(lines_by_block: Sequence[list[Line]]) -> str:
    """The bash script running a document's shell examples, each block from the work directory."""
    parts = [PRELUDE]
    for lines in lines_by_block:
        parts.append('cd "$DOCEX_WORK"')
        for line in lines:
            parts.append(f"__at {shlex.quote(line.where)}")
            parts.append(line.text)
            parts.append(f"__rc $? {shlex.quote(line.where)}")
    return "\n".join(parts) + "\n"


@dataclass
class Sandbox:
    """A throwaway user and work directory for one document's examples."""

    root: Path
    files: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, str] = field(default_factory=dict)
    extra_path: Sequence[Path] = ()
    #: DOCEX_LOCAL_TYPES, _SUBMITTERS, _ORCHESTRATORS: a document's own plugin components that run here.
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def prepare(self) -> None:
        (self.home / ".config").mkdir(parents=True)
        (self.home / ".local" / "share").mkdir(parents=True)
        self.work.mkdir()
        for name in LINKED:
            (self.work / name).symlink_to(ROOT / name)
        for rel, content in self.files.items():
            target = self.work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.write_text(content)
            if content.startswith("#!"):
                target.chmod(0o755)
        (self.root / "state.json").write_text(json.dumps({"virtual": dict(self.resources), "last_run": None}))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REPROMAN_", "XDG_"))}
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            REPROMAN_PLUGINS_STRICT="1",
            DOCEX_DIR=str(self.root),
            DOCEX_WORK=str(self.work),
            DOCEX_PYTHON=sys.executable,
            DOCEX_SHIM=str(Path(__file__).resolve()),
            PYTHONPATH=os.pathsep.join([*map(str, self.extra_path), env.get("PYTHONPATH", "")]).strip(os.pathsep),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        env.update(self.extra_env)
        return env

    def run(self, text: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        path = self.root / "examples.sh"
        path.write_text(text)
        return subprocess.run(["bash", str(path)], cwd=self.work, env=self.env(), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def log(self) -> list[dict[str, Any]]:
        path = self.root / "log.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def exit_codes(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        path = self.root / "lines.tsv"
        for row in path.read_text().splitlines() if path.exists() else []:
            where, rc = row.rsplit("\t", 1)
            found.setdefault(where, []).append(int(rc))
        return found


# -- the shim: what `reproman`, `pip`... do inside the script ----------------------


class Invalid(Exception):
    """An example that the real command would refuse."""


def _state_path() -> Path:
    return Path(os.environ["DOCEX_DIR"]) / "state.json"


def _load_state() -> dict[str, Any]:
    return json.loads(_state_path().read_text())  # type: ignore[no-any-return]


def _save_state(state: Mapping[str, Any]) -> None:
    _state_path().write_text(json.dumps(state))


def _log(**entry: Any) -> None:
    with open(Path(os.environ["DOCEX_DIR"]) / "log.jsonl", "a") as log:
        log.write(json.dumps({"where": os.environ.get("DOCEX_WHERE", "?"), **entry}) + "\n")


def _job_ids() -> list[str]:
    """Job IDs of the sandbox, oldest first (as ``reproman jobs --json`` lists them)."""
    result = subprocess.run([sys.executable, "-m", "reproman", "jobs", "--json"], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise Invalid(f"reproman jobs --json failed: {result.stderr.strip()}")
    return [row["jobid"] for row in json.loads(result.stdout)]


def _observe_jobs(state: dict[str, Any]) -> None:
    """Note the jobs a command just made, in the order commands made them.

    Job IDs start with the second they were made in, then a random part:
    two jobs of one second would sort at random, and ``JOB`` must be the
    newest for certain.
    """
    order: list[str] = state.setdefault("jobs", [])
    order += sorted(set(_job_ids()) - set(order))


def _substitute_jobs(argv: list[str], state: dict[str, Any]) -> list[str] | None:
    """``argv`` with JOB placeholders replaced by real IDs; None when there is no real job to name."""
    if not JOB_PLACEHOLDERS & set(argv):
        return argv
    _observe_jobs(state)
    known = set(_job_ids())
    ids = [j for j in state["jobs"] if j in known]
    needed = 2 if "JOB1" in argv else 1
    if len(ids) < needed:
        return None
    names = {"JOB": ids[-1], "JOB2": ids[-1], "JOB1": ids[-2] if len(ids) > 1 else ids[-1]}
    return [names.get(word, word) for word in argv]


def _parse(argv: Sequence[str]) -> Any:
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    from reproman.cli.main import parse_args

    err = StringIO()
    try:
        with redirect_stderr(err), redirect_stdout(StringIO()):
            return parse_args(list(argv))
    except SystemExit as exc:
        if exc.code:
            raise Invalid(err.getvalue().strip() or f"argument parsing exited {exc.code}") from None
        return None  # --help, --version


def _manager() -> Any:
    from reproman.plugins.manager import get_plugin_manager

    return get_plugin_manager()


def _real_resources() -> dict[str, str]:
    from reproman.resources.inventory import Inventory

    return {name: str(rec.get("type")) for name, rec in Inventory().load().items()}


def _resource_type(name: str | None, virtual: Mapping[str, str]) -> tuple[str, bool]:
    """``(type, real)`` of a resource named in an example; Invalid when nobody made it."""
    if name in (None, "local"):
        return "shell", True
    assert name is not None
    real = _real_resources()
    if name in real:
        return real[name], True
    if name in virtual:
        return virtual[name], False
    raise Invalid(f"resource {name!r} is neither created earlier in this document nor assumed by it")


def _local(kind: str, builtin: set[str]) -> set[str]:
    """Components of ``kind`` that run on this machine: core's, and those a document's own plugin adds."""
    return builtin | {t for t in os.environ.get(f"DOCEX_LOCAL_{kind}", "").split(",") if t}


def _runnable_type(type_name: str) -> bool:
    return type_name in _local("TYPES", LOCAL_TYPES)


def _validate_create(args: Any) -> None:
    from reproman.resources.manage import check_resource_name, parse_key_values, validate_parameters

    check_resource_name(args.name)
    rtype = _manager().resource_type(args.resource_type)
    validate_parameters(rtype, parse_key_values(args.backend_parameters))


def _validate_run(args: Any, cwd: str) -> None:
    from reproman.errors import UsageError
    from reproman.jobs.batch import batch_records, expand
    from reproman.jobs.options import load_request, resolve_job_parameters

    manager = _manager()
    submitter = manager.submitter(args.submitter or "local")
    manager.orchestrator(args.orchestrator or "plain")
    request = load_request(args.job_specs or [])
    resolve_job_parameters(request, args.job_parameters, submitter)
    try:
        records = batch_records(args.batch_spec, args.batch_parameters, cwd)
    except UsageError as exc:
        if "matches nothing" not in str(exc):
            raise
        # The user's files (sub-*) are not in the sandbox: take the pattern itself as the value.
        records = batch_records(None, [re.sub(r"[*?\[\]]", "x", bp) for bp in args.batch_parameters], cwd)
    command = args.command or request.command
    if not command:
        raise Invalid("no command given")
    expand(command, records, args.inputs or [], args.outputs or [])


def _validate(args: Any, virtual: Mapping[str, str], cwd: str) -> None:
    cmd = args.cmd
    if cmd == "create":
        _validate_create(args)
    elif cmd == "run":
        if args.list_ is None:
            _validate_run(args, cwd)
    elif cmd == "execute" and args.internal:
        ops = {"mkdir", "isdir", "put", "get", "chown", "chmod"}
        if args.command not in ops:
            raise Invalid(f"execute --internal takes one of {', '.join(sorted(ops))}, not {args.command!r}")
    elif cmd == "install":
        from reproman.tracing.spec import load_spec

        for spec in args.spec:
            load_spec(spec)


def _referenced(args: Any) -> list[str | None]:
    if args.cmd in ("execute", "run", "rerun", "retrace"):
        return [args.resref]
    if args.cmd in ("delete", "start", "stop", "login", "install"):
        return [args.resref]
    if args.cmd == "ls":
        return list(args.resrefs)
    return []


def _check_trailing_options(args: Any) -> None:
    """``run ... sh -c CODE --output X`` hands ``--output X`` to ``sh``: in an example that is a mistake."""
    import argparse

    from reproman.cli.parser import build_parser

    if args.cmd not in ("run", "execute"):
        return
    words = list(args.command or []) if args.cmd == "run" else [args.command or "", *args.args]
    parser = build_parser(only=args.cmd)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.cmd]
    own = {s for s in sub._option_string_actions if s.startswith("--") and s != "--help"}
    misplaced = [w.split("=", 1)[0] for w in words[1:] if w.split("=", 1)[0] in own]
    if misplaced:
        raise Invalid(f"{misplaced[0]} comes after the command, so it goes to the command, not to reproman; "
                      "put reproman's options before the command")


def shim_reproman(argv: list[str]) -> int:
    from reproman.errors import ReproManError

    state = _load_state()
    virtual: dict[str, str] = state["virtual"]
    resolved = _substitute_jobs(argv, state)
    try:
        args = _parse(resolved if resolved is not None else argv)
        if args is None:
            return _run_real(argv)
        if resolved is None:
            if state.get("last_run") != "validated":
                raise Invalid("JOB names a job, but no job ran earlier in this document")
            _log(argv=argv, action="parsed")  # the job it names only ran on paper
            return 0
        argv = resolved
        _check_trailing_options(args)
        real = True
        if args.cmd == "create":
            if args.name in virtual or args.name in _real_resources():
                raise Invalid(f"resource {args.name!r} was already created in this document")
            real = _runnable_type(_manager().resource_type(args.resource_type).name)
        for name in _referenced(args):
            type_name, exists = _resource_type(name, virtual)
            real = real and exists and _runnable_type(type_name)
        if args.cmd == "login":
            real = False  # interactive
        if args.cmd == "run" and args.list_ is None:
            real = (real and (args.submitter or "local") in _local("SUBMITTERS", {"local"})
                    and (args.orchestrator or "plain") in _local("ORCHESTRATORS", {"plain"}))
        if args.cmd == "rerun" and args.job is not None:
            real = real and state.get("last_run") == "ran"
        if real:
            rc = _run_real(argv)
            if args.cmd in ("run", "rerun"):
                _observe_jobs(state)
            if args.cmd == "run" and args.list_ is None:
                state["last_run"] = "ran"
            if args.cmd in ("delete",) and rc == 0:
                virtual.pop(args.resref, None)
            _save_state(state)
            return rc
        _validate(args, virtual, os.getcwd())
        if args.cmd == "create":
            virtual[args.name] = _manager().resource_type(args.resource_type).name
        if args.cmd == "delete":
            virtual.pop(args.resref, None)
        if args.cmd == "run" and args.list_ is None:
            state["last_run"] = "validated"
        _save_state(state)
        _log(argv=argv, action="validated")
        return 0
    except (Invalid, ReproManError) as exc:
        _log(argv=argv, action="invalid", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return 99


def _run_real(argv: Sequence[str]) -> int:
    result = subprocess.run([sys.executable, "-m", "reproman", *argv], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, errors="replace")
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    problem = None
    if "Traceback (most recent call last)" in result.stderr:
        problem = "traceback"
    elif result.returncode == 2:
        problem = "usage error"
    _log(argv=list(argv), action="ran", rc=result.returncode, problem=problem,
         stderr=result.stderr[-2000:] if problem or result.returncode else "")
    return result.returncode


def _pyproject(package: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads((package / "pyproject.toml").read_text())  # type: ignore[no-any-return]


def shim_pip(argv: list[str]) -> int:
    """``pip install X...``: local paths (with extras) and package names must exist here."""
    problems: list[str] = []
    if not argv or argv[0] != "install":
        problems.append(f"only 'pip install' is used in examples, not {argv[:1]}")
    packages = {p.name for p in ROOT.glob("reproman-*") if (p / "pyproject.toml").exists()}
    for word in argv[1:]:
        if word.startswith("-"):
            continue
        name, _, extras = word.partition("[")
        extras = extras.rstrip("]")
        if name.startswith((".", "/", "~")):
            path = Path(os.path.expanduser(name))
            if not path.is_absolute():
                path = Path(os.getcwd()) / path
            if not (path / "pyproject.toml").exists():
                problems.append(f"{name} is not a package folder here")
                continue
            declared = _pyproject(path)["project"].get("optional-dependencies", {})
            problems += [f"{name} has no extra {e!r}" for e in extras.split(",") if e and e not in declared]
        elif name.startswith("reproman") and name not in packages:
            problems.append(f"{name} is not a distribution of this repository")
    return _report(argv, "pip", problems)


def shim_apt_get(argv: list[str]) -> int:
    """``apt-get install -y PKG...``: every package must be known to apt (when apt is here)."""
    problems: list[str] = []
    if argv[:1] == ["install"] and shutil.which("apt-cache"):
        for name in (w for w in argv[1:] if not w.startswith("-")):
            if subprocess.run(["apt-cache", "show", name], capture_output=True).returncode != 0:
                problems.append(f"apt knows no package {name!r}")
    elif argv[:1] not in (["update"], ["install"]):
        problems.append(f"unexpected apt-get command {argv[:1]}")
    return _report(argv, "apt-get", problems)


def nox_sessions() -> set[str]:
    """Session names the noxfile defines, parametrised ones as ``name(id)``."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    plugins: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PLUGINS" for t in node.targets):
            plugins = list(ast.literal_eval(node.value))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
            "session" in ast.unparse(d) for d in node.decorator_list
        ):
            names.add(node.name)
            if any("parametrize" in ast.unparse(d) for d in node.decorator_list):
                names |= {f"{node.name}({p})" for p in plugins}
    return names


def shim_nox(argv: list[str]) -> int:
    sessions = nox_sessions()
    problems: list[str] = []
    words = iter(argv)
    for word in words:
        if word in ("-s", "--session", "--sessions"):
            for name in words:
                if name.startswith("-"):
                    break
                if name not in sessions:
                    problems.append(f"noxfile.py has no session {name!r}")
    return _report(argv, "nox", problems)


def shim_python(argv: list[str]) -> int:
    """``python -m pytest PATH`` and ``python SCRIPT``: the paths must exist in the repository."""
    problems: list[str] = []
    if argv[:2] == ["-m", "pytest"]:
        paths = [w for w in argv[2:] if not w.startswith("-")]
    elif argv and not argv[0].startswith("-"):
        paths = argv[:1]
    else:
        paths = []
        problems.append(f"unexpected python command {argv}")
    problems += [f"{p} does not exist" for p in paths if not (ROOT / p.split("::")[0]).exists()]
    return _report(argv, "python", problems)


def shim_test_all(argv: list[str]) -> int:
    problems: list[str] = []
    script_path = ROOT / "tools" / "test-all.sh"
    if not os.access(script_path, os.X_OK):
        problems.append("tools/test-all.sh is not executable")
    if "./tools/test-all.sh" not in (ROOT / ".ci" / "run").read_text():
        problems.append(".ci/run does not call ./tools/test-all.sh")
    if argv and argv[0] in ("-s", "--sessions"):
        return shim_nox(argv) or _report(argv, "test-all", problems)
    return _report(argv, "test-all", problems)


def _report(argv: list[str], name: str, problems: list[str]) -> int:
    if problems:
        _log(argv=[name, *argv], action="invalid", error="; ".join(problems))
        return 99
    _log(argv=[name, *argv], action="validated")
    return 0


SHIMS = {"reproman": shim_reproman, "pip": shim_pip, "apt-get": shim_apt_get, "nox": shim_nox,
         "python": shim_python, "test-all": shim_test_all}


# -- checks of non-shell blocks --------------------------------------------------


def ini_problems(block: Block) -> list[str]:
    """An ini block must parse, and each key must be read somewhere in the packages' code."""
    import configparser

    parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    try:
        parser.read_string(block.text)
    except configparser.Error as exc:
        return [f"{block.where}: not valid ini: {exc}"]
    problems = []
    for section in parser.sections():
        for key in parser[section]:
            if not key_is_read(section, key):
                problems.append(f"{block.where}: [{section}] {key} is not a setting the code reads")
    return problems


def _sources() -> str:
    files = [*ROOT.glob("reproman-*/src/**/*.py"), *ROOT.glob("docs/examples/*/src/**/*.py")]
    return "\n".join(p.read_text() for p in files)


_SOURCE_CACHE: list[str] = []


def source_text() -> str:
    if not _SOURCE_CACHE:
        _SOURCE_CACHE.append(_sources())
    return _SOURCE_CACHE[0]


def key_is_read(section: str, key: str) -> bool:
    """Whether ``[section] key`` is a setting: a job parameter for submitter sections, else named in code."""
    if section.startswith("submitter-"):
        from reproman.jobs.parameters import JOB_PARAMETERS

        if key in {p.name for p in JOB_PARAMETERS}:
            return True
    return f'"{key}"' in source_text() or f"'{key}'" in source_text()


def python_problems(block: Block, extra_path: Sequence[Path] = ()) -> list[str]:
    """A python block must compile; its imports must resolve and calls of imported functions must bind."""
    import importlib
    import inspect

    try:
        tree = ast.parse(block.text)
    except SyntaxError as exc:
        return [f"{block.where}: does not compile: {exc}"]
    problems: list[str] = []
    names: dict[str, Any] = {}
    sys.path[:0] = [str(p) for p in extra_path]
    try:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    try:
                        module = importlib.import_module(alias.name)
                    except ImportError as exc:
                        problems.append(f"{block.where}: import {alias.name}: {exc}")
                        continue
                    names[alias.asname or alias.name.split(".")[0]] = (
                        module if alias.asname else importlib.import_module(alias.name.split(".")[0]))
            elif isinstance(node, ast.ImportFrom) and node.module:
                try:
                    module = importlib.import_module(node.module)
                except ImportError as exc:
                    problems.append(f"{block.where}: from {node.module}: {exc}")
                    continue
                for alias in node.names:
                    if not hasattr(module, alias.name):
                        try:
                            names[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
                        except ImportError:
                            problems.append(f"{block.where}: {node.module} has no {alias.name!r}")
                        continue
                    names[alias.asname or alias.name] = getattr(module, alias.name)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            target = _resolve(node.func, names)
            if target is _MISSING:
                problems.append(f"{block.where}: {ast.unparse(node.func)} does not exist")
                continue
            if target is None or not callable(target):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                continue
            try:
                signature = inspect.signature(target)
            except (TypeError, ValueError):
                continue
            try:
                signature.bind(*node.args, **{k.arg: k.value for k in node.keywords if k.arg})
            except TypeError as exc:
                problems.append(f"{block.where}: {ast.unparse(node)[:80]}: {exc}")
    finally:
        del sys.path[:len(extra_path)]
    return problems


_MISSING = object()


def _resolve(node: ast.expr, names: Mapping[str, Any]) -> Any:
    """The object a dotted name built on an imported name refers to; None when it is not one."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, names)
        if base is None or base is _MISSING:
            return base
        if isinstance(base, type) or inspect_module(base):
            return getattr(base, node.attr, _MISSING)
        return None
    return None


def inspect_module(obj: Any) -> bool:
    import types

    return isinstance(obj, types.ModuleType)


def toml_problems(block: Block) -> list[str]:
    import tomllib

    try:
        tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as exc:
        return [f"{block.where}: not valid TOML: {exc}"]
    return []


_INLINE_SETTING = re.compile(r"`\[([a-z][a-z0-9:-]*)\] ([a-z_]+)(?: = [^`]*)?`")
_ENV_VAR = re.compile(r"\bREPROMAN_[A-Z_]+\b")


def prose_problems(path: Path) -> list[str]:
    """Settings written as `[section] key` and REPROMAN_* variables in the text must exist in the code."""
    text = path.read_text()
    problems = []
    for section, key in set(_INLINE_SETTING.findall(text)):
        if not key_is_read(section, key):
            problems.append(f"{path.relative_to(ROOT)}: `[{section}] {key}` is not a setting the code reads")
    for name in set(_ENV_VAR.findall(text)):
        if name in ("REPROMAN_", "REPROMAN_SECTION_KEY") or name.endswith("_"):
            continue
        if name not in source_text() and not _config_variable(name):
            problems.append(f"{path.relative_to(ROOT)}: {name} is not read by the code")
    return problems


def _config_variable(name: str) -> bool:
    """``REPROMAN_<SECTION>_<KEY>`` for a setting the code reads."""
    parts = name[len("REPROMAN_"):].lower().split("_")
    return any(key_is_read(("_".join(parts[:i])), "_".join(parts[i:])) for i in range(1, len(parts)))


# -- excerpts of the example plugin ------------------------------------------------------

EXAMPLE = ROOT / "docs" / "examples" / "reproman-example"
_ELISION = "# ..."


def excerpt_source(block: Block) -> Path | None:
    """The example file a block quotes (its first line names it), or None."""
    first = block.text.split("\n", 1)[0].strip()
    if not first.startswith("# ") or " " in first[2:]:
        return None
    path = EXAMPLE / first[2:]
    return path if path.is_file() else None


def excerpt_problems(block: Block) -> list[str]:
    """A quoting block must be a faithful excerpt: each run of lines between ``# ...`` appears in order."""
    path = excerpt_source(block)
    if path is None:
        return []
    source = path.read_text().splitlines()
    chunks: list[list[str]] = [[]]
    for line in block.text.splitlines()[1:]:
        if line.strip() == _ELISION:
            chunks.append([])
        else:
            chunks[-1].append(line)
    at = 0
    for chunk in (c for c in chunks if c):
        found = next((i for i in range(at, len(source) - len(chunk) + 1) if source[i:i + len(chunk)] == chunk), None)
        if found is None:
            return [f"{block.where}: not an excerpt of {path.relative_to(ROOT)} from: {chunk[0].strip()!r}"]
        at = found + len(chunk)
    return []


def example_dist_info(directory: Path) -> Path:
    """A ``.dist-info`` for the example plugin, so entry points find it without installing it."""
    import tomllib

    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    info = directory / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    points = meta["entry-points"]["reproman"]
    (info / "entry_points.txt").write_text("[reproman]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    return directory


def main(argv: list[str]) -> int:
    name, *rest = argv
    return SHIMS[name](rest)


def iter_docs() -> Iterator[Path]:
    yield ROOT / "README.md"
    yield from sorted(ROOT.glob("reproman-*/README.md"))
    yield from sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "index.md")  # index: a toctree


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main(sys.argv[1:]))
