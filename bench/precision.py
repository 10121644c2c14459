"""Benchmark 10: the classifier's training precision, its speed and its external-cohort AUC.

The platform's classifier (``train_classifier``, ``ClassifierConfig()``, B-mode) is trained twice
on one simulated development cohort: in float32 with channels-first volumes (the baseline: how
it trained before ``training_precision``) and in the platform's training precision (bfloat16
autocast with channels-last volumes on a CPU with bf16 units, float16 on CUDA). Both are scored
in float32 on an external cohort simulated with another seed, so the AUC is not the one early
stopping saw.

Targets: training samples/s >= 2x the baseline's, and an external AUC within 0.02 of the
baseline's. A torch.profiler table of one epoch of each is written beside the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from bench.core import Context, Result, Target, measured
from bench.data import classifier_items, early_stopping_split
from bench.profiling import torch_profile
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.data import Item
from layer_platform.classification.metrics import auc
from layer_platform.classification.training import (
    TrainedClassifier,
    predict_proba,
    train_classifier,
)
from layer_platform.compute import Precision, training_precision
from layer_platform.simulation.config import SimulationConfig

BENCHMARK = "precision"
FASTER = Target("ratio", ">=", 2.0)
SAME_AUC = Target("value", "<=", 0.02)


def _samples_per_s(trained: TrainedClassifier, n_train: int) -> float:
    return n_train * len(trained.history) / sum(r.seconds for r in trained.history)


def _profile(ctx: Context, name: str, train: Sequence[Item], config: ClassifierConfig,
             precision: Precision) -> str:  # fmt: skip
    """torch.profiler table of one training epoch (with its validation pass) in ``precision``."""
    one_epoch = replace(config, min_epochs=1, max_epochs=1)
    layout = "channels-last" if precision.channels_last else "channels-first"
    return torch_profile(
        ctx,
        name,
        f"one classifier training epoch, {precision.name}, {layout}",
        lambda: train_classifier(train, train, one_epoch, precision=precision),
    )


def run(ctx: Context) -> list[Result]:
    n, grid = ctx.scale.precision_subjects, "x".join(map(str, ctx.scale.training_shape))
    ctx.log(f"  simulating two cohorts of {n} subjects at {grid}")
    shape = ctx.scale.training_shape
    development = classifier_items(SimulationConfig(n_subjects=n, seed=ctx.seed), shape, "bmode")
    external = classifier_items(SimulationConfig(n_subjects=n, seed=ctx.seed + 1), shape, "bmode")
    train, val = early_stopping_split(development)
    config = ClassifierConfig(device=ctx.device.type, seed=ctx.seed)
    if ctx.scale.precision_max_epochs is not None:
        config = replace(config, min_epochs=1, max_epochs=ctx.scale.precision_max_epochs)
    arms = {
        "baseline": Precision(ctx.device, None, channels_last=False),
        "platform": training_precision(ctx.device, config.amp),
    }
    speed, external_auc, epochs, ran = {}, {}, {}, {}
    for arm, precision in arms.items():
        ctx.log(f"  training the classifier: {arm} ({precision.name})")
        trained = train_classifier(train, val, config, precision=precision)
        ran[arm] = trained.precision
        speed[arm] = _samples_per_s(trained, len(train))
        epochs[arm] = len(trained.history)
        proba = predict_proba(trained.model, external, trained.device)
        external_auc[arm] = auc(np.array([i.y for i in external]), proba)
    profiles = {
        arm: _profile(ctx, f"precision_{arm}_{grid}.txt", train, config, precision)
        for arm, precision in arms.items()
    }
    platform = arms["platform"]
    setup = (
        f"B-mode classifier, ClassifierConfig() defaults, trained on {len(train)} scans with "
        f"early stopping on {len(val)} (simulated, seed {ctx.seed}); baseline float32 "
        f"channels-first, platform {platform.name} "
        f"{'channels-last' if platform.channels_last else 'channels-first'}."
    )
    delta = abs(external_auc["platform"] - external_auc["baseline"])
    rows = [
        measured(
            BENCHMARK,
            f"{BENCHMARK}/classifier_{grid}/training_samples_per_s",
            value=speed["platform"],
            unit="samples/s",
            baseline=speed["baseline"],
            ratio=speed["platform"] / speed["baseline"],
            ratio_means="value / baseline (training samples/s over float32 channels-first)",
            target=FASTER,
            notes=f"{setup} Samples/s over every epoch run, validation passes included "
            f"({epochs['baseline']} epochs baseline, {epochs['platform']} platform). "
            f"Precision that trained the kept model: {ran['platform']} (float32 means the "
            f"mixed-precision run diverged and was trained again).",
        ),
        measured(
            BENCHMARK,
            f"{BENCHMARK}/classifier_{grid}/external_auc_difference",
            value=delta,
            unit="AUC",
            baseline=external_auc["baseline"],
            ratio=None,
            ratio_means="",
            target=SAME_AUC,
            notes=f"{setup} |AUC(platform) - AUC(baseline)| on an external cohort of "
            f"{len(external)} scans (seed {ctx.seed + 1}): platform "
            f"{external_auc['platform']:.3f}, baseline {external_auc['baseline']:.3f}.",
        ),
    ]
    for row in rows:
        row.profile = profiles["platform"]
    rows[0].notes += f" Baseline profile: [{profiles['baseline']}]({profiles['baseline']})."
    return rows
