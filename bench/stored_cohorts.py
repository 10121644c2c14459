"""Cohorts that ``layer-platform validate`` ran, read back for a study that re-judges them.

A cohort's ``LAYER_HOME`` keeps what gate 4 reads (its champions' saliency rows) and what the
earlier gates read (out-of-fold predictions, model-randomization checks), and its simulator
ground truth says which layers were planted. Reading them lets a study judge the same evidence
with another rule, without training or explaining anything again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from layer_platform.saliency_names import ABLATION_METHOD
from layer_platform.settings import LayerPaths
from layer_platform.statistics.ranking import method_views, subgroup
from layer_platform.statistics.recovery import MODE_MODALITIES
from layer_platform.statistics.verdicts import Evidence, MethodViews, claimable_methods
from layer_platform.tracking.mlflow_registry import Tracking, champion_versions
from layer_platform.warehouse.queries import champion_rows, classifier_skills
from layer_platform.warehouse.store import Warehouse

#: The simulator's config fields that plant a layer, per modality.
_DRIVER_FIELDS = {"bmode": ("bmode_driver", "bmode_driver2"), "swe": ("swe_driver",)}

#: Every stored model-randomization check (a cohort run stores those of its own settings).
CHAMPION_CHECKS = """
    SELECT input_mode, model_version, method, passed FROM randomization_checks
"""


@dataclass(frozen=True)
class StoredMode:
    """One input mode of a stored cohort: the layers its classifier could see planted, and the
    default method's views of the MP subjects' scores (None when gate 1, 2 or 3 blocks it)."""

    cohort: str
    mode: str
    planted: tuple[str, ...]
    views: MethodViews | None


def stored_modes(home: Path, group: str = "MP") -> Iterator[StoredMode]:
    """Every input mode with a champion in the cohort home ``home``."""
    config = json.loads((home / "ground_truth.json").read_text())["config"]
    paths = LayerPaths.under(home)
    warehouse = Warehouse(paths.warehouse)
    tracking = Tracking.for_paths(paths)
    versions = champion_versions(tracking)
    frame = champion_rows(warehouse, versions)
    skills, sites = classifier_skills(warehouse, versions)
    checks = warehouse.query(CHAMPION_CHECKS)
    passed = {
        f"{row.input_mode}/{row.method}": bool(row.passed)
        for row in checks.itertuples(index=False)
        if versions.get(row.input_mode) == str(row.model_version)
    }
    evidence = Evidence(skill=skills, model_randomization=passed, within_site=sites)
    for mode, rows in frame.groupby("input_mode", sort=True):
        planted = sorted(
            {
                str(config[field])
                for modality in MODE_MODALITIES[str(mode)]
                for field in _DRIVER_FIELDS[modality]
                if config.get(field)
            }
        )
        open_ = claimable_methods(str(mode), [ABLATION_METHOD], evidence)
        ablation = rows[rows["method"] == ABLATION_METHOD]
        views = method_views(subgroup(ablation, group)) if open_ else None
        yield StoredMode(home.name, str(mode), tuple(planted), views)


def cohort_homes(folders: list[Path]) -> list[Path]:
    """The cohort homes inside ``validate --out`` folders (those with a simulator ground truth),
    in name order."""
    return sorted(
        (
            home
            for folder in folders
            for home in folder.iterdir()
            if (home / "ground_truth.json").exists()
        ),
        key=lambda home: home.name,
    )
