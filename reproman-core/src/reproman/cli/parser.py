"""Argument definitions for every command (argparse only: cheap to import).

Parameter names and defaults follow ``reproman.api``. Commands that end in
a user command (``execute``, ``run``) take everything after their own
options literally; see :func:`split_trailing_command`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings

if TYPE_CHECKING:
    from typing import Any, NoReturn

RESREF_TYPES = ("auto", "name", "id")
FOLLOW_CHOICES = ("stop", "stop-if-success", "delete", "delete-if-success")
LIST_CHOICES = ("submitters", "orchestrators", "parameters")
JOB_ACTIONS = ("auto", "list", "show", "delete", "fetch", "cancel", "report", "log", "follow")

#: Commands whose trailing words are a command to run, and where it goes.
TRAILING_COMMAND = {"execute": ("command", "args"), "run": ("command", None)}


def _resref(p: argparse.ArgumentParser, *, optional: bool) -> None:
    if optional:
        p.add_argument("-r", "--resource", dest="resref", metavar="RESOURCE",
                       help="Name or ID of the resource (default: the local shell). See 'reproman ls'.")
    else:
        p.add_argument("resref", metavar="RESOURCE", help="Name or ID of the resource. See 'reproman ls'.")
    p.add_argument("--resref-type", choices=RESREF_TYPES, default="auto",
                   help="Interpret the reference as a name or an ID (default: auto).")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="Print machine-readable JSON on stdout.")


def _columns() -> int:
    """The terminal's width as argparse wants it, without the ``shutil`` import argparse would do.

    argparse builds a formatter for every ``add_argument`` (to check the
    metavar) and, without a width, imports ``shutil`` for it: 2 ms, 10% of
    ``reproman ls``.
    """
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
        except (OSError, ValueError, AttributeError):
            columns = 80
    return columns - 2


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, width if width is not None else _columns())


class _RawFormatter(argparse.RawDescriptionHelpFormatter, _Formatter):
    pass


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        from reproman.errors import one_line

        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


#: Every command, in the order ``--help`` lists them (a test checks this against :func:`build_parser`).
COMMANDS = ("create", "delete", "start", "stop", "login", "execute", "ls", "backend-parameters", "plugins", "run",
            "rerun", "jobs", "retrace", "diff", "install")


class _Unused:
    """Stands in for the parser of a command that is not being run: its arguments are never needed.

    Building every command's options costs about 20 ms, as much as Python's
    own start-up; a CLI call needs one command's, plus the names and one-line
    help of the others for ``--help``.
    """

    def add_argument(self, *args: object, **kwargs: object) -> None:
        pass


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI (``only=None``), or the top level plus the options of command ``only``."""
    from reproman import __version__

    parser = OneLineParser(
        prog="reproman",
        description="Manage computation environments and run reproducible work on them.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"reproman {__version__}")
    parser.add_argument("-l", "--log-level", default=None,
                        help="Logging level: debug, info, warning (default), error, or a number.")
    parser.add_argument("-c", "--config", action="append", default=[], metavar="FILE",
                        help="Read this config file after the standard ones (repeatable).")
    parser.add_argument("--debug", action="store_true", help="Show tracebacks of handled errors.")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")

    def add(name: str, help: str, epilog: str | None = None) -> Any:
        if only is not None and name != only:
            # Listed in --help, never parsed: argparse would only use it if `name` were the command.
            sub._name_parser_map[name] = _Unused()  # type: ignore[assignment]
            sub._choices_actions.append(sub._ChoicesPseudoAction(name, (), help))
            return _Unused()
        if epilog is None:
            return sub.add_parser(name, help=help, description=help, formatter_class=_Formatter)
        return sub.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=_RawFormatter)

    p = add("create", "Create a computation environment.")
    p.add_argument("name", help="Name of the resource to create.")
    p.add_argument("-t", "--resource-type", required=True, help="Resource type (see 'reproman backend-parameters').")
    p.add_argument("-b", "--backend-parameters", "--backend-parameter", dest="backend_parameters",
                   action="append", default=[], metavar="KEY=VALUE", help="Backend parameter (repeatable).")
    _json(p)

    p = add("delete", "Delete a computation environment.")
    _resref(p, optional=False)
    p.add_argument("-y", "--skip-confirmation", action="store_true", help="Delete without asking.")
    p.add_argument("-f", "--force", action="store_true",
                   help="Delete even if jobs on it were not fetched yet (their results are lost), and remove it "
                        "from the inventory even if the backend cannot be reached.")

    for name, verb in (("start", "Start"), ("stop", "Stop"), ("login", "Log into")):
        p = add(name, f"{verb} a computation environment.")
        _resref(p, optional=False)

    p = add("execute", "Execute a command in a computation environment (exit code passed through).",
            "Standard input is not passed to the command (as with 'ssh -n'): send data as a file\n"
            "('reproman execute --internal put FILE DEST') or run the job with 'reproman run -i FILE'.")
    _resref(p, optional=True)
    p.add_argument("--internal", action="store_true",
                   help="Run a ReproMan session operation: mkdir, isdir, put, get, chown, chmod.")
    p.add_argument("--trace", action="store_true", help="Trace the execution and print a spec of what it used.")
    p.add_argument("command", nargs="?", help="Command to run; everything after it is its arguments.")

    p = add("ls", "List known computation resources.")
    p.add_argument("resrefs", nargs="*", metavar="RESOURCE", help="Restrict to these names or IDs.")
    p.add_argument("--resref-type", choices=RESREF_TYPES, default="auto")
    p.add_argument("-v", "--verbose", action="store_true", help="Show all recorded attributes.")
    p.add_argument("-r", "--refresh", action="store_true", help="Ask each backend for the current status.")
    _json(p)

    p = add("backend-parameters", "Show the parameters of resource types.")
    p.add_argument("backends", nargs="*", metavar="TYPE", help="Restrict to these resource types.")
    _json(p)

    p = add("plugins", "List installed plugin distributions and their components.")
    p.add_argument("--check", action="store_true",
                   help="Import every component and validate its record; report each broken one (exit 1 if any).")
    _json(p)

    # The epilogs live with their commands; import them only for the command being run.
    RUN_EPILOG: str | None = None
    JOBS_EPILOG: str | None = None
    if only in (None, "run"):
        from reproman.cli.commands.run import EPILOG as RUN_EPILOG
    if only in (None, "jobs"):
        from reproman.cli.commands.jobs import EPILOG as JOBS_EPILOG

    p = add("run", "Run a command on a resource, through a submitter and an orchestrator.", RUN_EPILOG)
    _resref(p, optional=True)
    p.add_argument("-m", "--message", help="Message to use when saving the run (commit message).")
    p.add_argument("--list", dest="list_", nargs="?", const="", metavar="WHAT",
                   help="Show submitters, orchestrators or parameters ('' or nothing for all).")
    p.add_argument("--submitter", "--sub", help="Submitter name (default: local).")
    p.add_argument("--orchestrator", "--orc", help="Orchestrator name (default: plain).")
    p.add_argument("--batch-spec", "--bs", help="YAML file with one record of parameters per subjob.")
    p.add_argument("--batch-parameter", "--bp", dest="batch_parameters", action="append", metavar="KEY=V1,V2",
                   help="Batch parameter values (repeatable; the product of keys is taken; globs expand).")
    p.add_argument("--job-spec", "--js", dest="job_specs", action="append", metavar="FILE",
                   help="YAML job spec: job parameters, and optionally the command, inputs, outputs, resource, "
                        "submitter, orchestrator and batch; what 'reproman jobs --show JOB' prints loads too "
                        "(repeatable; later files win; the command line wins over them).")
    p.add_argument("--job-parameter", "--jp", dest="job_parameters", action="append", metavar="KEY=VALUE",
                   help="Job parameter (repeatable; wins over job specs).")
    p.add_argument("-i", "--input", dest="inputs", action="append", metavar="PATH", help="Input path (repeatable).")
    p.add_argument("-o", "--output", dest="outputs", action="append", metavar="PATH", help="Output path (repeatable).")
    p.add_argument("--follow", nargs="?", const=True, default=False, metavar="ACTION",
                   help=f"Wait for the job, fetch it, then optionally {', '.join(FOLLOW_CHOICES)} the resource.")
    p.add_argument("--keep-remote", action="store_true",
                   help="After fetching, keep the job's files on the resource (default: free them).")
    p.add_argument("--trace", action="store_true",
                   help="Also trace every subjob with strace (where the node has it) into an environment spec.")
    _json(p)
    p.add_argument("command", nargs="?", help="Command to run; everything after it is its arguments.")

    p = add("rerun", "Submit a recorded job again: same command, inputs, outputs, batch and parameters.")
    p.add_argument("job", nargs="?", metavar="JOB", help="Full job ID or unique substring (see 'reproman jobs').")
    _resref(p, optional=True)
    p.add_argument("--failed", action="store_true", help="Resubmit only the subjobs that failed, as one batch.")
    p.add_argument("--follow", nargs="?", const=True, default=False, metavar="ACTION",
                   help=f"Wait for the rerun, fetch it, then optionally {', '.join(FOLLOW_CHOICES)} the resource.")
    p.add_argument("--verify", action="store_true",
                   help="Follow the rerun and compare its outputs and environment with the original "
                        "(exit 0 identical outputs, 3 different, 1 nothing to compare).")
    p.add_argument("--trace", action="store_true", help="Trace every subjob with strace, as 'run --trace'.")
    p.add_argument("--keep-remote", action="store_true",
                   help="After fetching, keep the rerun's files on the resource (default: free them).")
    p.add_argument("--job-parameter", "--jp", dest="job_parameters", action="append", metavar="KEY=VALUE",
                   help="Change a job parameter for the rerun (repeatable; env=NAME=VALUE sets that variable and "
                        "keeps the original's others).")
    _json(p)

    p = add("jobs", "View and manage jobs started with 'reproman run'.", JOBS_EPILOG)
    p.add_argument("queries", nargs="*", metavar="JOB",
                   help="Full job ID or unique substring (with --log: JOB then SUBJOB, an index or KEY=VALUE).")
    p.add_argument("--action", choices=JOB_ACTIONS, default="auto",
                   help="auto: fetch named jobs (or, with --all, every job not fetched yet), else list. "
                        "Shortcuts: --list --show --delete --fetch --cancel --report --log --follow.")
    for action in JOB_ACTIONS[1:]:
        if action == "follow":
            p.add_argument("--follow", dest="action", action="store_const", const="follow",
                           help="Wait for JOB (e.g. after Ctrl-C detached 'run --follow'), then fetch it; "
                                "exit codes as 'run --follow'.")
            continue
        if action == "log":
            p.add_argument("--log", dest="action", action="store_const", const="log",
                           help="Print the tail of a subjob's stdout and stderr: --log JOB [SUBJOB], read on "
                                "the resource while it runs, from the fetched copy after.")
            continue
        p.add_argument(f"--{action}", dest="action", action="store_const", const=action,
                       help=argparse.SUPPRESS)
    p.add_argument("-a", "--all", dest="all_", action="store_true", help="Operate on all jobs.")
    p.add_argument("-s", "--status", action="store_true",
                   help="Ask the resources for each subjob's status now (with the scheduler's pending reasons); "
                        "never fetches.")
    p.add_argument("-n", "--lines", type=int, default=20, metavar="N", help="Lines of each stream for --log "
                   "(default: 20).")
    p.add_argument("--overwrite", action="store_true",
                   help="When fetching, replace local outputs even if they changed after the job was submitted "
                   "(never with what a subjob that did not succeed left).")
    p.add_argument("--keep-remote", action="store_true",
                   help="Keep the job's files on the resource after fetching or deleting (default: free them).")
    p.add_argument("--export", nargs=2, metavar=("JOB", "DIR"),
                   help="Write JOB's provenance to DIR as an RO-Crate (Process Run Crate); needs reproman-core[export].")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="With --report: the HTML file to write (default: reproman-report-JOBID.html).")
    p.add_argument("--show-env", action="store_true",
                   help="Print the values of the 'env' job parameter (hidden by default: they may be secrets).")
    _json(p)

    p = add("retrace", "Find the packages that provide files, as an environment spec.")
    p.add_argument("path", nargs="*", help="Paths to trace.")
    p.add_argument("--spec", help="ReproZip config.yml to analyse.")
    p.add_argument("-o", "--output-file",
                   help="Write the spec to this new file instead of stdout (an existing file is never replaced).")
    _resref(p, optional=True)

    p = add("diff", "Compare two environment specs, or two jobs' outputs and environments (exit 0 equal, 3 different, "
                    "1 error or nothing to compare).")
    p.add_argument("prov1", help="First spec file, or a job ID.")
    p.add_argument("prov2", help="Second spec file, or a job ID.")
    p.add_argument("-s", "--satisfies", action="store_true",
                   help="Check that PROV1 satisfies the requirements of PROV2 (report only what it lacks).")
    _json(p)

    p = add("install", "Install the packages of environment specs on a resource.")
    _resref(p, optional=False)
    p.add_argument("spec", nargs="+", help="Spec file(s).")
    return parser


