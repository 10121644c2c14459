"""Every private Dagster name the project uses, in one place, each pinned by a test.

Dagster 1.13 exports none of these publicly. Importing them from here means a Dagster upgrade
that moves one breaks one module (and ``test_dagster_internals``), not several.
"""

from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "UnresolvedAssetJobDefinition",
]
