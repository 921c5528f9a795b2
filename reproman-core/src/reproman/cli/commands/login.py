"""``reproman login RESOURCE``: an interactive shell; its exit status is ours."""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    return api.login(args.resref, args.resref_type)
