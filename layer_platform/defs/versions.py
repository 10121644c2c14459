"""Data versions of the trained-model assets: the champion each materialization leaves behind.

A retrain whose challenger loses keeps the data version, so nothing downstream turns stale or
is re-requested; a new champion changes it, so every partition computed with the old one shows
as stale in the UI and the automation recomputes them.
"""

from collections.abc import Sequence

import dagster as dg

from layer_platform.tracking.mlflow_registry import Tracking, champion


def champions_as_data_version(tracking: Tracking, names: Sequence[str]) -> dg.DataVersion:
    """``"<name> v<version>"`` per registered model (``none`` before its first champion)."""
    parts = []
    for name in names:
        found = champion(tracking, name)
        parts.append(f"{name} v{found.version}" if found is not None else f"{name} none")
    return dg.DataVersion(", ".join(parts))
