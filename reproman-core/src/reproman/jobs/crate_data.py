"""The data entities of an exported crate: the user's files, named by their bytes.

A file name on POSIX is bytes, not text, and a job's inputs and outputs may
be named with bytes that are not UTF-8 (Python keeps them as lone
surrogates). The ``rocrate`` library cannot carry such a name: it makes the
``@id`` with ``quote()`` of the text, which refuses surrogates, and writes
the file under ``unquote(@id)``, which would turn the bytes into U+FFFD. So
the crate's ``File`` and ``Dataset`` entities for the user's data are
described here, each ``@id`` the name's bytes percent-encoded as URIs have
them (RFC 3986; for a UTF-8 name it is exactly what ``rocrate`` gives), and
their content is copied here under the original bytes, after the metadata.

JSON holds text only, so where such a name appears as a value (``name``,
a command line), each byte that is not UTF-8 is shown as ``\\xNN``
(:func:`readable`); the ``@id`` is the exact form.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote


def uri(rel: str) -> str:
    """``rel`` (a relative POSIX path) as a URI reference: its bytes percent-encoded, ``/`` kept."""
    return quote(os.fsencode(rel), safe="/")


def readable(text: str) -> str:
    """``text`` as valid Unicode: bytes that are not UTF-8 (kept as surrogates) become ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def make_readable(value: Any) -> Any:
    """``value`` (JSON-like) with every string, keys too, passed through :func:`readable`.

    The values of JSON-LD keywords (``@id``, ``@type``) are kept: an ``@id``
    is already the exact, percent-encoded form. Keys matter as much as
    values: a job record is keyed by output path (its checksums), and a lone
    surrogate anywhere makes a strict JSON parser refuse the whole file.
    """
    if isinstance(value, str):
        return readable(value)
    if isinstance(value, (list, tuple)):
        return [make_readable(v) for v in value]
    if isinstance(value, dict):
        return {readable(str(k)): v if str(k).startswith("@") else make_readable(v) for k, v in value.items()}
    return value


class DataFiles:
    """Adds the user's files and directories to ``crate`` and copies them into the written crate."""

    def __init__(self, crate: Any) -> None:
        self._crate = crate
        self._entities: dict[str, Any] = {}
        self._files: list[tuple[Path, str]] = []
        self._dirs: list[str] = []

    def file(self, source: Path, rel: str, properties: Mapping[str, Any], *, top: bool = True) -> Any:
        """A ``File`` for ``source``, to be held in the crate as ``rel``; ``top`` lists it in the root."""
        ident = uri(rel)
        known = self._entities.get(ident)
        if known is not None:  # an input that is also an output: one entity, the output's facts win
            for key, value in properties.items():
                known[key] = make_readable(value)
            return known
        entity = self._add(ident, {"@type": "File", "name": rel, **properties}, top=top)
        self._files.append((source, rel))
        return entity

    def tree(self, source: Path, rel: str, *, top: bool = True) -> Any:
        """A ``Dataset`` for the directory ``source``, with a ``hasPart`` for each file and directory in it.

        Symbolic links to files are held as the files' content (as ``rocrate``
        does); links to directories and special files are left out, so a
        link cannot make the walk loop or reach outside the tree.
        """
        ident = uri(rel) + "/"
        if ident in self._entities:
            return self._entities[ident]
        dataset = self._add(ident, {"@type": "Dataset", "name": rel}, top=top)
        self._dirs.append(rel)
        with os.scandir(source) as entries:
            children = sorted(entries, key=lambda entry: os.fsencode(entry.name))
        for entry in children:
            child_rel = f"{rel}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                dataset.append_to("hasPart", self.tree(Path(entry.path), child_rel, top=False))
            elif entry.is_file():
                dataset.append_to("hasPart", self.file(Path(entry.path), child_rel, {}, top=False))
        return dataset

    def _add(self, ident: str, properties: dict[str, Any], *, top: bool) -> Any:
        from rocrate.model import ContextEntity

        entity = self._crate.add(ContextEntity(self._crate, ident, properties=make_readable(properties)))
        if top:
            self._crate.root_dataset.append_to("hasPart", entity)
        self._entities[ident] = entity
        return entity

    def copy_into(self, target: Path) -> None:
        """Copy the described files into the written crate at ``target``, under their own bytes."""
        for rel in self._dirs:
            (target / rel).mkdir(parents=True, exist_ok=True)
        for source, rel in self._files:
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, dest)