def split_trailing_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split a subcommand's words into (its own options, the user's command).

    The user's command starts at the first word that is neither an option of
    ``parser`` nor an option's value, or right after ``--`` (which is
    dropped). Options that take an optional value (``--follow``, ``--list``)
    consume the next word only when it is one of their documented values, so
    ``run --follow sh -c ...`` runs ``sh``.
    """
    optional_values = {"--follow": set(FOLLOW_CHOICES), "--list": set(LIST_CHOICES) | {""}}
    own: list[str] = []
    i = 0
    words = list(argv)
    while i < len(words):
        word = words[i]
        if word == "--":
            return own, words[i + 1:]
        if not word.startswith("-") or word == "-":
            return own, words[i:]
        own.append(word)
        name = word.split("=", 1)[0]
        action = parser._option_string_actions.get(name)
        if action is None or "=" in word:
            i += 1
            continue
        if action.nargs == "?":
            allowed = optional_values.get(name, set(action.choices or ()))
            if i + 1 < len(words) and words[i + 1] in allowed:
                own.append(words[i + 1])
                i += 2
                continue
            i += 1
            continue
        takes_value = action.nargs is None and action.option_strings and not isinstance(
            action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
                     argparse._CountAction, argparse._HelpAction, argparse._VersionAction)
        )
        if takes_value and i + 1 < len(words):
            own.append(words[i + 1])
            i += 2
        else:
            i += 1
    return own, []
