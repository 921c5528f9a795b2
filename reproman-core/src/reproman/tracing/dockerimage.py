"""The docker tracer: arguments that name Docker images rather than files.

``reproman retrace busybox:latest sha256:4a3...`` records each image by ID,
digests and tags (the old ReproMan's ``docker`` entry with its ``images``
fields). All references go to one ``docker image inspect`` through the
session, so the docker CLI on the resource answers; the Docker SDK is never
imported.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from reproman.tracing.tracer import Comparison, PackageDifference, Tracer, TraceResult

lgr = logging.getLogger(__name__)


def _normal_tag(ref: str) -> set[str]:
    """Spellings Docker treats as the same tag (``busybox`` = ``busybox:latest`` = ``docker.io/library/...``)."""
    names = {ref}
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        name, tag = ref, "latest"
        names.add(f"{name}:{tag}")
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if name.startswith(prefix):
            names.add(f"{name[len(prefix):]}:{tag}")
    return names


def matches(ref: str, image: Mapping[str, Any]) -> bool:
    """Whether ``ref`` (ID, ID prefix, tag or digest) names ``image``."""
    image_id = str(image.get("Id") or "")
    bare_id = image_id.split(":", 1)[-1]
    if ref in (image_id, bare_id) or (len(ref) >= 4 and (bare_id.startswith(ref) or image_id.startswith(ref))):
        return True
    if ref in (image.get("RepoDigests") or []):
        return True
    tags = set(image.get("RepoTags") or [])
    return bool(tags & _normal_tag(ref))


class DockerTracer(Tracer):
    """Image references to Docker images (ID, digests, tags)."""

    spec_name: ClassVar[str] = "docker"
    accepts_references: ClassVar[bool] = True
    collection: ClassVar[str] = "images"
    package_key: ClassVar[tuple[str, ...]] = ("id",)

    def identify(self, paths: Sequence[str]) -> TraceResult:
        refs = [p for p in paths if not p.startswith("/")]
        if not refs:
            return TraceResult()
        words = " ".join(shlex.quote(r) for r in refs)
        result = self.session.execute_command(
            f"command -v docker >/dev/null 2>&1 || exit 127; docker image inspect -- {words}"
        )
        if result.returncode == 127 or "Cannot connect to the Docker daemon" in result.stderr:
            lgr.debug("no usable docker on the resource: %s", result.stderr.strip())
            return TraceResult()
        try:
            found = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            lgr.debug("unexpected docker image inspect output: %r", result.stdout[:200])
            return TraceResult()
        images: list[dict[str, Any]] = []
        claimed: set[str] = set()
        for image in found:
            owners = [r for r in refs if matches(r, image)]
            if not owners:
                continue
            claimed.update(owners)
            if not image.get("RepoDigests"):
                lgr.warning("Docker image %s has no repository digest: it cannot be pulled elsewhere", owners[0])
            record = {
                "id": image.get("Id"),
                "architecture": image.get("Architecture"),
                "operating_system": image.get("Os"),
                "docker_version": image.get("DockerVersion") or None,
                "repo_digests": image.get("RepoDigests") or None,
                "repo_tags": image.get("RepoTags") or None,
                "created": image.get("Created"),
            }
            if all(i["id"] != record["id"] for i in images):
                images.append({k: v for k, v in record.items() if v is not None})
        if not images:
            return TraceResult()
        return TraceResult(distributions=[{"name": self.spec_name, "images": images}], claimed=frozenset(claimed))

    @classmethod
    def compare(cls, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
        """Images by their first tag (else ID); a tag now pointing at another ID differs."""
        li, ri = _index(left), _index(right)
        return Comparison(name=cls.spec_name, differences=[
            PackageDifference(key=k, left=_id(li.get(k)), right=_id(ri.get(k)))
            for k in sorted(set(li) | set(ri)) if _id(li.get(k)) != _id(ri.get(k))
        ])

    @classmethod
    def satisfies(cls, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
        """Each required image present with the same ID (or one of its digests)."""
        have = candidate.get("images") or []
        ids = {i.get("id") for i in have}
        digests = {d for i in have for d in i.get("repo_digests") or []}
        missing = [
            PackageDifference(key=key, left=_id(img), right=None, detail="image missing")
            for key, img in sorted(_index(requirement).items())
            if img.get("id") not in ids and not (set(img.get("repo_digests") or []) & digests)
        ]
        return Comparison(name=cls.spec_name, differences=missing)


def _index(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str((i.get("repo_tags") or [i.get("id")])[0]): i for i in entry.get("images") or []}


def _id(image: Mapping[str, Any] | None) -> str | None:
    return None if image is None else str(image.get("id"))
