"""Records of the tracers built into core (cheap: no tracer is imported here).

Each record's name is also the ``name:`` its tracer writes under
``distributions:`` (``TracerType.spec_name`` defaults to it). ``order``
decides who sees a file first: the system package managers (dpkg,
rpm) own most files and answer fastest, so they go first; environments
(conda, venv, pip) and checkouts (git, svn) take what is left; docker looks at
arguments that are image references rather than files.

Some tracers live in modules written separately; a record is listed only
when its module is present (``importlib.util.find_spec`` looks at the file
system without importing), so a partial tree never breaks plugin loading,
which runs strict in the tests.
"""

from __future__ import annotations

from importlib.util import find_spec

from reproman.plugins.records import TracerType


def _present(factory: str) -> bool:
    module = factory.partition(":")[0]
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


_ALL: tuple[TracerType, ...] = (
    TracerType(
        name="debian",
        description="Debian/Ubuntu packages (dpkg, APT sources and versions)",
        factory="reproman.tracing.debian:DebianTracer",
        order=10,
    ),
    TracerType(
        name="redhat",
        description="Red Hat/Fedora/SUSE packages (rpm)",
        factory="reproman.tracing.redhat:RedhatTracer",
        order=15,
    ),
    TracerType(
        name="conda",
        description="Conda environments, channels, packages and the pip packages inside",
        factory="reproman.tracing.conda:CondaTracer",
        order=20,
    ),
    TracerType(
        name="venv",
        description="Python virtual environments and their packages",
        factory="reproman.tracing.venv:VenvTracer",
        order=30,
    ),
    TracerType(
        name="pip",
        description="Python packages installed with pip outside any environment",
        factory="reproman.tracing.pip:PipTracer",
        order=40,
    ),
    TracerType(
        name="git",
        description="Git checkouts (root, commit, branch, remotes, dirty state)",
        factory="reproman.tracing.vcs:GitTracer",
        order=50,
    ),
    TracerType(
        name="svn",
        description="Subversion checkouts",
        factory="reproman.tracing.vcs:SvnTracer",
        order=60,
    ),
    TracerType(
        name="docker",
        description="Docker images named by ID, digest or tag",
        factory="reproman.tracing.dockerimage:DockerTracer",
        order=70,
    ),
)

BUILTIN_TRACERS: tuple[TracerType, ...] = tuple(t for t in _ALL if _present(t.factory))
