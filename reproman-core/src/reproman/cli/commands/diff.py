"""``reproman diff [--satisfies] [--json] PROV1 PROV2``: exit 0 equal (or satisfied), 3 different, 1 error.

Two jobs neither of which recorded an output are an error (1, "nothing to
compare"), never "equal": a script reads exit 0 as "the results agree".
"""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI

#: Exit status when the specs differ (or the requirement is not satisfied).
DIFFERENT = 3


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    report = api.diff(args.prov1, args.prov2, satisfies=args.satisfies)
    if getattr(args, "json", False):
        ui.json(report.to_dict())
    else:
        text = report.render()
        if text:
            ui.stdout.write(text)
    return 0 if report.equal else DIFFERENT
