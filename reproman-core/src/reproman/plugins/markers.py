"""The pluggy markers, kept in their own module so plugins import nothing else."""

import pluggy

PROJECT_NAME = "reproman"
ENTRY_POINT_GROUP = "reproman"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
