"""The data-randomization check of the champions, run once per version and permutation seed.

What the check does is ``attribution.data_randomization``'s; this module finds what it needs
for a champion and keeps what it found. The retraining repeats the champion's run: its split
(the ``layer.split`` tag), its ``ClassifierConfig`` (the parameters its MLflow run logged) and
its development scans (the scans its run lists, as they are preprocessed now). Each development
scan with a QC-passed segmentation is explained with the reported run's settings (``scan_config``
with the champion's frozen reference for the scan's fold). A result belongs to a champion
version, a seed and ``PROTOCOL``, so it is stored in ``data_randomization_checks`` and reused
(no retraining) by a later run with the same ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from layer_platform.attribution.batch import Champion, scan_config
from layer_platform.attribution.champions import champion_references, load_champions
from layer_platform.attribution.core import AttributionConfig
from layer_platform.attribution.data_randomization import (
    CHECKED_GROUPS,
    ScanToExplain,
    explain_out_of_fold,
    judge,
    protocol,
    train_permuted,
)
from layer_platform.classification.cohort import load_scans
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.data import Item
from layer_platform.classification.modes import (
    channel_modalities,
    eligible_scans,
    make_items,
    no_signal_channels,
)
from layer_platform.classification.network import FoldEnsemble
from layer_platform.classification.splits import SplitScheme
from layer_platform.errors import ScanError
from layer_platform.io import read_label_map
from layer_platform.settings import LayerPaths
from layer_platform.timestamps import utc_now
from layer_platform.tracking.mlflow_registry import Tracking, recorded_params
from layer_platform.tracking.reference_store import trained_scans
from layer_platform.warehouse.queries import (
    EXPLAINABLE_LABELLED,
    LABELLED_PREPROCESSED,
    cached_data_randomization,
)
from layer_platform.warehouse.store import Warehouse

TABLE = "data_randomization_checks"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataRandomizationSettings:
    """The methods checked together (one Holm family), the permutation seed, the reported
    run's attribution settings (``SaliencyResource``: ``make_config`` and ``baseline``) and
    the subgroup its ranking reads (``ranking_group``: the check reads the same one)."""

    methods: Sequence[str]
    seed: int
    baseline: str
    make_config: Callable[..., AttributionConfig]
    group: str = "all"


@dataclass
class DataRandomizationOutcome:
    """Per ``mode/method``: the stored row's values; modes reused from the warehouse, modes
    retrained, and why a mode was not run."""

    results: dict[str, dict] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    retrained: list[str] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)


def _explains_out_of_fold(model: object, scheme: SplitScheme) -> bool:
    """Whether every development scan has a member that never trained on it."""
    return isinstance(model, FoldEnsemble) and model.n_members == scheme.n_folds


def _development_items(
    warehouse: Warehouse, paths: LayerPaths, scheme: SplitScheme, mode: str, listed: frozenset[str]
) -> list[Item]:
    """``mode``'s inputs of the labelled development scans the champion's run trained on."""
    rows = [
        row
        for row in warehouse.query(LABELLED_PREPROCESSED).to_dict("records")
        if row["scan_id"] in listed and scheme.assign(row["subject_id"]) is not None
    ]
    eligible, _ = eligible_scans(load_scans(paths.artifacts / "preprocessed", rows), mode)
    return make_items(eligible, mode)


def _check_mode(
    mode: str,
    champ: Champion,
    scheme: SplitScheme,
    model: FoldEnsemble,
    items: list[Item],
    permuted: Mapping[str, str],
    *,
    warehouse: Warehouse,
    paths: LayerPaths,
    tracking: Tracking,
    settings: DataRandomizationSettings,
) -> dict[str, dict]:
    """Explain the permuted ``model`` out of fold and judge the scans of the settings' group
    (by the ``permuted`` labels, subject -> label); the values to store per method."""
    reference = None
    if settings.baseline == "cohort":
        reference = champion_references(warehouse, paths, tracking, {mode: champ})[mode]
    segmentations = dict(warehouse.query(EXPLAINABLE_LABELLED).itertuples(index=False))
    scans = []
    for item in items:
        if item.scan_id not in segmentations:
            continue
        fold = scheme.assign(item.subject_id)
        table = None if reference is None else reference.table_for(fold)
        try:
            labels = read_label_map(segmentations[item.scan_id])
            config = scan_config(
                settings.make_config, settings.baseline, table, mode, item.x, labels
            )
        except ScanError as error:  # one scan never stops the others (the run quarantined it)
            _log.warning(f"{item.scan_id} left out of the check ({type(error).__name__})")
            continue
        scans.append(
            ScanToExplain(item, labels, config, no_signal_channels(mode), channel_modalities(mode))
        )
    rows = explain_out_of_fold(model, scheme, scans, settings.methods)
    if settings.group != "all" and not rows.empty:
        rows = rows[rows["subject_id"].map(permuted) == settings.group]
    verdicts = judge(rows, settings.methods)
    return {
        method: {
            "n_subjects": verdict.n_subjects,
            "n_tests": verdict.n_tests,
            "standout_layer": verdict.standout_layer,
            "holm_p": verdict.holm_p,
            "passed": verdict.passed,
        }
        for method, verdict in verdicts.items()
    }


def champion_data_randomization(
    modes: Sequence[str],
    *,
    tracking: Tracking,
    warehouse: Warehouse,
    paths: LayerPaths,
    settings: DataRandomizationSettings,
) -> DataRandomizationOutcome:
    """The check for the champion of every mode in ``modes``, computed where the warehouse has
    no result for that version, seed and protocol (for every method), and stored there."""
    outcome = DataRandomizationOutcome()
    champions = load_champions(tracking, modes)
    for mode in modes:
        if (champ := champions.get(mode)) is None:
            outcome.not_run[mode] = "no champion"
            continue
        if settings.group not in CHECKED_GROUPS:
            outcome.not_run[mode] = f"the ranking reads {settings.group!r}, which it cannot mirror"
            continue
        known = cached_data_randomization(
            warehouse, mode, champ.version, seed=settings.seed, protocol=protocol(settings.group)
        )
        if set(settings.methods) <= set(known):
            outcome.reused.append(mode)
            outcome.results |= {f"{mode}/{m}": known[m] for m in settings.methods}
            continue
        if (scheme := champ.scheme) is None:
            outcome.not_run[mode] = "its version records no split"
            continue
        if not _explains_out_of_fold(champ.model, scheme):
            outcome.not_run[mode] = "it is not a fold ensemble (no out-of-fold explainer)"
            continue
        version = tracking.activate().get_model_version(champ.name, champ.version)
        params = recorded_params(tracking, version)
        listed = trained_scans(version.run_id)
        if not params or listed is None:
            outcome.not_run[mode] = "its run records no training settings or scans"
            continue
        items = _development_items(warehouse, paths, scheme, mode, listed)
        _log.info(f"{mode}: retraining {champ.name} v{champ.version} on permuted labels")
        try:
            config = ClassifierConfig.from_params(params)
            model, permuted = train_permuted(items, scheme, config, settings.seed)
        except ValueError as error:  # e.g. an SWE mode left a fold with one class
            outcome.not_run[mode] = f"retraining refused: {error}"
            continue
        computed = _check_mode(
            mode,
            champ,
            scheme,
            model,
            items,
            permuted,
            warehouse=warehouse,
            paths=paths,
            tracking=tracking,
            settings=settings,
        )
        outcome.retrained.append(mode)
        if not computed:
            outcome.not_run[mode] = "too few subjects with all six layers for the layer test"
        stored = {
            "model_name": champ.name,
            "model_version": champ.version,
            "permutation_seed": settings.seed,
            "protocol": protocol(settings.group),
        }
        rows = [
            {"input_mode": mode, "method": method, **stored, **result, "computed_at": utc_now()}
            for method, result in computed.items()
        ]
        scope = {"model_version": champ.version, "permutation_seed": settings.seed}
        warehouse.replace(TABLE, rows, key="input_mode", keys=[mode], scope=scope)
        outcome.results |= {f"{mode}/{method}": result for method, result in computed.items()}
    return outcome
