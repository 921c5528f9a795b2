"""ReproMan: manage computation environments and run reproducible work on them.

The package root stays import-light on purpose: the CLI imports it on every
start, so anything heavier than a version string belongs in a submodule.
"""

__version__ = "0.5.0"

__all__ = ["__version__"]
