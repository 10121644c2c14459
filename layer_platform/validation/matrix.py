"""A validation matrix: simulated cohorts with known drivers, and the settings they run under.

The file is TOML, written and committed *before* it runs (the seeds are the pre-registration):

.. code-block:: toml

    [settings]            # optional; every cohort runs under the same settings
    subjects = 40
    folds = 5

    [[scenario]]
    name = "bmode-deep_fat"
    seed = 51
    bmode_driver = "deep_fat"
    swe_driver = "none"

Any ``[settings]`` key but the training and attribution ones below can be given per scenario
too (``subjects``, ``folds``, effect sizes, ``annotated_fraction``, the simulator scenarios such
as ``bmode_spill_mm`` or ``site_confounding``). A scenario with both drivers ``"none"`` is a
null, confounded or not.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from layer_platform.attribution.scan_profile import REFERENCE_MATCHINGS
from layer_platform.labels import Layer
from layer_platform.saliency_names import PLATFORM_METHODS
from layer_platform.simulation import SimulationConfig
from layer_platform.simulation.config import SCENARIO_FIELDS
from layer_platform.statistics.recovery import planted_drivers


@dataclass(frozen=True)
class Scenario:
    """One simulated cohort: its seed, size, planted drivers and effect sizes."""

    name: str
    seed: int
    subjects: int = 40
    folds: int = 5
    #: The split's salt (``ClassifierResource.split_seed``): a small cohort whose hash split
    #: leaves a fold with one class needs another.
    split_seed: int = 0
    #: Layer key or None (``"none"`` in the file).
    bmode_driver: str | None = None
    swe_driver: str | None = None
    bmode_effect_db: float = SimulationConfig.bmode_effect_db
    swe_effect: float = SimulationConfig.swe_effect
    #: The simulator scenarios (``SimulationConfig``'s fields of the same names).
    bmode_driver2: str | None = None
    bmode_driver_kind: str = SimulationConfig.bmode_driver_kind
    bmode_spill_mm: float = SimulationConfig.bmode_spill_mm
    swe_spill_mm: float = SimulationConfig.swe_spill_mm
    thickness_effect: float = SimulationConfig.thickness_effect
    unilateral_fraction: float = SimulationConfig.unilateral_fraction
    site_confounding: float = SimulationConfig.site_confounding
    fat_confounding: float = SimulationConfig.fat_confounding
    swe_coverage_confounding: float = SimulationConfig.swe_coverage_confounding
    #: Share of scans shipped with reference layers; the others are explained inside the
    #: platform's own segmentation (lower it for realistic segmentations).
    annotated_fraction: float = SimulationConfig.annotated_fraction

    def __post_init__(self) -> None:
        for name in ("bmode_driver", "bmode_driver2", "swe_driver"):
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().lower() == "none":
                value = None
            object.__setattr__(self, name, None if value is None else Layer.from_key(value).key)

    @property
    def planted(self) -> dict[str, tuple[str, ...]]:
        """Every planted layer key per modality (two for a two-layer B-mode driver)."""
        return planted_drivers(self.bmode_driver, self.swe_driver, self.bmode_driver2)

    def simulation(self) -> SimulationConfig:
        return SimulationConfig(
            n_subjects=self.subjects,
            seed=self.seed,
            bmode_driver=self.bmode_driver,
            swe_driver=self.swe_driver,
            bmode_effect_db=self.bmode_effect_db,
            swe_effect=self.swe_effect,
            annotated_fraction=self.annotated_fraction,
            **{name: getattr(self, name) for name in SCENARIO_FIELDS},
        )


@dataclass(frozen=True)
class Settings:
    """What every cohort of a matrix is trained and explained with (the platform's defaults
    unless the file says otherwise; the smaller values exist for the suite's tiny matrix)."""

    methods: tuple[str, ...] = PLATFORM_METHODS
    #: How the cohort reference enters an ablated layer; several compare them on the same
    #: trained models (each cohort's saliency and summary re-run per extra matching).
    reference_matching: tuple[str, ...] = ("flat",)
    #: Classifier epochs (None: ``ClassifierConfig``'s).
    min_epochs: int | None = None
    max_epochs: int | None = None
    #: Classifier modality dropout (None: ``ClassifierConfig``'s).
    modality_dropout: float | None = None
    #: Segmenter epochs (None: ``SegmenterConfig``'s).
    segmenter_epochs: int | None = None
    #: ``SaliencyResource.smoke()`` instead of the default attribution settings, on the smoke
    #: working grid (``PreprocessConfig.smoke``): the least work that runs every stage (tests).
    smoke: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        matching = self.reference_matching
        matching = (matching,) if isinstance(matching, str) else tuple(matching)
        object.__setattr__(self, "reference_matching", matching)
        if not matching or not set(matching) <= set(REFERENCE_MATCHINGS):
            raise ValueError(
                f"reference_matching must be one or more of {REFERENCE_MATCHINGS}, got {matching}"
            )


@dataclass(frozen=True)
class Matrix:
    name: str
    scenarios: tuple[Scenario, ...]
    settings: Settings = field(default_factory=Settings)

    def fingerprint(self, scenario: Scenario) -> str:
        """Changes whenever anything that decides this cohort's result changes: a stored result
        with another fingerprint is stale and the cohort runs again."""
        described = [
            _described(scenario, _NEWER_FIELDS),
            _described(self.settings, _NEWER_SETTINGS),
        ]
        text = json.dumps(described, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _described(item: Scenario | Settings, newer: tuple[str, ...]) -> dict[str, Any]:
    """``item``'s fields, but those in ``newer`` left out at their default: results stored
    before such a field existed keep their fingerprint (the default renders the same cohort)."""
    return {
        key: value
        for key, value in asdict(item).items()
        if key not in newer or value != getattr(type(item), key)
    }


#: Scenario fields and settings added after results were first stored.
_NEWER_FIELDS = (*SCENARIO_FIELDS, "annotated_fraction")
_NEWER_SETTINGS = ("modality_dropout",)
_SCENARIO_KEYS = {f.name for f in fields(Scenario)}
_SHARED_KEYS = _SCENARIO_KEYS - {"name", "seed", "bmode_driver", "bmode_driver2", "swe_driver"}
_SETTINGS_KEYS = {f.name for f in fields(Settings)}


def load_matrix(path: Path) -> Matrix:
    """Read and check a matrix file; errors name the scenario and key at fault."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path.name}: not valid TOML ({exc})") from None
    unknown = set(data) - {"settings", "scenario"}
    if unknown:
        raise ValueError(f"{path.name}: unknown top-level keys {sorted(unknown)}")
    given = dict(data.get("settings", {}))
    wrong = set(given) - _SETTINGS_KEYS - _SHARED_KEYS
    if wrong:
        raise ValueError(f"{path.name}: unknown [settings] keys {sorted(wrong)}")
    shared = {k: v for k, v in given.items() if k in _SHARED_KEYS}
    settings = Settings(**{k: v for k, v in given.items() if k in _SETTINGS_KEYS})
    scenarios = [_scenario(path.name, i, entry, shared) for i, entry in enumerate(data["scenario"])]
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names) or not scenarios:
        raise ValueError(f"{path.name}: scenario names must be unique and at least one given")
    return Matrix(path.stem, tuple(scenarios), settings)


def _scenario(file: str, index: int, entry: dict[str, Any], shared: dict[str, Any]) -> Scenario:
    where = f"{file}: scenario {entry.get('name', index)!r}"
    wrong = set(entry) - _SCENARIO_KEYS
    missing = {"name", "seed"} - set(entry)
    if wrong or missing:
        raise ValueError(f"{where}: unknown keys {sorted(wrong)}, missing {sorted(missing)}")
    try:
        scenario = replace(Scenario(name=str(entry["name"]), seed=int(entry["seed"])), **shared)
        scenario = replace(scenario, **entry)
        scenario.simulation()  # the simulator's own checks (sizes, layer names)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    if not scenario.name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"{where}: a name is a folder name: letters, digits, '-' and '_'")
    if scenario.folds < 2:
        raise ValueError(f"{where}: folds must be >= 2")
    return scenario
