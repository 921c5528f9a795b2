"""The runscript's environment capture: shell code that records, on the node, where a subjob ran.

Written into the runscript by :func:`blocks` and read back at fetch time by
:mod:`reproman.jobs.environment`. Files:

``<job dir>/started.INDEX`` (read back as ``s.INDEX``; older jobs wrote ``env/s.INDEX``, still read)
    every subjob, shell builtins only (no process is started; the file the
    subjob's start is marked with anyway, so no file of its own): host name,
    the scheduler's job/task/node IDs, the executable as the command's shell
    resolves it, and the context its environment depends on (executable
    name, PATH, LD_LIBRARY_PATH, loaded Lmod/Environment Modules, the
    virtualenv and conda prefix);
``env/n.KEY.lock``, ``env/n.KEY.facts``, ``n.KEY.spec.json``, ``n.KEY.log``
    once per node and context (KEY = host, executable, context length): the
    first subjob there to create the lock (an ``O_EXCL`` create through
    the shell's noclobber, so concurrent subjobs never both win) records the
    node's facts (``/etc/os-release``, ``uname``, CPU model and count,
    memory; one ``uname`` process) and the package spec of the executable.
    It does this after its command has ended and before writing its final
    status, so fetching never sees half a record. Not alongside the command:
    the tracer's interpreter (tens of MB when the cache is cold) would count
    against the subjob's memory limit on top of the command's own, and a
    scheduler enforcing it (Slurm's OverMemoryKill, SGE's h_vmem) would
    kill the user's work for ReproMan's bookkeeping;
``env/trace.INDEX.json`` (``run --trace``)
    the strace-based trace of that subjob.

The package spec needs the node's python3 and the node tool (see
:mod:`reproman.jobs.nodetool`); without them the facts say why there is no
spec. It is cached across jobs under ``<root_directory>/.reproman/envcache/
HOST/...``: the runscript reuses a cached spec when its context matches and
no path in its ``watch`` list (package databases, environment directories,
the executable) is newer than the spec, tested with ``[ -nt ]``. A warm
node therefore pays one ``uname`` and one ``ln`` per job, and every other
subjob nothing but a few builtins.
"""

from __future__ import annotations

import collections
import posixpath
import re
import shlex
from collections.abc import Sequence

import attrs

