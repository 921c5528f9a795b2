"""What each orchestrator needs on the resource, checked before anything is staged.

One remote command prints the version of every tool an orchestrator needs
(or nothing for a tool that is missing); :func:`check` turns a missing or
too old tool into one error that names all of them and the orchestrator
that works on such a resource. Without it, a container without git fails
half-way through staging with ``/bin/sh: 4: git: not found``.

The minimum versions are what DataLad 0.13, the oldest DataLad these
orchestrators drive on a resource, itself requires of git and git-annex.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs

from reproman.plugins import OrchestratorError

_LINE = "TOOL "


@attrs.frozen(kw_only=True)
class Tool:
    """A program needed on the resource and how to ask its version."""

    name: str
    #: Shell code printing the version (anything ending in it); run only when ``command`` exists.
    probe: str
    #: The executable whose presence is checked first (``command -v``).
    command: str
    minimum: tuple[int, ...] = ()

    @property
    def minimum_text(self) -> str:
        return ".".join(str(p) for p in self.minimum)


GIT = Tool(name="git", command="git", probe="git --version", minimum=(2, 19, 1))
GIT_ANNEX = Tool(name="git-annex", command="git-annex", probe="git annex version --raw", minimum=(8, 20200309))
DATALAD = Tool(name="DataLad", command="datalad", probe="datalad --version", minimum=(0, 13))
FIND = Tool(name="find", command="find", probe="echo present")
TAR = Tool(name="tar", command="tar", probe="echo present")

#: What the orchestrators that run DataLad on the resource need there.
DATALAD_TOOLS = (GIT, GIT_ANNEX, DATALAD)
#: What ``datalad-local-run`` needs there (``sh`` is a given): ``find -newer`` lists results, tar moves files.
PLAIN_TOOLS = (FIND, TAR)


def probe_script(tools: Sequence[Tool]) -> str:
    """Shell code printing ``TOOL <name> <version output>`` for each tool (empty when missing)."""
    lines = []
    for tool in tools:
        lines.append(
            f"if command -v {tool.command} >/dev/null 2>&1; then "
            f"v=$({tool.probe} 2>/dev/null | head -n 1); else v=; fi; "
            f"printf '{_LINE}%s %s\\n' {tool.command} \"$v\""
        )
    return "\n".join(lines) + "\n"


def parse(output: str) -> dict[str, str]:
    """``command -> version text`` from :func:`probe_script` output (``""`` when missing)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith(_LINE):
            command, _, version = line[len(_LINE):].partition(" ")
            found[command] = version.strip()
    return found


def version_of(text: str) -> tuple[int, ...] | None:
    """The last dotted number in ``text`` (``git version 2.39.5`` -> ``(2, 39, 5)``)."""
    numbers = re.findall(r"\d+(?:\.\d+)*", text)
    if not numbers:
        return None
    return tuple(int(p) for p in numbers[-1].split("."))


def check(tools: Sequence[Tool], found: Mapping[str, str], *, orchestrator: str, resource: str) -> None:
    """Raise one :class:`OrchestratorError` naming every missing or too old tool."""
    missing = [t.name for t in tools if not found.get(t.command)]
    old = []
    for tool in tools:
        text = found.get(tool.command)
        if not text or not tool.minimum:
            continue
        version = version_of(text)
        if version is not None and version < tool.minimum:
            old.append(f"{tool.name} {'.'.join(map(str, version))} (needs {tool.minimum_text} or newer)")
    if not missing and not old:
        return
    problems = []
    if missing:
        problems.append(f"lacks {_and(missing)}")
    if old:
        problems.append(f"has {_and(old)}")
    raise OrchestratorError(
        f"resource {resource} {' and '.join(problems)}, which {orchestrator} needs there",
        hint=_suggestion(tools),
    )


def _suggestion(tools: Sequence[Tool]) -> str:
    if any(t in DATALAD_TOOLS for t in tools):
        return (
            "Install git, git-annex and DataLad there (e.g. 'apt-get install git git-annex' and "
            "'pip install datalad'), or run with '--orchestrator datalad-local-run', which needs only "
            "sh, find and tar on the resource."
        )
    return "Install them there; the 'plain' orchestrator needs only sh and tar, but records nothing in DataLad."


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
