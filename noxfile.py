"""Test, lint, type-check and build every ReproMan distribution.

Each package's tests run in a virtualenv holding only core and that package,
so a plugin cannot lean on another by accident; ``integration`` installs
everything together.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "integration", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

ROOT = "."
PLUGINS = {
    "core": [],
    "backend_ssh": ["reproman-backend-ssh"],
    "backend_docker": ["reproman-backend-docker"],
    "backend_aws": ["reproman-backend-ssh", "reproman-backend-aws"],
    "submitters": ["reproman-submitters"],
    "orchestrators_datalad": ["reproman-orchestrators-datalad"],
}
ALL_PACKAGES = [
    "reproman-core",
    "reproman-backend-ssh",
    "reproman-backend-docker",
    "reproman-backend-aws",
    "reproman-submitters",
    "reproman-orchestrators-datalad",
]
# pyyaml: read specs as the old tool does; hypothesis: the fuzz suites (tests/*/test_fuzz_*.py)
TEST_DEPS = ["pytest>=7", "pytest-timeout", "pexpect", "hatchling", "pyyaml", "hypothesis>=6"]
#: Optional extras of core that a session's tests exercise (the job report needs plotly).
CORE_EXTRAS = {"core": "[report]", "integration": "[report]", "submitters": "[report,export]"}
#: Services some packages' tests run for real, installed into their virtualenv.
EXTRA_TEST_DEPS = {
    "backend_aws": ["moto[server]>=5"],
    # jobs --export builds RO-Crates with core's [export] extra; the tests validate them.
    "core": ["rocrate>=0.10", "roc-validator>=0.13"],
}


def _install(session: nox.Session, packages: list[str], core_extras: str = "") -> None:
    """Install local packages together so pip resolves core from this checkout."""
    session.install(*TEST_DEPS)
    session.install(*[f"./{p}{core_extras if p == 'reproman-core' else ''}" for p in packages])


@nox.session
@nox.parametrize("package", list(PLUGINS), ids=list(PLUGINS))
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests with only core and that package installed."""
    _install(session, ["reproman-core", *PLUGINS[package]], CORE_EXTRAS.get(package, ""))
    if EXTRA_TEST_DEPS.get(package):
        session.install(*EXTRA_TEST_DEPS[package])
    session.run("pytest", f"tests/{package}", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Run the cross-package tests with every distribution installed."""
    _install(session, ALL_PACKAGES, CORE_EXTRAS["integration"])
    session.install(*sorted({d for deps in EXTRA_TEST_DEPS.values() for d in deps}))
    session.run("pytest", "tests/integration", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install("ruff")
    session.run("ruff", "check", *session.posargs, *[f"{p}/src" for p in ALL_PACKAGES], "tests", "benchmarks", "docs",
                "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check every package with mypy."""
    session.install("mypy", *[f"./{p}" for p in ALL_PACKAGES])
    session.run("mypy", *session.posargs, *[f"{p}/src" for p in ALL_PACKAGES])


#: The plugin written in docs/plugin-authors.md; its tests keep the guide true.
EXAMPLE_PLUGIN = "docs/examples/reproman-example"
DOCS_DEPS = ["sphinx>=7", "myst-parser>=2", "furo"]


@nox.session
def docs(session: nox.Session) -> None:
    """Test the plugin guide's example plugin, then build the API reference (warnings are errors, offline)."""
    session.install(*TEST_DEPS, *DOCS_DEPS)
    session.install("./reproman-core[testing]", f"./{EXAMPLE_PLUGIN}")
    session.run("pytest", f"{EXAMPLE_PLUGIN}/tests", *session.posargs)
    session.run("sphinx-build", "-W", "--keep-going", "-q", "-b", "html", "docs", "docs/_build/html")


@nox.session
def build(session: nox.Session) -> None:
    """Build a wheel for every distribution into dist/."""
    session.install("build")
    for package in ALL_PACKAGES:
        session.run("python", "-m", "build", "--wheel", "--outdir", "dist", package)
