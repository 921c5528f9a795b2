"""Contract test suites and fixtures for plugin authors.

Subclass a suite in your own tests and provide its fixture; see
``docs/plugin-authors.md``.
"""
