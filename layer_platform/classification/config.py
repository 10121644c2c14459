"""Every knob of classifier training in one frozen, validated, loggable object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from layer_platform.compute import DEVICE_CHOICES

ARCHITECTURES: tuple[str, ...] = ("small_cnn", "densenet121", "resnet10")
NORMS: tuple[str, ...] = ("batch", "instance")
POOLINGS: tuple[str, ...] = ("avg", "max", "avgmax")
THRESHOLD_POLICIES: tuple[str, ...] = ("youden", "fixed")
FINAL_MODELS: tuple[str, ...] = ("fold_ensemble", "refit")
LR_SCHEDULES: tuple[str, ...] = ("constant", "one_cycle")


@dataclass(frozen=True)
class ClassifierConfig:
    """Training configuration; defaults suit ~(32, 96, 16) voxel volumes on a CPU.

    Args:
        architecture: ``small_cnn`` (default; fits tens of subjects) or a MONAI ``densenet121`` /
            ``resnet10`` for comparison.
        channels: small_cnn feature widths, one conv block each; blocks after the first halve
            every axis, so the last block (the Grad-CAM target) is 2**(n-1) times coarser.
        norm: small_cnn normalisation. ``batch`` keeps absolute intensity and stiffness levels,
            which instance norm removes per scan; on a simulated 120-subject cohort batch norm
            gave the higher held-out AUC in every mode (SWE 0.68 vs 0.44).
        dropout: before the final linear layer.
        pooling: small_cnn global pooling before the logit: ``max`` (default), ``avg`` or
            ``avgmax`` (both, concatenated). Average pooling confounds a thin layer's brightness
            with its thickness (``GlobalPool3d``); max pooling lifted held-out AUC from 0.70 to
            0.83 on a planted deep-fascia driver (see the README).
        min_epochs / max_epochs / patience: epochs before ``min_epochs`` are warm-up (never
            kept as best); then training stops after ``patience`` epochs without a better
            validation AUC. The default runs the whole 12-epoch cycle (patience >= max_epochs)
            and keeps the best epoch from the 6th on.
        lr / weight_decay: AdamW; ``lr`` is the peak of a ``one_cycle`` schedule.
        lr_schedule: ``one_cycle`` (default) warms up to ``lr`` and anneals towards zero over
            ``max_epochs`` (``torch.optim.lr_scheduler.OneCycleLR``, stepped per batch), so the
            last epochs settle instead of swinging; ``constant`` keeps ``lr`` throughout (the
            earlier default, with 10/60/10 epochs). Chosen on calibration cohorts: 12 one-cycle
            epochs against 26.8 constant ones on average, 0.42x the training time, at a mean
            external AUC of 0.944 against 0.938 (docs/results/training-schedule.md).
        batch_size: training batch size.
        seed: seeds weights, shuffling and augmentation.
        flip_lateral / flip_sweep: random flips along axes where anatomy is symmetric enough;
            depth is never flipped (the layer order skin → muscle is the signal).
        intensity_jitter: per-channel multiplicative jitter ±this fraction (0, the default,
            disables it); it keeps SWE's invalid voxels at exactly 0. Off by default: the pain
            evidence is a level shift of one layer against the others, and a ±10 % jitter is as
            large as that shift (held-out AUC 0.83 with it, 0.96 without; see the README).
        modality_dropout: for a two-channel input (``bmode_swe``), the chance that a training
            sample has one channel, drawn at random, replaced by "no signal" (0, what SWE's
            invalid voxels already read). Without it a two-channel network may read a driver in
            one modality for only some subjects and lean on the other channel's incidental
            features for the rest, which hides the driver from per-subject layer tests;
            dropping whole modalities (ModDrop, Neverova et al. 2015) makes each channel's
            evidence stand on its own. Single-channel inputs are never touched. Off by
            default: on four calibration cohorts it recovered no more ``bmode_swe`` drivers
            (docs/results/modality-dropout-calibration-on.md).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        amp: mixed precision where the device multiplies low precision fast: float16 on CUDA,
            bfloat16 on CPUs with AVX512-BF16 or AMX (``compute.training_precision``); float32
            elsewhere or when False. Predictions and attributions always run in float32.
        final_model: the model registered and scored on the held-out subjects.
            ``fold_ensemble`` (default, ``small_cnn`` only) averages the logits of the
            cross-validation fold models, each early-stopped on its own validation subjects;
            ``refit`` trains one more model on every development subject for the folds' median
            best epoch. Scored on another cohort's 80 scans, the ensemble was the better final
            model (see the README); it costs no extra training, but each attribution runs every
            member.
        threshold_policy: ``youden`` picks the operating threshold on out-of-fold predictions;
            ``fixed`` uses ``fixed_threshold``. Either way it is applied unchanged to test.
        n_bootstrap / ci_level: subject-level bootstrap for AUC confidence intervals.
        progress: show tqdm bars (off in pipelines, where callbacks report progress).
    """

    architecture: str = "small_cnn"
    channels: tuple[int, ...] = (16, 32, 48, 64)
    norm: str = "batch"
    dropout: float = 0.2
    pooling: str = "max"
    min_epochs: int = 6
    max_epochs: int = 12
    patience: int = 12
    lr: float = 1e-3
    lr_schedule: str = "one_cycle"
    weight_decay: float = 1e-4
    batch_size: int = 8
    seed: int = 0
    flip_lateral: bool = True
    flip_sweep: bool = True
    intensity_jitter: float = 0.0
    modality_dropout: float = 0.0
    device: str = "auto"
    amp: bool = True
    final_model: str = "fold_ensemble"
    threshold_policy: str = "youden"
    fixed_threshold: float = 0.5
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    progress: bool = False

    def __post_init__(self) -> None:
        choices = {
            "architecture": (self.architecture, ARCHITECTURES),
            "norm": (self.norm, NORMS),
            "pooling": (self.pooling, POOLINGS),
            "threshold_policy": (self.threshold_policy, THRESHOLD_POLICIES),
            "final_model": (self.final_model, FINAL_MODELS),
            "lr_schedule": (self.lr_schedule, LR_SCHEDULES),
            "device": (self.device, DEVICE_CHOICES),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
        checks = {
            "channels must be non-empty and positive": bool(self.channels)
            and all(c > 0 for c in self.channels),
            "dropout must be in [0, 1)": 0 <= self.dropout < 1,
            "need 1 <= min_epochs <= max_epochs": 1 <= self.min_epochs <= self.max_epochs,
            "patience must be >= 1": self.patience >= 1,
            "lr must be > 0": self.lr > 0,
            "weight_decay must be >= 0": self.weight_decay >= 0,
            "batch_size must be >= 1": self.batch_size >= 1,
            "intensity_jitter must be in [0, 1)": 0 <= self.intensity_jitter < 1,
            "modality_dropout must be in [0, 1)": 0 <= self.modality_dropout < 1,
            "fixed_threshold must be in [0, 1]": 0 <= self.fixed_threshold <= 1,
            "n_bootstrap must be >= 100": self.n_bootstrap >= 100,
            "ci_level must be in (0, 1)": 0 < self.ci_level < 1,
            "final_model fold_ensemble needs architecture small_cnn (else use refit)": (
                self.final_model != "fold_ensemble" or self.architecture == "small_cnn"
            ),
        }
        problems = [message for message, ok in checks.items() if not ok]
        if problems:
            raise ValueError("invalid ClassifierConfig: " + "; ".join(problems))

    def to_params(self) -> dict[str, str | int | float | bool]:
        """Flat scalar parameters for an experiment tracker (tuples become strings)."""
        return {
            key: ",".join(map(str, value)) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ClassifierConfig:
        """The config :meth:`to_params` logged (as a tracker returns it: every value a string),
        so a model's own training settings can be repeated; other keys are ignored."""

        def parse(text: str, default: object) -> object:
            if isinstance(default, bool):
                return text == "True"
            if isinstance(default, tuple):
                return tuple(int(part) for part in text.split(","))
            return type(default)(text)

        return cls(
            **{f.name: parse(params[f.name], f.default) for f in fields(cls) if f.name in params}
        )
