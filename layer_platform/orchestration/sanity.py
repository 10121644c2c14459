"""``layer-platform sanity``: the data-randomization check of the current champions.

It runs in this process, not as a Dagster asset: it retrains every checked mode's fold models
(as costly as ``train_classifiers`` for that mode) and re-explains its development scans, so it
is an analysis one asks for, not a table to keep fresh: as an asset, automation would rerun it
on every promotion. Its result is stored per champion version and seed
(``data_randomization_checks``) and the next ``saliency_summary`` reads it into every verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

from layer_platform.attribution.data_randomization_run import (
    DataRandomizationOutcome,
    DataRandomizationSettings,
    champion_data_randomization,
)
from layer_platform.classification.modes import INPUT_MODES
from layer_platform.defs.resources import build_resources
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_registry import Tracking
from layer_platform.warehouse.store import Warehouse


def run_sanity(
    paths: LayerPaths,
    *,
    modes: Sequence[str] = INPUT_MODES,
    methods: Sequence[str] | None = None,
    seed: int = 0,
    saliency: SaliencyResource | None = None,
) -> DataRandomizationOutcome:
    """The check for ``modes``' champions with the instance's saliency settings (``saliency``,
    default: the platform's resource), for ``methods`` (default: the methods the
    model-randomization check runs for).

    Raises:
        ValueError: a method the saliency run does not compute, or an unknown mode.
    """
    saliency = (saliency or build_resources(paths=paths)["saliency"]).validated()
    chosen = list(methods or saliency.sanity_methods())
    unknown = [m for m in chosen if m not in saliency.methods]
    if unknown:
        raise ValueError(f"methods {unknown} are not computed by the saliency run")
    wrong = [m for m in modes if m not in INPUT_MODES]
    if wrong:
        raise ValueError(f"unknown input mode(s) {wrong}; expected of {INPUT_MODES}")
    settings = DataRandomizationSettings(
        chosen, seed, saliency.baseline, saliency.attribution_config, saliency.ranking_group
    )
    with saliency.threads():
        return champion_data_randomization(
            modes,
            tracking=Tracking.for_paths(paths),
            warehouse=Warehouse(paths.warehouse),
            paths=paths,
            settings=settings,
        )


def outcome_lines(outcome: DataRandomizationOutcome) -> list[str]:
    """One line per mode and method (passed / failed with the layer), or per mode not run."""
    lines = []
    for key, result in sorted(outcome.results.items()):
        mode = key.split("/")[0]
        how = "reused" if mode in outcome.reused else "computed"
        tests = f"Holm p = {result['holm_p']:.2g} over {result['n_tests']} candidate claims"
        found = f"{result['n_subjects']} subjects, {tests}, {how}"
        if result["passed"]:
            lines.append(f"{key:<36} passed: no layer stands out ({found})")
        else:
            layer = result["standout_layer"]
            lines.append(f"{key:<36} FAILED: {layer} stands out on permuted labels ({found})")
    for mode, reason in sorted(outcome.not_run.items()):
        lines.append(f"{mode:<36} not run: {reason}")
    return lines
