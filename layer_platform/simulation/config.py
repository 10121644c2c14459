"""The simulation's knobs: one frozen value, stored in the ground truth so arrivals continue it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from layer_platform.labels import Layer
from layer_platform.simulation.fields import Triple

#: Landing formats the simulator writes (``dcm`` only for B-mode: SWE is float kPa).
FORMATS: tuple[str, ...] = ("nii", "nii.gz", "nrrd", "mha", "dcm")
B_MODE_ONLY_FORMATS: frozenset[str] = frozenset({"dcm"})

#: How the B-mode driver changes: its mean echo level, or its texture at an unchanged mean.
DRIVER_KINDS: tuple[str, ...] = ("level", "texture")
#: The scenario fields (docs/explanation/simulator-scenarios.md), each off at its default.
SCENARIO_FIELDS: tuple[str, ...] = (
    "bmode_driver2",
    "bmode_driver_kind",
    "bmode_spill_mm",
    "swe_spill_mm",
    "thickness_effect",
    "unilateral_fraction",
    "site_confounding",
    "fat_confounding",
    "swe_coverage_confounding",
)
#: Config fields that are shares of subjects or scans.
SHARES: tuple[str, ...] = (
    "mp_fraction",
    "annotated_fraction",
    "swe_fraction",
    "unilateral_fraction",
    "site_confounding",
    "swe_coverage_confounding",
)
#: Config fields that hold a layer (stored by key in JSON).
LAYER_FIELDS: tuple[str, ...] = ("bmode_driver", "bmode_driver2", "swe_driver")
#: Fat layers that grow with body size (``fat_confounding``).
FAT_LAYERS: tuple[Layer, ...] = (Layer.SUPERFICIAL_FAT, Layer.DEEP_FAT)


@dataclass(frozen=True)
class Effect:
    """A pain effect as planted in one scan.

    Args:
        layers: the driver layers (none, one, or two for a two-layer B-mode driver).
        size: already scaled by the subject's severity; dB for B-mode, relative stiffness change
            for SWE; 0 for controls.
        spill_mm: e-folding distance (mm) of the effect beyond the driver layers; 0 confines it.
        kind: ``level`` or ``texture`` (B-mode only, see :data:`DRIVER_KINDS`).
    """

    layers: tuple[Layer, ...]
    size: float
    spill_mm: float = 0.0
    kind: str = "level"


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that decides a simulated cohort.

    Args:
        n_subjects: subjects in the initial cohort; each has a left and a right scan.
        seed: root of every random draw; subject ``n`` depends only on (seed, n).
        bmode_driver: layer whose echogenicity and texture change with pain, or None.
        swe_driver: layer whose stiffness changes with pain, or None.
        bmode_effect_db: echogenicity change of the B-mode driver at severity 1 (dB, + = brighter).
            Severities run 0.3-1, so the default 12 dB plants 3.6-12 dB. At 6 dB an ideal
            observer that reads the driver layer's mean off the reference labels reaches only
            AUC 0.90 (40 subjects), too weak a driver to test whether the pipeline finds it.
        swe_effect: relative stiffness change of the SWE driver at severity 1 (0.4 = +40 %).
        mp_fraction: share of subjects with myofascial pain.
        annotated_fraction: share of scans that come with a reference ``layers`` annotation.
        swe_fraction: share of scans that come with an SWE volume.
        formats: landing formats drawn per scan.
        field_of_view_mm: (lateral, depth, sweep) extent of every scan.
        spacing_scale: multiplies every device's voxel size; > 1 renders smaller volumes.

    Scenarios (docs/explanation/simulator-scenarios.md); every default renders as before them:

    Args:
        bmode_driver2: a second layer with the same B-mode effect, or None.
        bmode_driver_kind: ``level`` (echo level changes) or ``texture`` (the drivers' mottle
            contrast grows by ``bmode_effect_db`` x severity dB at an unchanged mean level).
        bmode_spill_mm, swe_spill_mm: the effect fades as exp(-d / spill) at a distance d (mm)
            beyond the driver layers; 0 confines it to them.
        thickness_effect: relative thickening of the B-mode driver layers at severity 1.
        unilateral_fraction: share of MP subjects whose pain (every planted effect) is on one
            side only; the other side renders as a control's, both stay labelled MP.
        site_confounding: share of subjects whose site follows the label: MP to
            ``devices.CONFOUNDED_SITE``, controls away from it.
        fat_confounding: relative thickening of both fat layers in MP subjects (body size).
        swe_coverage_confounding: shifts the chance of an SWE volume towards MP scans (1: every
            MP scan has one, no control scan does).
    """

    n_subjects: int = 40
    seed: int = 7
    bmode_driver: Layer | None = Layer.DEEP_FASCIA
    swe_driver: Layer | None = Layer.MUSCLE
    bmode_effect_db: float = 12.0
    swe_effect: float = 0.8
    mp_fraction: float = 0.5
    annotated_fraction: float = 0.4
    swe_fraction: float = 0.75
    formats: tuple[str, ...] = FORMATS
    field_of_view_mm: Triple = (32.0, 35.0, 24.0)
    spacing_scale: float = 1.0
    bmode_driver2: Layer | None = None
    bmode_driver_kind: str = "level"
    bmode_spill_mm: float = 0.0
    swe_spill_mm: float = 0.0
    thickness_effect: float = 0.0
    unilateral_fraction: float = 0.0
    site_confounding: float = 0.0
    fat_confounding: float = 0.0
    swe_coverage_confounding: float = 0.0

    def __post_init__(self) -> None:
        # Accept layer names and lists (CLI, JSON) but store one canonical form.
        for name in LAYER_FIELDS:
            object.__setattr__(self, name, _as_driver(getattr(self, name)))
        object.__setattr__(self, "formats", tuple(self.formats))
        object.__setattr__(self, "field_of_view_mm", tuple(float(v) for v in self.field_of_view_mm))
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.n_subjects, int) or self.n_subjects < 1:
            raise ValueError(f"n_subjects must be an integer >= 1, got {self.n_subjects!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in SHARES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        self._validate_scenarios()
        if not math.isfinite(self.bmode_effect_db):
            raise ValueError(f"bmode_effect_db must be finite, got {self.bmode_effect_db}")
        if not (math.isfinite(self.swe_effect) and self.swe_effect > -1.0):
            raise ValueError(f"swe_effect must be > -1 (stiffness > 0), got {self.swe_effect}")
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown or not self.formats:
            raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {self.formats}")
        if not self.volume_formats:
            raise ValueError("formats needs one format besides dcm for SWE and layer volumes")
        if len(self.field_of_view_mm) != 3 or min(self.field_of_view_mm) <= 0:
            raise ValueError(f"field_of_view_mm must be 3 positive mm, got {self.field_of_view_mm}")
        if not self.spacing_scale > 0:
            raise ValueError(f"spacing_scale must be positive, got {self.spacing_scale}")

    def _validate_scenarios(self) -> None:
        if self.bmode_driver2 is not None and self.bmode_driver in (None, self.bmode_driver2):
            raise ValueError("bmode_driver2 needs a bmode_driver, and another layer than it")
        if self.bmode_driver_kind not in DRIVER_KINDS:
            raise ValueError(f"bmode_driver_kind must be one of {DRIVER_KINDS}")
        for name in ("bmode_spill_mm", "swe_spill_mm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be >= 0 mm, got {value}")
        for name in ("thickness_effect", "fat_confounding"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > -1.0):
                raise ValueError(f"{name} must be > -1 (thickness > 0), got {value}")
        if self.thickness_effect and not self.bmode_layers:
            raise ValueError("thickness_effect thickens the bmode_driver: name one")
        if self.thickness_effect and Layer.MUSCLE in self.bmode_layers:
            raise ValueError("thickness_effect: muscle fills the view below, it cannot thicken")

    @property
    def bmode_layers(self) -> tuple[Layer, ...]:
        """The B-mode driver layers (none, one or two)."""
        return tuple(x for x in (self.bmode_driver, self.bmode_driver2) if x is not None)

    def planted(self, severity: float) -> tuple[Effect, Effect]:
        """The (B-mode, SWE) effects for a subject (or side) of this severity."""
        return (
            Effect(
                self.bmode_layers,
                self.bmode_effect_db * severity,
                self.bmode_spill_mm,
                self.bmode_driver_kind,
            ),
            Effect(
                () if self.swe_driver is None else (self.swe_driver,),
                self.swe_effect * severity,
                self.swe_spill_mm,
            ),
        )

    def thickness_factors(self, is_mp: bool, severity: float) -> dict[Layer, float]:
        """Mean-thickness multiplier per layer: fat by label (body size), drivers by severity."""
        factors = dict.fromkeys(FAT_LAYERS, 1.0 + self.fat_confounding) if is_mp else {}
        for layer in self.bmode_layers if self.thickness_effect and severity else ():
            factors[layer] = factors.get(layer, 1.0) * (1.0 + self.thickness_effect * severity)
        return {layer: f for layer, f in factors.items() if f != 1.0}

    @property
    def volume_formats(self) -> tuple[str, ...]:
        """Formats that can hold float kPa and label maps."""
        return tuple(f for f in self.formats if f not in B_MODE_ONLY_FORMATS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: layers by name, tuples as lists."""
        data = asdict(self)
        for name in LAYER_FIELDS:
            data[name] = None if data[name] is None else Layer(data[name]).key
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown simulation config keys: {', '.join(unknown)}")
        return cls(**data)


def _as_driver(value: Layer | str | int | None) -> Layer | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    layer = Layer.from_key(value) if isinstance(value, str) else Layer(value)
    if layer == Layer.BACKGROUND:
        raise ValueError("a pain driver must be a tissue layer, not background")
    return layer
