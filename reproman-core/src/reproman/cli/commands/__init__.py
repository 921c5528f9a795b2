"""One module per command, each with ``handle(args, ui) -> int``."""
