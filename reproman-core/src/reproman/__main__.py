"""Allow ``python -m reproman`` to behave like the ``reproman`` command."""

from reproman.cli.main import main

raise SystemExit(main())
