"""``reproman retrace [PATH...] [--spec REPROZIP_YML] [-o FILE] [-r RESOURCE]``: spec on stdout or in FILE."""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    spec = api.retrace(path=args.path or None, spec=args.spec, output_file=args.output_file,
                       resref=args.resref, resref_type=args.resref_type)
    if args.output_file:
        ui.info(f"wrote {args.output_file}: {len(spec.distributions)} distribution(s), "
                f"{len(spec.files)} other file(s)")
    else:
        ui.stdout.write(spec.to_yaml())
    return 0
