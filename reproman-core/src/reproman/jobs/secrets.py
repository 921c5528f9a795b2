"""Environment variables whose values ReproMan never writes down.

A job record travels: it is kept in the registry, copied next to the
results, committed by the DataLad orchestrators and exported as an RO-Crate
that may be published. A variable named like a credential (``API_TOKEN``,
``AWS_SECRET_ACCESS_KEY``, ``DB_PASSWORD``, ``SSH_KEY``) therefore never has
its value stored in any of them: the record keeps the name (so a rerun can
say what it needs) and the value reaches the job through a file on the
resource that is readable by the user alone and removed when the job is
fetched.

The test is deliberately broad (any name containing one of the words, in
any case): storing ``MONKEY_COUNT`` as a name only is a small price for never
publishing a key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Words that make a variable name look like it holds a credential.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
#: What a record shows instead of a secret value.
REDACTED = "<not stored: looks like a secret>"
#: What ``reproman jobs --show`` prints for every ``env`` value unless ``--show-env`` is given.
HIDDEN = "<hidden; 'reproman jobs --show --show-env' prints it>"


def is_secret(name: str) -> bool:
    """Whether a variable called ``name`` may hold a credential."""
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def split_env(env: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``(kept, secret)``: the variables a record may store and the ones it may not."""
    kept: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in env.items():
        (secret if is_secret(str(name)) else kept)[str(name)] = "" if value is None else str(value)
    return kept, secret


def redact(env: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``env`` with every secret-looking value replaced by :data:`REDACTED`."""
    return {k: (REDACTED if is_secret(str(k)) else v) for k, v in env.items()}


def secret_names(names: Iterable[str]) -> list[str]:
    return [n for n in names if is_secret(n)]
