"""Small Python programs that tracers run *on the resource*, one process for many files.

Why ship scripts instead of calling ``pip show``/``git`` per file: a tracer
must cost a bounded number of remote commands whatever the number of files
(an SSH round trip is ~50 ms; 2,000 files one by one is minutes). Each
script here reads the environment's own metadata (``*.dist-info/RECORD``,
``conda-meta/*.json``, ``.git``) for *all* the paths it is given and prints
one JSON document.

A script is sent as standard input of ``python3 -`` (so nothing is copied to
the resource and no argument-length limit applies). Scripts share helpers
in :mod:`._common`: an entry script imports them between the markers
``# <common>`` and ``# </common>`` so it also runs (and is linted and tested)
in-process; when shipped, that block is replaced by the text of
``_common.py``. Scripts must stay compatible with Python 3.6 and use only
the standard library: the resource's interpreter is not ours.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from reproman.errors import TracingError

if TYPE_CHECKING:
    from reproman.resources.session import Session

lgr = logging.getLogger(__name__)

#: Shell code that finds an interpreter on the resource and runs stdin with it.
#:
#: Any Python 3.6+ will do (the scripts use the standard library only), so the
#: system's ``/usr/bin/python3`` is preferred: a ``python3`` found on PATH may
#: be a pyenv/conda shim that costs 50-100 ms to start. ``-E -S`` ignore
#: ``PYTHON*`` variables and skip ``site`` (and its ``.pth`` processing): the
#: scripts must not pick up the user's environment, and startup time is most
#: of their cost.
PYTHON_LAUNCHER = (
    'if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; '
    'else PY=$(command -v python3 || command -v python) || '
    '{ echo "reproman: no python3 or python on the resource" >&2; exit 127; }; fi; '
    'exec "$PY" -E -S -'
)

_COMMON_BLOCK = re.compile(r"^# <common>\n.*?^# </common>\n", re.S | re.M)


@cache
def script_source(name: str) -> str:
    """The self-contained source of script ``name`` (``_common`` inlined)."""
    package = resources.files(__name__)
    common = (package / "_common.py").read_text()
    text = (package / f"{name}.py").read_text()
    inlined, count = _COMMON_BLOCK.subn(lambda _m: common + "\n", text, count=1)
    if count != 1:
        raise RuntimeError(f"pyscript {name!r} lacks its '# <common>' import block")
    return inlined


def run_script(session: Session, name: str, payload: Any) -> Any:
    """Run script ``name`` on the resource with ``payload``; return its JSON answer.

    Exactly one remote command, whatever the size of ``payload``. The payload
    travels base64-encoded inside the script text, so paths with quotes,
    newlines or non-UTF-8-safe characters arrive unchanged.
    """
    blob = base64.b64encode(json.dumps(payload).encode("utf-8")).decode("ascii")
    source = script_source(name) + f"\n\nmain(_load_payload({blob!r}))\n"
    result = session.execute_command(PYTHON_LAUNCHER, stdin=source.encode("utf-8"))
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TracingError(
            f"tracing helper {name!r} failed on the resource (exit {result.returncode}): {detail}",
            hint="The tracers need python3 (or python) on the resource's PATH.",
        )
    if result.stderr.strip():
        lgr.debug("tracing helper %s said on stderr: %s", name, result.stderr.strip())
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise TracingError(f"tracing helper {name!r} printed something that is not JSON: {exc}") from None
