"""Entry point for ``dagster dev`` / ``workspace.yaml``: the platform's Definitions."""

from layer_platform.defs.definitions import build_definitions

defs = build_definitions()
