"""How every LAYER asset is declared: one stage per asset group, one owner, per-scan batching.

The stage names the UI group and the ``layer/stage`` tag (so the asset graph and run filters
read alike); per-scan assets take the scan partitions with the single-run backfill policy, so
a backfill of any range of scans is one run, not one per scan.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg

from layer_platform.defs.partitions import scan_partitions

OWNER = "team:layer-platform"
#: The one beta warning the platform accepts knowingly (message prefix, a regular expression).
BACKFILL_POLICY_IS_BETA = "Parameter `backfill_policy` of function `asset` is currently in beta"


def stage_asset(stage: str, *, kinds: set[str], scan_partitioned: bool = False, **kwargs: Any):
    """``dg.asset`` with the stage's group, tag and owner; ``scan_partitioned`` adds the scan
    partitions and the single-run backfill policy. Other arguments go to ``dg.asset`` as given."""
    if scan_partitioned:
        kwargs |= {
            "partitions_def": scan_partitions,
            "backfill_policy": dg.BackfillPolicy.single_run(),
        }
    # Single-run backfills make a batch of scans one run (NOTES: 40 s vs 838 s); Dagster
    # still calls the parameter beta, when ``dg.asset`` is called, and would print that for
    # every asset a process loads.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", BACKFILL_POLICY_IS_BETA, dg.BetaWarning)
        return dg.asset(
            group_name=stage, kinds=kinds, tags={"layer/stage": stage}, owners=[OWNER], **kwargs
        )


def stage_spec(stage: str, key: str, *, kinds: set[str], **kwargs: Any) -> dg.AssetSpec:
    """One asset of a multi-asset step, declared like ``stage_asset`` declares its asset."""
    return dg.AssetSpec(
        key, group_name=stage, kinds=kinds, tags={"layer/stage": stage}, owners=[OWNER], **kwargs
    )


def check_specs(asset: str, checks: Mapping[str, tuple[bool, str]]) -> list[dg.AssetCheckSpec]:
    """The asset's checks from a table ``name → (blocking, description)``."""
    return [
        dg.AssetCheckSpec(name, asset=asset, blocking=blocking, description=text)
        for name, (blocking, text) in checks.items()
    ]
