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
from bench.data import preprocess_config
from bench.profiling import torch_profile
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.data import Item, Scan
from layer_platform.classification.metrics import auc
from layer_platform.classification.modes import make_items
from layer_platform.classification.training import (
    TrainedClassifier,
    predict_proba,
    train_classifier,
)
from layer_platform.compute import Precision, training_precision
from layer_platform.imaging.preprocess import preprocess_scan
from layer_platform.simulation.config import SimulationConfig
from layer_platform.simulation.scan import simulate_scan
from layer_platform.simulation.subjects import SIDES

BENCHMARK = "precision"
FASTER = Target("ratio", ">=", 2.0)
SAME_AUC = Target("value", "<=", 0.02)


def _cohort(ctx: Context, seed: int) -> list[Item]:
    """A simulated cohort's B-mode items on the scale's training grid."""
    config = SimulationConfig(n_subjects=ctx.scale.precision_subjects, seed=seed)
    grid = preprocess_config(ctx.scale.training_shape)
    scans = []
    for subject in range(config.n_subjects):
        for side in SIDES:
            sim = simulate_scan(config, subject, side)
            prep = preprocess_scan(sim.bmode, None, None, grid)
            plan = sim.plan
            scans.append(
                Scan(plan.scan_id, plan.subject.subject_id, plan.subject.label, prep.bmode)
            )
    return make_items(scans, "bmode")


def _early_stopping_split(items: Sequence[Item]) -> tuple[list[Item], list[Item]]:
    """Training and validation items: every fifth subject of each label validates."""
    held_out = set()
    for label in sorted({i.label for i in items}):
        subjects = sorted({i.subject_id for i in items if i.label == label})
        held_out.update(subjects[::5])
    return (
        [i for i in items if i.subject_id not in held_out],
        [i for i in items if i.subject_id in held_out],
    )


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
    shape = "x".join(map(str, ctx.scale.training_shape))
    ctx.log(f"  simulating two cohorts of {ctx.scale.precision_subjects} subjects at {shape}")
    development = _cohort(ctx, ctx.seed)
    external = _cohort(ctx, ctx.seed + 1)
    train, val = _early_stopping_split(development)
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
        arm: _profile(ctx, f"precision_{arm}_{shape}.txt", train, config, precision)
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
            f"{BENCHMARK}/classifier_{shape}/training_samples_per_s",
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
            f"{BENCHMARK}/classifier_{shape}/external_auc_difference",
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
