"""Settings of the saliency stage: which methods, their cost knobs, and the cohort statistics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import numpy as np
import torch
from pydantic import Field

from layer_platform.attribution import BASELINE_KINDS, METHODS, AttributionConfig
from layer_platform.attribution.explainer import EXPLAINER_RULE
from layer_platform.attribution.faithfulness import FaithfulnessSettings
from layer_platform.attribution.occlusion import depth_bands
from layer_platform.attribution.scan_profile import REFERENCE_MATCHINGS
from layer_platform.compute import select_device
from layer_platform.imaging.preprocess import PreprocessConfig
from layer_platform.saliency_names import ABLATION_METHOD, DEFAULT_METHOD, PLATFORM_METHODS
from layer_platform.statistics import SUBGROUPS


class SaliencyResource(dg.ConfigurableResource):
    """How ``layer_saliency`` attributes and ``saliency_summary`` summarizes.

    Defaults are sized for the CPU grid (32 x 144 x 16) on two cores: Integrated Gradients uses
    16 Gauss-Legendre steps (its completeness is checked per scan), occlusion slides full-width,
    full-sweep depth bands of 8 voxels (2 mm: layers are depth-stratified, so depth is the axis
    that matters), and batch sizes follow the device (:meth:`batch_sizes`). :meth:`for_grid`
    sizes the bands for another working grid (``build_resources`` does, from ``LAYER_PRESET``).
    """

    #: Methods computed per scan and mode (registry names).
    methods: list[str] = Field(default_factory=lambda: list(PLATFORM_METHODS))
    #: The method behind headline figures; must be among ``methods``.
    default_method: str = DEFAULT_METHOD
    #: Reference of Integrated Gradients, occlusion and layer ablation. ``cohort`` fills each
    #: layer with the control class's mean (falls back to ``layer_mean`` without controls).
    baseline: str = "cohort"
    #: How the ``cohort`` reference enters a layer: ``flat`` (its mean) or ``mean_shift`` (the
    #: scan's own texture moved to its mean); see ``attribution.scan_profile``.
    reference_matching: str = "flat"
    ig_steps: int = 16
    #: IG steps per forward+backward pass; 0 picks by device (:meth:`batch_sizes`).
    internal_batch_size: int = 0
    #: Occlusion box and stride in voxels (lateral, depth, sweep), clipped to the scan.
    occlusion_window: list[int] = Field(default_factory=lambda: [32, 8, 16])
    occlusion_stride: list[int] = Field(default_factory=lambda: [32, 8, 16])
    #: Perturbed copies per forward pass (occlusion, layer ablation); 0 picks by device.
    perturbations_per_eval: int = 0
    #: Scans per run whose overlay PNGs (``preview_methods``) are attached, per mode.
    preview_limit: int = 6
    #: Scans (distinct subjects) per mode for the model-randomization check; 8 is the least
    #: that decides (``attribution.randomization_run``: the sample-size rule).
    randomization_scans: int = 8
    #: Methods the model-randomization check (a gate of every finding) runs for; empty means
    #: the default method only. The cascade re-attributes each sampled scan once per step, so
    #: checking every voxel-map method costs ~10x the ablation's check on a CPU; a method left
    #: out reads "model randomization not run" and gets no finding.
    randomization_methods: list[str] = Field(default_factory=list)
    #: Rank correlation of trained vs randomized layer profiles at or above this flags a method.
    randomization_bar: float = 0.8
    #: Seeded random layer orders per held-out scan that each method's layer-deletion curve is
    #: compared with (``attribution.faithfulness``); 0 skips ``method_faithfulness``.
    faithfulness_orders: int = 4
    #: ROAD's imputation noise, relative to the channel's SD over the kept voxels.
    road_noise: float = 0.01
    #: Relative IG completeness error above this warns.
    completeness_tolerance: float = 0.05
    #: Subject-level bootstrap resamples for every CI.
    n_boot: int = 2000
    #: Scans the ranking and its verdict read (``all``, ``MP``, ``control``, ``MP_correct``).
    #: ``MP``: the question is which layer carries the model's evidence *for* pain, which a
    #: layer's logit drop measures on MP scans; on a control scan the planted tissue is normal,
    #: its drop is noise around the fill's own effect, and pooling it only dilutes the tests.
    ranking_group: str = "MP"
    #: torch CPU threads while attributing (0: leave torch's default). On a CPU shared with
    #: other busy processes, 1 avoids OpenMP threads waiting on each other (measured 4-8x
    #: faster per pass on a loaded 2-core machine).
    torch_threads: int = 0
    #: A scan's modes whose rows are already up to date for the champion (newer than its
    #: segmentation, every method present) are kept, not recomputed: a re-run after an
    #: interruption finishes a half-done scan. False recomputes them (after a change to the
    #: attribution code, which leaves the rows looking current).
    keep_current: bool = True

    @classmethod
    def for_grid(cls, grid: PreprocessConfig) -> SaliencyResource:
        """The defaults, with the occlusion bands of ``grid``: the same voxel counts on another
        grid are other boxes (on the GPU grid, 528 boxes 0.8 mm deep instead of 18 bands of
        2 mm, at 29x the passes)."""
        band = list(depth_bands(grid.target_shape, grid.target_spacing))
        return cls(occlusion_window=band, occlusion_stride=band)

    @classmethod
    def smoke(cls, torch_threads: int = 1) -> SaliencyResource:
        """The least work that still runs every method and verdict gate: for smoke runs and
        tests (2 IG steps, one occlusion box over the whole scan, 200 bootstrap draws, no
        ``method_faithfulness`` report), never for reported figures."""
        return cls(
            ig_steps=2,
            internal_batch_size=2,
            occlusion_window=[32, 36, 16],
            occlusion_stride=[32, 36, 16],
            randomization_scans=2,
            n_boot=200,
            preview_limit=1,
            faithfulness_orders=0,
            torch_threads=torch_threads,
        )

    def preview_methods(self) -> list[str]:
        """Methods whose mid-slice overlay is attached: the default, and, when that is the
        layer ablation (one number per layer, painted flat over it), also the first voxel-map
        method, which shows where inside a layer the evidence sits."""
        shown = [self.default_method]
        if self.default_method == ABLATION_METHOD:
            shown += [m for m in self.methods if m != ABLATION_METHOD][:1]
        return shown

    def attribution_settings(self) -> str:
        """The settings that decide an attribution's values, as one readable string: a stored
        result computed under other ones is stale (e.g. the randomization check's verdict)."""
        window = "x".join(map(str, self.occlusion_window))
        stride = "x".join(map(str, self.occlusion_stride))
        return (
            f"baseline={self.baseline} matching={self.reference_matching}"
            f" ig_steps={self.ig_steps} occlusion={window}/{stride} explainer={EXPLAINER_RULE}"
        )

    def faithfulness_settings(self) -> FaithfulnessSettings:
        """How ``method_faithfulness`` deletes layers (the batch follows ``batch_sizes``)."""
        return FaithfulnessSettings(
            n_random_orders=self.faithfulness_orders, road_noise=self.road_noise
        )

    def sanity_methods(self) -> list[str]:
        """The methods the randomization checks run for, in ``methods`` order: the configured
        ``randomization_methods``, else the default method."""
        chosen = self.randomization_methods or [self.default_method]
        return [m for m in self.methods if m in chosen]

    def validated(self) -> SaliencyResource:
        """Self, after checking names and sizes; the error says which setting to fix."""
        problems = []
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            problems.append(f"methods {self.methods} must be non-empty names from {list(METHODS)}")
        if self.default_method not in self.methods:
            problems.append(f"default_method {self.default_method!r} is not among methods")
        if not set(self.randomization_methods) <= set(self.methods):
            problems.append(f"randomization_methods {self.randomization_methods} not among methods")
        if self.baseline not in BASELINE_KINDS:
            problems.append(f"baseline {self.baseline!r} must be one of {BASELINE_KINDS}")
        if self.reference_matching not in REFERENCE_MATCHINGS:
            problems.append(
                f"reference_matching {self.reference_matching!r} must be one of"
                f" {REFERENCE_MATCHINGS}"
            )
        if len(self.occlusion_window) != 3 or len(self.occlusion_stride) != 3:
            problems.append("occlusion_window and occlusion_stride need 3 voxel counts each")
        if self.ranking_group not in SUBGROUPS:
            problems.append(f"ranking_group {self.ranking_group!r} must be one of {SUBGROUPS}")
        if self.torch_threads < 0:
            problems.append("torch_threads must be >= 0 (0: torch's default)")
        if self.faithfulness_orders < 0 or self.road_noise < 0:
            problems.append("faithfulness_orders and road_noise must be >= 0")
        if self.ig_steps < 1:
            problems.append("ig_steps must be >= 1")
        if min(self.internal_batch_size, self.perturbations_per_eval) < 0:
            problems.append("internal_batch_size and perturbations_per_eval must be >= 0 (0: auto)")
        if problems:
            raise ValueError("invalid SaliencyResource: " + "; ".join(problems))
        return self

    @contextmanager
    def threads(self) -> Iterator[None]:
        """Run the block with ``torch_threads`` CPU threads, restoring the previous count."""
        previous = torch.get_num_threads()
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def batch_sizes(self, device: torch.device | None = None) -> tuple[int, int]:
        """(IG steps, perturbed copies) per pass: as configured, or by device where 0.

        On a CPU, 2 per pass is the measured best (bench 1: 16 IG steps per pass cost 2.35x
        the per-sample floor, 18 occlusion copies 2.53x, as batches fall out of the caches);
        a GPU is fed everything at once (all IG steps, 18 copies).
        """
        cuda = (device or select_device("auto")).type == "cuda"
        return (
            self.internal_batch_size or (self.ig_steps if cuda else 2),
            self.perturbations_per_eval or (18 if cuda else 2),
        )

    def attribution_config(
        self, *, baseline: str | None = None, cohort_fill: np.ndarray | None = None
    ) -> AttributionConfig:
        internal_batch_size, perturbations_per_eval = self.batch_sizes()
        return AttributionConfig(
            baseline=baseline or self.baseline,
            cohort_fill=cohort_fill,
            ig_steps=self.ig_steps,
            internal_batch_size=internal_batch_size,
            occlusion_window=tuple(self.occlusion_window),  # type: ignore[arg-type]
            occlusion_stride=tuple(self.occlusion_stride),  # type: ignore[arg-type]
            perturbations_per_eval=perturbations_per_eval,
            cohort_matching=self.reference_matching,
        )
