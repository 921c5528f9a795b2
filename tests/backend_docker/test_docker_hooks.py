"""Registration and parameter handling: no Docker Engine needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reproman.errors import BackendParameterError
from reproman_backend_docker.resource import normalize_image, parse_key_values, parse_volumes, pull_policy


def test_hooks_module_does_not_import_docker() -> None:
    code = (
        "import sys\n"
        "from reproman_backend_docker import hooks\n"
        "types = hooks.reproman_resource_types() + hooks.reproman_session_types()\n"
        "assert [t.name for t in types] == ['docker-container', 'docker'], types\n"
        "bad = sorted(m for m in sys.modules if m == 'docker' or m.startswith(('docker.', 'requests')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_through_entry_point() -> None:
    from reproman.plugins.manager import get_plugin_manager

    manager = get_plugin_manager()
    rtype = manager.resource_type("docker-container")
    assert rtype.distribution == "reproman-backend-docker"
    assert rtype.factory == "reproman_backend_docker.resource:DockerContainer"
    assert {p.name for p in rtype.parameters} >= {
        "image", "engine_url", "seccomp_unconfined", "volumes", "environment", "working_dir", "user", "pull"
    }
    assert rtype.load().__name__ == "DockerContainer"
    assert manager.session_type("docker").load().__name__ == "DockerSession"


def test_parameters_validate_through_core() -> None:
    from reproman.plugins.manager import get_plugin_manager
    from reproman.resources.manage import validate_parameters

    rtype = get_plugin_manager().resource_type("docker-container")
    values = validate_parameters(rtype, {"seccomp_unconfined": "yes", "volumes": "/a:/b:ro,/c:/d"})
    assert values["seccomp_unconfined"] is True
    assert values["volumes"] == ["/a:/b:ro", "/c:/d"]
    assert values["image"] == "debian:bookworm" and values["pull"] == "missing"
    with pytest.raises(BackendParameterError, match="Did you mean 'image'"):
        validate_parameters(rtype, {"imgae": "x"})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("debian", "debian:latest"),
        ("debian:bookworm", "debian:bookworm"),
        ("localhost:5000/team/img", "localhost:5000/team/img:latest"),
        ("localhost:5000/img:1.0", "localhost:5000/img:1.0"),
        ("img@sha256:" + "a" * 64, "img@sha256:" + "a" * 64),
    ],
)
def test_untagged_image_means_latest(given: str, expected: str) -> None:
    assert normalize_image(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [(True, "missing"), (False, "never"), ("yes", "missing"), ("no", "never"), ("always", "always"), (None, "missing")],
)
def test_pull_policy(given: object, expected: str) -> None:
    assert pull_policy(given) == expected


def test_bad_parameters_are_one_line_errors() -> None:
    for call in (
        lambda: pull_policy("sometimes"),
        lambda: parse_volumes(["relative:path"]),
        lambda: parse_volumes(["/a:/b:rx"]),
        lambda: parse_key_values(["NOEQUALS"], "environment"),
        lambda: normalize_image("  "),
    ):
        with pytest.raises(BackendParameterError) as info:
            call()
        assert "\n" not in str(info.value)
