"""The ``reproman`` command: argparse front end, the only place that prints."""
