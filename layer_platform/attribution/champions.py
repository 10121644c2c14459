"""The champions a saliency run explains with, and each one's frozen reference (read back, or
built once from the controls it trained on)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

from layer_platform.attribution.batch import Champion, scan_config
from layer_platform.attribution.cohort_reference import (
    Control,
    FrozenReference,
    parse_reference,
    reference_document,
)
from layer_platform.attribution.core import AttributionConfig
from layer_platform.attribution.randomization_run import ConfigFor, ScanConfig
from layer_platform.classification.inference import inference_network
from layer_platform.classification.modes import mode_input, no_signal_channels
from layer_platform.classification.splits import SplitScheme
from layer_platform.compute import select_device
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.io import read_label_map
from layer_platform.settings import LayerPaths
from layer_platform.tracking.champion_score import SPLIT_TAG
from layer_platform.tracking.mlflow_registry import Tracking, champion, load_champion
from layer_platform.tracking.names import registered_name
from layer_platform.tracking.reference_store import stored_reference
from layer_platform.warehouse.queries import CONTROL_SCANS
from layer_platform.warehouse.store import Warehouse


def load_champions(tracking: Tracking, modes: Sequence[str]) -> dict[str, Champion]:
    """Per mode with a champion: the model on the device, in eval mode with its batch norms
    folded once here (``inference_network``: every scan's attribution then runs on it without a
    copy per call), and its split."""
    loaded = {}
    for mode in modes:
        name = registered_name(mode)
        if champion(tracking, name) is None:
            continue
        model, version = load_champion(tracking, name)
        scheme = SplitScheme.from_tag(version.tags.get(SPLIT_TAG))
        device = select_device("auto")
        network = inference_network(model.to(device).eval())
        loaded[mode] = Champion(network, name, str(version.version), scheme)
    return loaded


def reference_configs(
    make_config: Callable[..., AttributionConfig],
    baseline: str,
    warehouse: Warehouse,
    paths: LayerPaths,
    tracking: Tracking,
) -> ConfigFor:
    """Per mode and explaining member, the reported run's attribution settings of a scan
    (``batch.scan_config`` with the frozen reference over the controls that network trained
    on): what the summary's checks re-attribute with. Each champion's reference is read once."""
    references: dict[str, FrozenReference | None] = {}

    def config_for(mode: str, member: int | None) -> ScanConfig:
        table = None
        if baseline == "cohort":
            if mode not in references:
                champions = load_champions(tracking, [mode])
                references.update(champion_references(warehouse, paths, tracking, champions))
            reference = references.get(mode)
            table = None if reference is None else reference.table_for(member)
        return partial(scan_config, make_config, baseline, table, mode)

    return config_for


def champion_references(
    warehouse: Warehouse, paths: LayerPaths, tracking: Tracking, champions: Mapping[str, Champion]
) -> dict[str, FrozenReference | None]:
    """Per mode, its champion's frozen reference; None where it has none (a champion whose
    version records no split or no trained scans: its scans use the ``layer_mean`` baseline).

    Built only for a version that has none yet, from the QC-segmented controls its run trained
    on; a control whose segmentation is not yet there is missing from it for good (the count
    per group is in the stored document).
    """
    references: dict[str, FrozenReference | None] = {}
    for mode, champ in champions.items():
        scheme = champ.scheme
        if scheme is None:
            references[mode] = None
            continue

        def build(
            trained_on: frozenset[str], mode: str = mode, champ: Champion = champ, scheme=scheme
        ) -> bytes | None:
            controls = []
            for row in warehouse.query(CONTROL_SCANS).itertuples(index=False):
                if row.scan_id not in trained_on:
                    continue
                x = mode_input(
                    mode, load_preprocessed(paths.artifacts / "preprocessed" / row.scan_id)
                )
                if x is not None:
                    controls.append(Control(row.subject_id, x, read_label_map(row.path)))
            if not controls:
                return None
            return reference_document(
                controls,
                scheme,
                model=champ.name,
                version=champ.version,
                no_signal_channels=tuple(no_signal_channels(mode)),
            )

        data = stored_reference(tracking, champ.name, champ.version, build)
        references[mode] = None if data is None else parse_reference(data)
    return references
