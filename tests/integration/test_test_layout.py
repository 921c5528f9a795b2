"""The test tree itself: every test module has a name of its own.

pytest imports test modules by basename (there are no ``__init__.py`` files
in tests/), so two ``test_hooks.py`` in different folders cannot be
collected in one run: running several packages' tests together would fail
before any test ran.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
