"""Entry point for ``dagster dev`` / ``workspace.yaml``: the platform's Definitions."""

from layer_platform.defs.definitions import build_definitions
from layer_platform.umask import apply_umask

# Run workers load this module too, so what their steps create gets the platform's umask.
apply_umask()
defs = build_definitions()
