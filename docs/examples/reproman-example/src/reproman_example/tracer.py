"""The ``usrlocal`` tracer: files installed by hand under ``/usr/local``, pinned by their SHA-256.

No package manager knows such files, so ``retrace`` would list them as
loose files; this tracer claims them and records what each one is, so
``diff`` can say which changed. The prefixes come from the configuration
(``[usrlocal] prefixes``, comma-separated; ``REPROMAN_USRLOCAL_PREFIXES``),
default ``/usr/local``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from reproman.plugins import (
    Comparison,
    PackageDifference,
    Session,
    Tracer,
    TraceResult,
    TracingError,
    get_config,
)


def prefixes() -> list[str]:
    text = get_config().get("usrlocal", "prefixes") or "/usr/local"
    return [p.strip().rstrip("/") + "/" for p in text.split(",") if p.strip()]


class UsrLocalTracer(Tracer):
    spec_name: ClassVar[str] = "usrlocal"
    handles_dirs: ClassVar[bool] = False
    collection: ClassVar[str] = "files"
    package_key: ClassVar[tuple[str, ...]] = ("path",)

    def identify(self, paths: Sequence[str]) -> TraceResult:
        mine = [p for p in paths if p.startswith(tuple(prefixes()))]
        if not mine:
            return TraceResult()
        # ONE command for all files: the names travel NUL-separated on standard input.
        result = self.session.execute_command(
            "xargs -0 sha256sum --", stdin=b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in mine)
        )
        files = []
        for line in result.stdout.splitlines():
            digest, _, path = line.partition("  ")
            if path in mine:
                files.append({"path": path, "sha256": digest})
        if not files:
            return TraceResult()
        return TraceResult(distributions=[{"name": self.spec_name, "files": sorted(files, key=lambda f: f["path"])}],
                           claimed=frozenset(f["path"] for f in files))

    @classmethod
    def compare(cls, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
        a, b = _by_path(left), _by_path(right)
        return Comparison(name=cls.spec_name, differences=[
            PackageDifference(key=path, left=a.get(path), right=b.get(path))
            for path in sorted(a.keys() | b.keys()) if a.get(path) != b.get(path)
        ])

    @classmethod
    def satisfies(cls, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
        """Every required file, with the same content; extra files in the candidate do no harm."""
        need, have = _by_path(requirement), _by_path(candidate)
        return Comparison(name=cls.spec_name, differences=[
            PackageDifference(key=path, left=digest, right=have.get(path),
                              detail="missing" if path not in have else "different content")
            for path, digest in sorted(need.items()) if have.get(path) != digest
        ])

    @classmethod
    def install(cls, session: Session, entry: Mapping[str, Any]) -> None:
        raise TracingError("files under /usr/local cannot be installed from a spec (it records their "
                           "checksums, not their content)", hint="Copy them onto the resource yourself.")


def _by_path(entry: Mapping[str, Any]) -> dict[str, str]:
    return {str(f["path"]): str(f.get("sha256")) for f in entry.get("files") or []}
