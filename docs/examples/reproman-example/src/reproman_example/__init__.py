"""The example plugin of ``docs/plugin-authors.md``: a resource and its session, a submitter, an orchestrator
and a tracer, each tested against the contract suites of :mod:`reproman.testing`."""
