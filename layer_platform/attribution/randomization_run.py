"""The model-randomization check of the champions (Adebayo et al. 2018), run once per version.

A verdict belongs to a champion version and the check's settings, so it is computed once and
kept in ``randomization_checks``; a refresh after new scans reuses it (the check re-attributes
its sample with the trained and a re-initialized model: most of a refresh's cost).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from layer_platform.attribution.core import AttributionConfig
from layer_platform.attribution.sanity import model_randomization_check
from layer_platform.classification.modes import mode_input
from layer_platform.classification.network import last_conv_block
from layer_platform.compute import select_device
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.io import read_label_map
from layer_platform.settings import LayerPaths
from layer_platform.statistics.sampling import sample_scans
from layer_platform.tracking.mlflow_registry import Tracking, load_champion_classifier
from layer_platform.tracking.names import registered_name
from layer_platform.warehouse.queries import cached_randomization
from layer_platform.warehouse.store import Warehouse, utc_now


@dataclass(frozen=True)
class RandomizationSettings:
    """What a stored verdict depends on: the methods, the flagging bar, the sample size."""

    methods: Sequence[str]
    bar: float
    n_scans: int


@dataclass
class RandomizationOutcome:
    """Per ``mode/method``: ``layer_rho``, ``voxel_rho``, ``passed``; modes whose verdict was
    reused from the warehouse."""

    results: dict[str, dict] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)

    def flagged(self) -> list[str]:
        return [name for name, outcome in self.results.items() if not outcome["passed"]]


def randomize_mode(
    model: torch.nn.Module,
    scans: list[tuple[torch.Tensor, np.ndarray]],
    settings: RandomizationSettings,
    config: AttributionConfig,
) -> dict[str, dict]:
    """Each method's randomization outcome for one model on ``scans`` (input, labels)."""
    outcomes = {}
    for method in settings.methods:
        report = model_randomization_check(
            method,
            model,
            scans,
            target_layer=last_conv_block(model),
            config=config,
            bar=settings.bar,
        )
        final = report.steps[-1]
        outcomes[method] = {
            "layer_rho": round(final.layer_correlation, 3),
            "voxel_rho": None
            if final.voxel_correlation is None
            else round(final.voxel_correlation, 3),
            "passed": report.passed,
        }
    return outcomes


def sampled_inputs(
    mode: str, frame: pd.DataFrame, warehouse: Warehouse, paths: LayerPaths, n_scans: int
) -> list[tuple[torch.Tensor, np.ndarray]]:
    """(input on the device, labels) of a deterministic sample of ``mode``'s scans."""
    device = select_device("auto")
    paths_by_scan = dict(
        warehouse.query("SELECT scan_id, path FROM segmentations").itertuples(index=False)
    )
    scans = []
    for scan_id in sample_scans(frame[frame["input_mode"] == mode], n_scans):
        x = mode_input(mode, load_preprocessed(paths.artifacts / "preprocessed" / scan_id))
        if x is not None:
            labels = read_label_map(paths_by_scan[scan_id])
            scans.append((torch.as_tensor(x[None], device=device), labels))
    return scans


def champion_randomization(
    frame: pd.DataFrame,
    versions: dict[str, str],
    *,
    tracking: Tracking,
    warehouse: Warehouse,
    paths: LayerPaths,
    settings: RandomizationSettings,
    config_for: Callable[[str], AttributionConfig],
) -> RandomizationOutcome:
    """The check for every mode with champion rows in ``frame``, computed where the warehouse
    has no verdict for that version and these settings, and stored there.

    ``config_for(mode)`` gives the attribution settings of a mode's sample (called only when
    the check runs: building the cohort reference reads every control).
    """
    outcome = RandomizationOutcome()
    stored = {"bar": settings.bar, "n_scans": settings.n_scans}
    for mode, version in versions.items():
        if not (frame["input_mode"] == mode).any():
            continue
        known = cached_randomization(warehouse, mode, version, **stored)
        if set(settings.methods) <= set(known):
            outcome.reused.append(mode)
            outcome.results.update({f"{mode}/{m}": known[m] for m in settings.methods})
            continue
        model, _ = load_champion_classifier(tracking, mode)
        scans = sampled_inputs(mode, frame, warehouse, paths, settings.n_scans)
        computed = randomize_mode(model, scans, settings, config_for(mode)) if scans else {}
        rows = [
            {
                "input_mode": mode,
                "method": method,
                "model_name": registered_name(mode),
                "model_version": version,
                **stored,
                **result,
                "computed_at": utc_now(),
            }
            for method, result in computed.items()
        ]
        scope = {"model_version": version}
        warehouse.replace("randomization_checks", rows, key="input_mode", keys=[mode], scope=scope)
        outcome.results.update({f"{mode}/{method}": result for method, result in computed.items()})
    return outcome
