"""Every private Dagster name the project uses, in one place, each pinned by a test.

Dagster 1.13 exports none of these publicly. Importing them from here means a Dagster upgrade
that moves one breaks one module (and ``test_dagster_internals``), not several.
"""

from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget

#: The daemon that starts the runs a ``QueuedRunCoordinator`` queued (its ``daemon_type()``).
QUEUED_RUN_DAEMON = "QUEUED_RUN_COORDINATOR"

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "QUEUED_RUN_DAEMON",
    "JobSubsetSelector",
    "ModuleTarget",
    "UnresolvedAssetJobDefinition",
    "WorkspaceProcessContext",
]