ENV_SUBDIR = "env"
CACHE_SUBDIR = ".reproman/envcache"
SECRETS_FILE = "secrets.env"
MODES = ("environment", "trace", "off")
#: Scheduler variables recorded per subjob (values are IDs, never secrets).
SCHEDULER_VARIABLES = (
    "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST", "SLURMD_NODENAME",
    "SLURM_CLUSTER_NAME", "SLURM_JOB_PARTITION",
    "PBS_JOBID", "PBS_ARRAY_INDEX", "PBS_ARRAYID", "PBS_NODEFILE",
    "LSB_JOBID", "LSB_JOBINDEX", "LSB_HOSTS",
    "JOB_ID", "SGE_TASK_ID", "QUEUE",
    "_CONDOR_JOB_AD", "CONDOR_ID",
)
#: Words that may come before the real program in a command.
_PREFIX_WORDS = {"exec", "env", "command", "nohup", "time", "nice", "builtin"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


@attrs.frozen(kw_only=True)
class Blocks:
    """Shell code the runscript carries for provenance (all empty when capture is off)."""

    #: Function definitions, parsed once per runscript (a local worker runs many subjobs with them).
    functions: str = ""
    #: After the job's variables are exported, before the subjob's command.
    before: str = ""
    #: ``before`` writes the subjob's record into ``started.INDEX`` (``$reproman_started`` in the
    #: runscript), which then needs no empty write of its own: one file per subjob fewer to
    #: create, which is most of what a trivial subjob costs beyond its command.
    writes_started: bool = False
    #: Put in front of each subjob's command (``run --trace``: the strace wrapper).
    runner: str = ""
    #: After the command, with its exit status in ``$rc``, before the final status is written.
    after: str = ""
    #: Shell condition, true when ``after`` has work for this subjob. When it is false, a
    #: local worker may let the subjob's shell become the command (``exec``) and write the
    #: final status itself. Empty with a non-empty ``after``: always has work (no ``exec``).
    after_needed: str = ""


def executable_name(command: str) -> str:
    """The program a subjob's shell command starts, as written (``python``, ``./run.sh``)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    for word in words:
        if _ASSIGNMENT.match(word) or word in _PREFIX_WORDS:
            continue
        return word.rstrip(";&|")
    return ""


def _tag(name: str) -> str:
    return _TAG_UNSAFE.sub("_", posixpath.basename(name.rstrip("/"))) or "none"


def _exe_cases(commands: Sequence[str]) -> str:
    """``case`` code setting ``rm_exe``/``rm_tag`` per subjob; the commonest program is the default arm."""
    names = [executable_name(c) for c in commands]
    by_name: dict[str, list[int]] = collections.defaultdict(list)
    for index, name in enumerate(names):
        by_name[name].append(index)
    common = max(by_name, key=lambda n: len(by_name[n])) if by_name else ""

    def assign(name: str) -> str:
        return f"rm_exe={shlex.quote(name)}; rm_tag={shlex.quote(_tag(name))}"

    if len(by_name) <= 1:
        return assign(common) + "\n"
    arms = "".join(f"  {'|'.join(map(str, idx))}) {assign(name)} ;;\n"
                   for name, idx in by_name.items() if name != common)
    return f'case "$i" in\n{arms}  *) {assign(common)} ;;\nesac\n'


def secrets_block() -> str:
    """Load the job's secret-looking variables from the file only the user can read."""
    return f'[ -r "$jobdir/{SECRETS_FILE}" ] && . "$jobdir/{SECRETS_FILE}"\n'


#: One printf for every scheduler variable: no loop, no eval (empty values are dropped when read).
_SCHED = ("printf '" + "".join(f"sched.{v}=%s\\n" for v in SCHEDULER_VARIABLES) + "' "
          + " ".join(f'"${{{v}-}}"' for v in SCHEDULER_VARIABLES))

_BEFORE = r"""# -- provenance: environment capture (reproman.jobs.capture) ------------------
rm_env="$jobdir/@ENV@"; rm_tool=@TOOL@; rm_cache=@CACHE@; rm_mine=
@EXE@rm_ctx="exe=$rm_exe;path=$PATH;ld=${LD_LIBRARY_PATH-};modules=${LOADEDMODULES-};modulefiles=${_LMFILES_-};venv=${VIRTUAL_ENV-};conda=${CONDA_PREFIX-}"
rm_key="$rm_host.$rm_tag.${#rm_ctx}"
{
  printf 'host=%s\nkey=%s\nctx=%s\nresolved=' "$rm_host" "$rm_key" "$rm_ctx"
  command -v "$rm_exe" 2>/dev/null || echo
  @SCHED@
} > "$reproman_started" 2>/dev/null
# Every subjob but the first on a node finds the lock taken: one stat, no failing create.
if [ ! -e "$rm_env/n.$rm_key.lock" ] && { set -C; printf '%s\n' "$i" > "$rm_env/n.$rm_key.lock"; } 2>/dev/null; then
  set +C; rm_mine=y
else
  set +C
fi
"""

_FUNCTIONS = r"""# The node's name, once per shell that sources the runscript (a local worker: once for all its subjobs).
rm_host=; { IFS= read -r rm_host < /proc/sys/kernel/hostname; } 2>/dev/null
[ -n "$rm_host" ] || rm_host=${HOSTNAME:-$(uname -n 2>/dev/null)}
rm_cached() {
  [ -r "$1/spec.json" ] && [ -r "$1/watch" ] && [ -r "$1/ctx" ] || return 1
  IFS= read -r rm_l < "$1/ctx" || return 1
  [ "$rm_l" = "$rm_full" ] || return 1
  while IFS= read -r rm_l; do
    [ -z "$rm_l" ] && continue
    [ -e "$rm_l" ] || return 1
    [ "$rm_l" -nt "$1/spec.json" ] && return 1
  done < "$1/watch"
  return 0
}
rm_node() {
  rm_d="$rm_env/n.$rm_key"; rm_path=$(command -v "$rm_exe" 2>/dev/null)
  rm_full="$rm_ctx;resolved=$rm_path"
  {
    printf 'ctx=%s\nhost=%s\nexe=%s\nexe_path=%s\n' "$rm_ctx" "$rm_host" "$rm_exe" "$rm_path"
    printf 'uname=%s\n' "$(uname -srvm 2>/dev/null)"
    if [ -r /etc/os-release ]; then
      while IFS= read -r rm_l; do
        case $rm_l in ID=*|VERSION_ID=*|PRETTY_NAME=*|VERSION_CODENAME=*) printf 'os.%s\n' "$rm_l" ;; esac
      done < /etc/os-release
    fi
    rm_n=0; rm_m=
    if [ -r /proc/cpuinfo ]; then
      while IFS= read -r rm_l; do
        case $rm_l in processor*) rm_n=$((rm_n + 1)) ;; "model name"*) [ -n "$rm_m" ] || rm_m=${rm_l#*: } ;; esac
      done < /proc/cpuinfo
    fi
    printf 'cpu=%s\ncpus=%s\n' "$rm_m" "$rm_n"
    { IFS= read -r rm_l < /proc/meminfo && printf 'memory=%s\n' "$rm_l"; } 2>/dev/null
    [ -e /.dockerenv ] && printf 'container.runtime=docker\n'
    [ -n "${SINGULARITY_CONTAINER-}${APPTAINER_CONTAINER-}" ] &&
      printf 'container.image=%s\n' "${APPTAINER_CONTAINER:-$SINGULARITY_CONTAINER}"
  } > "$rm_d.facts"
  @SPEC@
}
"""

_SPEC = r"""if [ -n "@NOSPEC@" ]; then printf 'spec=none: %s\n' "@NOSPEC@" >> "$rm_d.facts"; return; fi
  if [ -x /usr/bin/python3 ]; then rm_py=/usr/bin/python3; else rm_py=$(command -v python3 2>/dev/null); fi
  if [ -z "$rm_py" ]; then printf 'spec=none: no python3 on this node\n' >> "$rm_d.facts"; return; fi
  if [ ! -r "$rm_tool" ]; then printf 'spec=none: the node tool %s is missing\n' "$rm_tool" >> "$rm_d.facts"; return; fi
  rm_c="$rm_cache/$rm_host/$rm_tag.${#rm_full}"
  if rm_cached "$rm_c" && { ln -f "$rm_c/spec.json" "$rm_d.spec.json" 2>/dev/null ||
                            cp "$rm_c/spec.json" "$rm_d.spec.json"; }; then
    printf 'spec=cached\n' >> "$rm_d.facts"; return
  fi
  rm_t=; command -v timeout >/dev/null 2>&1 && rm_t="timeout 900"
  $rm_t "$rm_py" -E -s -S "$rm_tool" node --facts "$rm_d.facts" --out "$rm_d.spec.json" \
    --exe "$rm_path" --cache "$rm_c" --ctx "$rm_full" &&
    printf 'spec=traced\n' >> "$rm_d.facts"
"""

_TRACE_BEFORE = r"""rm_strace=; command -v strace >/dev/null 2>&1 && rm_strace=y
[ -n "$rm_strace" ] || printf 'strace=none: strace is not installed on this node\n' >> "$reproman_started"
"""

_TRACE_FUNCTIONS = r"""rm_run() {
  if [ -n "$rm_strace" ]; then
    strace -f -qq -o "$rm_env/strace.$i" -e trace=open,openat,execve -- "$@"
  else
    "$@"
  fi
}
"""

_AFTER = r"""# -- provenance: the node's record, once the command no longer needs its memory --
[ -z "$rm_mine" ] || rm_node </dev/null >"$rm_env/n.$rm_key.log" 2>&1
"""

_TRACE_AFTER = r"""if [ -s "$rm_env/strace.$i" ]; then
  if [ -x /usr/bin/python3 ]; then rm_py=/usr/bin/python3; else rm_py=$(command -v python3 2>/dev/null); fi
  if [ -n "$rm_py" ] && [ -r "$rm_tool" ]; then
    "$rm_py" -E -s -S "$rm_tool" strace --log "$rm_env/strace.$i" --out "$rm_env/trace.$i.json" \
      >>"$rm_env/trace.$i.log" 2>&1 || printf 'strace=failed: see trace.%s.log\n' "$i" >> "$reproman_started"
  else
    printf 'strace=untraced: no python3 or node tool on this node\n' >> "$reproman_started"
  fi
fi
"""


def blocks(
    mode: str,
    commands: Sequence[str],
    *,
    tool: str,
    cache: str,
    secrets: bool = False,
    container: str | None = None,
) -> Blocks:
    """The runscript's provenance code for capture ``mode`` (see :data:`MODES`).

    ``tool`` and ``cache`` are paths on the resource; ``secrets`` loads the
    job's secret-looking variables from their private file; ``container``
    (the ``container`` job parameter) means the command runs in an image
    the node facts cannot see into, and the record says so instead of
    tracing the host's packages.
    """
    before = secrets_block() if secrets else ""
    if mode == "off":
        return Blocks(before=before)
    nospec = f"the command ran in container {container}, which the node tool does not trace" if container else ""
    spec = _SPEC.replace("@NOSPEC@", nospec.replace('"', "'").replace("$", "").replace("`", "'"))
    functions = _FUNCTIONS.replace("@SPEC@", spec.rstrip("\n"))
    before += (
        _BEFORE.replace("@ENV@", ENV_SUBDIR)
        .replace("@TOOL@", shlex.quote(tool))
        .replace("@CACHE@", shlex.quote(cache))
        .replace("@SCHED@", _SCHED)
        .replace("@EXE@", _exe_cases(commands))
    )
    after = _AFTER
    # Only the subjob that took the node's lock records the node (one per node and job).
    after_needed = '[ -n "$rm_mine" ]'
    runner = ""
    if mode == "trace":
        functions += _TRACE_FUNCTIONS
        before += _TRACE_BEFORE
        after += _TRACE_AFTER
        runner = "rm_run"
    return Blocks(
        functions=functions,
        before=before,
        writes_started=True,
        runner=runner,
        after=after,
        after_needed=after_needed,
    )
