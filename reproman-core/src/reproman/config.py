"""Configuration: ReproMan's INI files, overridden by ``REPROMAN_<SECTION>_<KEY>``.

Files are read in the old ReproMan's order (system, user, current directory,
then ``--config``). An environment variable ``REPROMAN_SECTION_KEY`` sets
``key`` in ``[section]``: the section is the first word after ``REPROMAN_``
and everything after the next underscore is the key, so keys that contain
underscores (``REPROMAN_GENERAL_INVENTORY_FILE`` -> ``[general]
inventory_file``) work. Section names therefore may not contain underscores;
use dashes. ``REPROMAN_SUBMITTER_NAME_KEY`` is read as ``[submitter-name] key``
(as is ``REPROMAN_SUBMITTER-NAME_KEY``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from reproman.errors import ConfigError
from reproman.paths import config_files

ENV_PREFIX = "REPROMAN_"
#: Config files are a few lines; a megabyte is not one.
CONFIG_LIMIT = 1024 * 1024
#: Variables that configure the tool itself rather than a config key.
_NOT_CONFIG = {"REPROMAN_PLUGINS_STRICT", "REPROMAN_PLUGINS_DISABLE", "REPROMAN_CONFIG"}
#: Secret resource parameters (see ``ResourceType.secret_variable``): never configuration, never kept here.
SECRET_PREFIX = "REPROMAN_SECRET_"


class Config:
    """Read-only view of the merged configuration.

    Values live in a plain mapping; :mod:`configparser` is imported only to
    read a file that exists, so the usual start-up (no config file) does
    not pay for it.
    """

    def __init__(self, extra_files: Iterable[str | os.PathLike[str]] = (), environ: Mapping[str, str] | None = None):
        self._values: dict[str, dict[str, str]] = {}
        environ = os.environ if environ is None else environ
        extra = list(extra_files)
        if environ.get("REPROMAN_CONFIG"):
            extra.insert(0, environ["REPROMAN_CONFIG"])
        for path in config_files():
            if path.is_file():
                self._read(path)
        for name in extra:
            path = Path(name)
            if not path.exists():
                raise ConfigError(f"config file {path} does not exist")
            self._read(path)
        for name, value in environ.items():
            if not name.startswith(ENV_PREFIX) or name in _NOT_CONFIG or name.startswith(SECRET_PREFIX):
                continue
            section, sep, key = name[len(ENV_PREFIX):].partition("_")
            if not sep or not key:
                continue
            if section.lower() == "submitter" and "_" in key:
                # REPROMAN_SUBMITTER_LOCAL_NUM_PROCESSES: [submitter-local] num_processes
                # (submitter names never hold underscores).
                submitter, _, key = key.partition("_")
                section = f"submitter-{submitter}"
            self._values.setdefault(section.lower(), {})[key.lower()] = value

    def _read(self, path: Path) -> None:
        import configparser

        from reproman.localfiles import read_text

        text = read_text(path, what="config file", limit=CONFIG_LIMIT, error=ConfigError)
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text, source=str(path))
        except configparser.Error as exc:
            line = getattr(exc, "lineno", None)
            where = f"{path}:{line}" if line else str(path)
            reason = str(exc.message if hasattr(exc, "message") else exc).splitlines()[0].strip()
            raise ConfigError(f"cannot parse config file {where}: {reason}") from exc
        for section in parser.sections():
            # Later files win key by key, as configparser's own read() of several files does.
            self._values.setdefault(section, {}).update(parser.items(section))

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        return self._values.get(section, {}).get(key.lower(), default)

    def getbool(self, section: str, key: str, default: bool = False) -> bool:
        value = self.get(section, key)
        if value is None:
            return default
        return value.strip().lower() in {"1", "yes", "true", "on"}

    def section(self, section: str) -> dict[str, str]:
        return dict(self._values.get(section, {}))

    def sections(self) -> list[str]:
        return list(self._values)


#: The longest duration a setting takes, in seconds (a year): a longer one is a typo, and one of
#: about 300 years makes ``time.sleep`` fail with an OverflowError.
MAX_SECONDS = 365 * 24 * 3600


def config_number(
    raw: object,
    source: str,
    *,
    default: float | None = None,
    minimum: float = 0.0,
    above: bool = False,
    maximum: float | None = None,
    whole: bool = False,
    seconds: bool = False,
    hint: str | None = None,
) -> float:
    """A number a user configured (a config key, ``REPROMAN_*`` variable or job parameter), checked once.

    ``None`` or a blank value is ``default`` (an error when there is none).
    Anything else must be a finite number (``whole``: an integer) of at
    least ``minimum`` (``above``: more than it) and at most ``maximum``, or
    this raises one :class:`ConfigError` line naming ``source``, what it
    must be and what it got: ``float()`` takes ``nan`` and ``inf``, which
    would make a wait sleep NaN or retry forever, and ``time.sleep`` fails
    on a number of seconds past what the platform's clock can count.
    """
    if default is not None and (raw is None or not str(raw).strip()):
        return default
    kind = "a whole number" if whole else "a finite number" + (" of seconds" if seconds else "")
    bound = f"{_plain(minimum)} or more" if not above else f"more than {_plain(minimum)}"
    if minimum == 1 and not above:
        bound = "at least 1"
    shown = repr(raw) if len(str(raw)) <= 40 else f"{str(raw)[:20]!r}... ({len(str(raw))} characters)"
    wrong = ConfigError(f"{source} must be {kind}, {bound}; got {shown}", hint=hint)
    try:
        value = float(int(str(raw).strip())) if whole else float(str(raw).strip())
    except (TypeError, ValueError, OverflowError):  # OverflowError: a whole number of hundreds of digits
        raise wrong from None
    if not math.isfinite(value) or value < minimum or (above and value == minimum):
        raise wrong
    if maximum is None and seconds:
        maximum = MAX_SECONDS
    if maximum is not None and value > maximum:
        unit = " seconds (a year)" if maximum == MAX_SECONDS else ""
        raise ConfigError(f"{source} must be at most {_plain(maximum)}{unit}; got {shown}", hint=hint)
    return value


def _plain(number: float) -> str:
    return "zero" if number == 0 else (f"{int(number):,}" if float(number).is_integer() else str(number))


_config: Config | None = None
_extra: list[str] = []


def set_config_files(paths: Iterable[str]) -> None:
    """Add ``--config`` files (the CLI calls this before any command runs)."""
    global _config
    _extra[:] = list(paths)
    _config = None


def get_config() -> Config:
    """The merged configuration of this process (files, then ``REPROMAN_<SECTION>_<KEY>`` variables).

    Read once and kept; a plugin reads its own section, e.g.
    ``get_config().get("submitter-slurm", "queue")`` or
    ``get_config().getbool("ssh", "persistent", True)``.
    """
    global _config
    if _config is None:
        _config = Config(_extra)
    return _config


def reset_config() -> None:
    """Forget the merged configuration and any ``--config`` files (tests, embedding apps)."""
    global _config
    _config = None
    _extra.clear()
