"""Benchmark 11: the classifier's learning-rate schedule, its training time and external AUC.

Per cohort (a development cohort simulated with one seed, an external one with another) and
input mode, the platform's classifier is trained once per schedule, with early stopping on every
fifth subject as a cross-validation fold does, in the platform's training precision, and scored
on the external cohort, so the AUC is not the one early stopping saw.

``make bench`` compares the platform's default (``ClassifierConfig()``) with the constant
schedule it replaced (``BASELINE``) on ``Scale.schedule_cohorts``: targets, training time <=
0.67x the baseline's (1.5x faster) with the mean external AUC within 0.02 of it.
``python -m bench.schedule`` runs every candidate in ``ARMS`` on the cohorts it is given and
writes the table the default was chosen from (docs/results/training-schedule.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from bench.core import Context, Result, Target, measured
from bench.data import classifier_items, early_stopping_split
from bench.scales import Shape
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.metrics import auc
from layer_platform.classification.training import predict_proba, train_classifier
from layer_platform.compute import select_device
from layer_platform.simulation.config import SimulationConfig

BENCHMARK = "schedule"
FASTER = Target("ratio", "<=", 0.67)
SAME_AUC = Target("value", "<=", 0.02)
#: The schedule the platform trained with before one-cycle: constant lr, stop 10 epochs past best.
BASELINE: Mapping[str, object] = {
    "lr_schedule": "constant",
    "lr": 1e-3,
    "min_epochs": 10,
    "max_epochs": 60,
    "patience": 10,
}
#: Candidates compared by ``python -m bench.schedule`` (overrides of ``BASELINE``).
ARMS: Mapping[str, Mapping[str, object]] = {
    "constant-p10": {},
    "constant-p5": {"patience": 5},
    "one-cycle-20": {"lr_schedule": "one_cycle", "max_epochs": 20, "patience": 20},
    "one-cycle-12": {
        "lr_schedule": "one_cycle",
        "max_epochs": 12,
        "min_epochs": 6,
        "patience": 12,
    },
}
#: The external cohort's seed is the development seed plus this.
EXTERNAL_OFFSET = 500


@dataclass(frozen=True)
class Cohort:
    """A development seed and its drivers; the external cohort shares the drivers."""

    seed: int
    bmode_driver: str | None = "deep_fascia"
    swe_driver: str | None = "muscle"

    def simulation(self, n_subjects: int, external: bool) -> SimulationConfig:
        return SimulationConfig(
            n_subjects=n_subjects,
            seed=self.seed + (EXTERNAL_OFFSET if external else 0),
            bmode_driver=self.bmode_driver,
            swe_driver=self.swe_driver,
        )


@dataclass(frozen=True)
class Trial:
    """One schedule trained on one cohort and mode."""

    arm: str
    cohort: int
    mode: str
    epochs: int
    best_epoch: int
    seconds: float
    external_auc: float


def trials(
    cohorts: Sequence[Cohort],
    modes: Sequence[str],
    arms: Mapping[str, ClassifierConfig],
    *,
    n_subjects: int,
    shape: Shape,
    log: Callable[[str], None] = print,
) -> list[Trial]:
    """Train every arm on every cohort and mode; wall seconds include validation passes."""
    done = []
    for cohort in cohorts:
        for mode in modes:
            development = classifier_items(cohort.simulation(n_subjects, False), shape, mode)
            external = classifier_items(cohort.simulation(n_subjects, True), shape, mode)
            train, val = early_stopping_split(development)
            y_external = np.array([item.y for item in external])
            for arm, config in arms.items():
                started = time.perf_counter()
                trained = train_classifier(train, val, config)
                seconds = time.perf_counter() - started
                proba = predict_proba(trained.model, external, trained.device)
                trial = Trial(
                    arm,
                    cohort.seed,
                    mode,
                    len(trained.history),
                    trained.best_epoch,
                    seconds,
                    auc(y_external, proba),
                )
                log(f"  seed {cohort.seed} {mode} {arm}: {trial}")
                done.append(trial)
    return done


def _configs(names: Sequence[str], device: str, seed: int) -> dict[str, ClassifierConfig]:
    base = replace(ClassifierConfig(device=device, seed=seed), **BASELINE)
    return {name: replace(base, **ARMS[name]) for name in names}


def run(ctx: Context) -> list[Result]:
    arms = {
        "baseline": replace(ClassifierConfig(device=ctx.device.type, seed=ctx.seed), **BASELINE),
        "platform": ClassifierConfig(device=ctx.device.type, seed=ctx.seed),
    }
    if ctx.scale.schedule_max_epochs is not None:  # the smoke test: a couple of epochs each
        arms = {
            name: replace(config, min_epochs=1, max_epochs=ctx.scale.schedule_max_epochs)
            for name, config in arms.items()
        }
    cohorts = [Cohort(ctx.seed + k) for k in range(ctx.scale.schedule_cohorts)]
    done = trials(
        cohorts,
        ["bmode"],
        arms,
        n_subjects=ctx.scale.precision_subjects,
        shape=ctx.scale.training_shape,
        log=ctx.log,
    )
    seconds = {arm: sum(t.seconds for t in done if t.arm == arm) for arm in arms}
    mean_auc = {arm: float(np.mean([t.external_auc for t in done if t.arm == arm])) for arm in arms}
    epochs = {arm: [t.epochs for t in done if t.arm == arm] for arm in arms}
    setup = (
        f"B-mode classifier on {len(cohorts)} simulated cohort(s) of"
        f" {ctx.scale.precision_subjects} subjects (seeds from {ctx.seed}), early stopping on"
        f" every fifth subject, scored on external cohorts (seed + {EXTERNAL_OFFSET}); baseline"
        f" constant lr, patience 10 (epochs {epochs['baseline']}); platform"
        f" {arms['platform'].lr_schedule}, {arms['platform'].max_epochs} epochs at most"
        f" (epochs {epochs['platform']})."
    )
    grid = "x".join(map(str, ctx.scale.training_shape))
    delta = abs(mean_auc["platform"] - mean_auc["baseline"])
    return [
        measured(
            BENCHMARK,
            f"{BENCHMARK}/classifier_{grid}/training_seconds",
            value=seconds["platform"],
            unit="s",
            baseline=seconds["baseline"],
            ratio=seconds["platform"] / seconds["baseline"],
            ratio_means="platform schedule's training time / constant schedule's",
            target=FASTER,
            notes=setup,
        ),
        measured(
            BENCHMARK,
            f"{BENCHMARK}/classifier_{grid}/external_auc_difference",
            value=delta,
            unit="AUC",
            baseline=None,
            ratio=None,
            ratio_means="|mean external AUC, platform - baseline|",
            target=SAME_AUC,
            notes=f"mean external AUC {mean_auc['platform']:.3f} (platform) vs"
            f" {mean_auc['baseline']:.3f} (baseline). {setup}",
        ),
    ]


def _table(done: Sequence[Trial], arms: Sequence[str]) -> str:
    """Per arm: mean external AUC, its worst drop against the baseline, epochs and time."""
    first = arms[0]
    base = {(t.cohort, t.mode): t for t in done if t.arm == first}
    lines = [
        "| schedule | mean external AUC | worst drop vs first | mean epochs | time vs first |",
        "|---|---|---|---|---|",
    ]
    for arm in arms:
        mine = [t for t in done if t.arm == arm]
        drops = [base[(t.cohort, t.mode)].external_auc - t.external_auc for t in mine]
        time_ratio = sum(t.seconds for t in mine) / sum(t.seconds for t in base.values())
        lines.append(
            f"| {arm} | {np.mean([t.external_auc for t in mine]):.3f} | {max(drops):+.3f} |"
            f" {np.mean([t.epochs for t in mine]):.1f} | {time_ratio:.2f}x |"
        )
    lines += ["", "| seed | mode | schedule | epochs | best epoch | seconds | external AUC |"]
    lines.append("|---|---|---|---|---|---|---|")
    lines += [
        f"| {t.cohort} | {t.mode} | {t.arm} | {t.epochs} | {t.best_epoch} | {t.seconds:.0f} |"
        f" {t.external_auc:.3f} |"
        for t in done
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="compare classifier learning-rate schedules")
    parser.add_argument("--seeds", required=True, help="development seeds, comma-separated")
    parser.add_argument("--bmode-drivers", required=True, help="one per seed ('none': no driver)")
    parser.add_argument("--swe-drivers", required=True, help="one per seed ('none': no driver)")
    parser.add_argument("--modes", default="bmode")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--shape", default="32,144,16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="markdown table written here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    def driver(name: str) -> str | None:
        return None if name == "none" else name

    cohorts = [
        Cohort(int(seed), driver(b), driver(s))
        for seed, b, s in zip(
            args.seeds.split(","),
            args.bmode_drivers.split(","),
            args.swe_drivers.split(","),
            strict=True,
        )
    ]
    names = args.arms.split(",")
    done = trials(
        cohorts,
        args.modes.split(","),
        _configs(names, select_device("auto").type, seed=0),
        n_subjects=args.subjects,
        shape=tuple(int(n) for n in args.shape.split(",")),
    )
    args.out.write_text(
        f"Produced by `python -m bench.schedule {' '.join(argv or [])}`\n\n"
        + _table(done, names)
        + "\n"
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
