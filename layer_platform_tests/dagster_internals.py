"""Private Dagster names only the tests use, pinned by ``structure/test_dagster_internals``.

The product's own are in ``layer_platform.orchestration.dagster_internals``.
"""

from dagster._core.definitions.data_version import (
    DATA_VERSION_TAG,
    CachingStaleStatusResolver,
    StaleStatus,
)
from dagster._core.loader import LoadingContextForTest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

__all__ = [
    "DATA_VERSION_TAG",
    "AssetCheckExecutionRecordStatus",
    "CachingStaleStatusResolver",
    "LoadingContextForTest",
    "StaleStatus",
]
