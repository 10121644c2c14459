"""Problem sizes of a bench run: ``tiny`` (smoke test, seconds), ``default`` (this 2-core CPU,
about 35 minutes) and ``paper`` (one GPU, the paper-like resolution).

Grids are voxels along (lateral, depth, sweep). ``32 x 144 x 16`` is the platform's CPU working
grid (``PreprocessConfig.cpu``), ``128 x 352 x 48`` its GPU grid (``PreprocessConfig.gpu``) and
``64 x 128 x 128`` the reference grid of the performance issue's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class AttributionGrid:
    """One grid of the attribution benchmark.

    Args:
        shape: the scan grid.
        batch_sizes: batch sizes tried for the per-sample cost (forward+backward for Integrated
            Gradients, forward for occlusion and ablation); the fastest per sample is the floor.
            Bounded by memory and time: at 64 x 128 x 128 on the CPU the sweep stops at 4 (a
            copy with its activations holds ~300 MB; the issue measured 9 GB for 32, and from
            batch 4 up the per-sample cost only rose in every CPU measurement here).
        repeats: timed rounds here (None: the scale's ``repeats``).
        warmup: one untimed call of everything before the rounds; off for large grids on the
            CPU, where the batch-size sweep has already warmed the kernels and a call costs
            tens of seconds (the fastest round discards a cold first round anyway).
        platform_setting: also time IG and occlusion with the platform's own batch settings
            (``SaliencyResource``: 16 IG steps and 18 occlusion bands per pass); off where that
            needs more memory than the sweep allows.
    """

    shape: Shape
    batch_sizes: tuple[int, ...]
    repeats: int | None = None
    warmup: bool = True
    platform_setting: bool = True

    @property
    def label(self) -> str:
        return "x".join(map(str, self.shape))


@dataclass(frozen=True)
class Scale:
    """Every size a run uses; see ``SCALES`` for the three presets.

    Args:
        name / description: how the report names the scale.
        repeats: interleaved timed rounds per comparison (after one warm-up).
        attribution_grids: grids of benchmark 1.
        ig_steps: Integrated Gradients steps (the platform's ``SaliencyResource.ig_steps``).
        warehouse_scans: synthetic cohorts of benchmark 5 (rows = scans x 3 modes x 5 methods
            x 6 layers: 4,000 scans = 360k rows, 100,000 scans = 9M rows).
        warehouse_repeats: timed rounds per query.
        preprocess_scans: N of benchmark 6 (it runs N and 2N scans).
        preprocess_grid: ``cpu`` or ``gpu`` (the platform's presets) or ``tiny``.
        training_shape: grid of benchmark 7.
        training_samples: scans per training epoch.
        training_epochs: timed epochs (after one warm-up epoch).
        cohort_scans: N, the simulated scans taken through the platform's Dagster jobs for the
            saliency stage, orchestration and incremental-cost benchmarks (benchmark 4 adds one
            scan to these N): the issue's 200 at ``paper``; 16 at ``default``, where the saliency
            stage costs ~12 s a scan on 2 cores and 200 scans would take ~40 minutes.
        precision_subjects: subjects in each of benchmark 10's two simulated cohorts (the
            demo's 40: two scans each, one fifth of the development cohort validates).
        precision_max_epochs: caps benchmark 10's training (None: the classifier's defaults).
            Benchmark 12 trains its classifiers on cohorts of the same size and cap.
        attribution_precision_scans: external scans benchmark 12 explains in each precision.
        attribution_precision_conditions: benchmark 12's (cohort kind, input mode) pairs (None:
            every kind of ``attribution_precision.COHORTS`` with every mode).
        schedule_cohorts: development/external cohort pairs of benchmark 11 (of
            ``precision_subjects`` subjects each).
        schedule_max_epochs: caps benchmark 11's training (None: each schedule's own).
    """

    name: str
    description: str
    repeats: int
    attribution_grids: tuple[AttributionGrid, ...]
    ig_steps: int
    warehouse_scans: tuple[int, ...]
    warehouse_repeats: int
    preprocess_scans: int
    preprocess_grid: str
    training_shape: Shape
    training_samples: int
    training_epochs: int
    cohort_scans: int
    precision_subjects: int
    precision_max_epochs: int | None
    attribution_precision_scans: int
    attribution_precision_conditions: tuple[tuple[str, str], ...] | None
    schedule_cohorts: int
    schedule_max_epochs: int | None


#: This 2-core CPU, about 35 minutes; the other scales state only how they differ.
DEFAULT = Scale(
    name="default",
    description="the CPU working grid and the issue's 64x128x128 grid on this 2-core CPU",
    repeats=3,
    attribution_grids=(
        AttributionGrid((32, 144, 16), (1, 2, 4, 8, 16)),
        # One timed round at the large grid (a round costs ~2 min here; keeps the run < 20 min).
        AttributionGrid((64, 128, 128), (1, 2, 4), repeats=1, warmup=False, platform_setting=False),
    ),
    ig_steps=16,
    warehouse_scans=(4_000, 100_000),
    warehouse_repeats=7,
    preprocess_scans=24,
    preprocess_grid="cpu",
    training_shape=(32, 144, 16),
    training_samples=32,
    training_epochs=2,
    cohort_scans=16,
    precision_subjects=40,
    precision_max_epochs=None,
    attribution_precision_scans=8,
    attribution_precision_conditions=None,
    schedule_cohorts=2,
    schedule_max_epochs=None,
)

SCALES: dict[str, Scale] = {
    "tiny": replace(
        DEFAULT,
        name="tiny",
        description="smoke test: every code path at toy sizes, seconds; figures mean nothing",
        repeats=1,
        attribution_grids=(AttributionGrid((16, 48, 8), (1, 2)),),
        ig_steps=4,
        warehouse_scans=(40,),
        warehouse_repeats=2,
        preprocess_scans=2,
        preprocess_grid="tiny",
        training_shape=(16, 48, 8),
        training_samples=4,
        training_epochs=1,
        cohort_scans=4,
        precision_subjects=10,
        precision_max_epochs=2,
        attribution_precision_scans=2,
        attribution_precision_conditions=(("half_effect", "bmode_swe"),),
        schedule_cohorts=1,
        schedule_max_epochs=2,
    ),
    "default": DEFAULT,
    "paper": replace(
        DEFAULT,
        name="paper",
        description="one GPU: the paper-like GPU grid 128x352x48 beside the CPU grid",
        repeats=5,
        attribution_grids=(
            AttributionGrid((32, 144, 16), (1, 2, 4, 8, 16, 32)),
            AttributionGrid((128, 352, 48), (1, 2, 4, 8, 16)),
        ),
        preprocess_scans=50,
        preprocess_grid="gpu",
        training_shape=(128, 352, 48),
        cohort_scans=200,
    ),
}
