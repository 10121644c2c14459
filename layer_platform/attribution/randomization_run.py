"""The model-randomization check of the champions (Adebayo et al. 2018), run once per version.

The check is a gate of every finding (``statistics.verdicts``), so it explains what was
reported: each sampled scan gets the reported run's own configuration (``scan_config``: the
same reference volume, IG steps, occlusion box), and the model is randomized as a cascade from
the top (``sanity.cascade_steps``); the verdict is the fully random step's. Sample size rule:
the layer correlation runs over 6 x n profile values, whose rank correlation between unrelated
profiles has a standard deviation of about 1/sqrt(6n - 1); ``MIN_DECISIVE_SCANS`` (8 scans of
distinct subjects: 48 values, SD 0.15) puts the bar 0.8 over 5 SDs above such profiles. A
cohort with fewer subjects uses them all. A verdict belongs to a champion version and the
check's settings (``protocol``), so it is computed once and kept in ``randomization_checks``;
a refresh after new scans reuses it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from layer_platform.attribution.aggregation import NonFiniteMap
from layer_platform.attribution.core import AttributionConfig
from layer_platform.attribution.sanity import (
    cascade_steps,
    depth_levels,
    model_randomization_check,
)
from layer_platform.classification.modes import mode_input, no_signal_channels
from layer_platform.classification.network import last_conv_block
from layer_platform.compute import select_device
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.io import read_label_map
from layer_platform.settings import LayerPaths
from layer_platform.statistics.sampling import sample_scans
from layer_platform.timestamps import utc_now
from layer_platform.tracking.mlflow_registry import Tracking, load_champion_classifier
from layer_platform.tracking.names import registered_name
from layer_platform.warehouse.queries import cached_randomization
from layer_platform.warehouse.store import Warehouse

#: Scans of distinct subjects the check needs to decide (see the module).
MIN_DECISIVE_SCANS = 8
#: Version of how the check runs; stored verdicts of another protocol are recomputed.
PROTOCOL = "cascade-v2"

#: (input array (C, L, D, S), labels) -> the reported run's attribution config for that scan.
ScanConfig = Callable[[np.ndarray, np.ndarray], AttributionConfig]
#: (mode, explaining member: None for the whole champion) -> that network's ``ScanConfig``
#: (its frozen reference is over the controls it trained on).
ConfigFor = Callable[[str, int | None], ScanConfig]


@dataclass(frozen=True)
class RandomizationSettings:
    """What a stored verdict depends on: the methods, the flagging bar, the sample size, and
    ``protocol`` (``PROTOCOL`` plus the attribution settings it ran with)."""

    methods: Sequence[str]
    bar: float
    n_scans: int
    protocol: str = PROTOCOL


@dataclass
class RandomizationOutcome:
    """Per ``mode/method``: ``layer_rho``, ``voxel_rho``, ``passed``; modes whose verdict was
    reused from the warehouse."""

    results: dict[str, dict] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    #: Modes whose sample was smaller than the rule asks (``MIN_DECISIVE_SCANS``).
    undecided: list[str] = field(default_factory=list)
    #: Modes whose check could not run: a sampled scan's map was not finite (their verdicts
    #: read "not run", as for a mode without a check; the summary goes on).
    non_finite: list[str] = field(default_factory=list)

    def flagged(self) -> list[str]:
        return [name for name, outcome in self.results.items() if not outcome["passed"]]

    def passed(self) -> dict[str, bool]:
        """Per ``mode/method`` of a mode with a decisive sample, whether the check passed (the
        verdicts' gate: an undecided mode counts as not run)."""
        return {
            name: bool(outcome["passed"])
            for name, outcome in self.results.items()
            if name.split("/")[0] not in self.undecided
        }


def randomize_mode(
    model: torch.nn.Module,
    scans: list[tuple[torch.Tensor, np.ndarray]],
    settings: RandomizationSettings,
    configs: Sequence[AttributionConfig],
    no_signal_channels: Sequence[int] = (),
) -> dict[str, dict]:
    """Each method's randomization outcome for one model on ``scans`` (input, labels), each
    with its config; ``cascade`` holds the layer rho per cascade step as JSON. Layer ablation
    skips its joint and per-channel passes here: the check reads the layer profile only.
    ``no_signal_channels``: the mode's encoded-SWE channels, whose unmeasured voxels the
    profiles leave out as the reported run's aggregates do."""
    configs = [replace(config, ablation_extras=False) for config in configs]
    outcomes = {}
    steps = cascade_steps(len(depth_levels(model)))
    for method in settings.methods:
        report = model_randomization_check(
            method,
            model,
            scans,
            target_layer=last_conv_block(model),
            config=configs,
            cascading=steps,
            bar=settings.bar,
            no_signal_channels=no_signal_channels,
        )
        final = report.steps[-1]
        cascade = {s.n_randomized: round(s.layer_correlation, 3) for s in report.steps}
        outcomes[method] = {
            "cascade": json.dumps(cascade),
            "layer_rho": round(final.layer_correlation, 3),
            "voxel_rho": None
            if final.voxel_correlation is None
            else round(final.voxel_correlation, 3),
            "passed": report.passed,
        }
    return outcomes


def sampled_inputs(
    mode: str,
    frame: pd.DataFrame,
    warehouse: Warehouse,
    paths: LayerPaths,
    n_scans: int,
    config_of: ScanConfig,
) -> tuple[list[tuple[torch.Tensor, np.ndarray]], list[AttributionConfig]]:
    """(input on the device, labels) of a deterministic sample of ``mode``'s scans, and each
    scan's config."""
    device = select_device("auto")
    paths_by_scan = dict(
        warehouse.query("SELECT scan_id, path FROM segmentations").itertuples(index=False)
    )
    scans, configs = [], []
    for scan_id in sample_scans(frame[frame["input_mode"] == mode], n_scans):
        x = mode_input(mode, load_preprocessed(paths.artifacts / "preprocessed" / scan_id))
        if x is not None:
            labels = read_label_map(paths_by_scan[scan_id])
            scans.append((torch.as_tensor(x[None], device=device), labels))
            configs.append(config_of(x, labels))
    return scans, configs


def champion_randomization(
    frame: pd.DataFrame,
    versions: dict[str, str],
    *,
    tracking: Tracking,
    warehouse: Warehouse,
    paths: LayerPaths,
    settings: RandomizationSettings,
    config_for: ConfigFor,
) -> RandomizationOutcome:
    """The check for every mode with champion rows in ``frame``, computed where the warehouse
    has no verdict for that version and these settings, and stored there.

    ``config_for(mode, None)`` gives the reported run's per-scan attribution settings of a mode
    (called only when the check runs: building the cohort reference reads every control).
    """
    outcome = RandomizationOutcome()
    stored = {"bar": settings.bar, "n_scans": settings.n_scans, "protocol": settings.protocol}
    for mode, version in versions.items():
        rows = frame[frame["input_mode"] == mode]
        if rows.empty:
            continue
        if settings.n_scans < min(MIN_DECISIVE_SCANS, rows["subject_id"].nunique()):
            outcome.undecided.append(mode)
        known = cached_randomization(warehouse, mode, version, **stored)
        if set(settings.methods) <= set(known):
            outcome.reused.append(mode)
            outcome.results.update({f"{mode}/{m}": known[m] for m in settings.methods})
            continue
        model, _ = load_champion_classifier(tracking, mode)
        scans, configs = sampled_inputs(
            mode, frame, warehouse, paths, settings.n_scans, config_for(mode, None)
        )
        try:
            computed = (
                randomize_mode(model, scans, settings, configs, no_signal_channels(mode))
                if scans
                else {}
            )
        except NonFiniteMap:
            outcome.non_finite.append(mode)
            computed = {}
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
