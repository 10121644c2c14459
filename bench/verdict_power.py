"""Study: gate 4's false-claim rate and power on simulated subject x layer scores.

A layer stands out when it beats every other layer in paired one-sided Wilcoxon tests, with
Holm's correction over every candidate claim (``statistics.verdicts.layer_family``: 21 per view,
six single layers and 15 pairs). Holm holds the family-wise error under any dependence; the
cost is power. This study measures both on the product's own code, with subjects' layer scores
drawn from known means, so every claim can be checked against the truth:

- **false claims** (null cells: no layer, or no single layer, truly beats every other): the share
  of repetitions whose finding is false in the view it names;
- **power** (driver cells: one layer above the runner-up by ``d`` standard deviations of their
  paired difference, the other four ``2d`` below it): the share whose finding is exactly the
  planted layer.

Beside the product rule, three references computed from the same raw tests, per view (and
Bonferroni over views):

- ``any dependence``: the single-layer claim at alpha/8, the pair at alpha/20. A false single
  claim needs one of at most six null tests to reject (some layer above the true best, or the
  best above a layer tied with it), a false pair one of at most five more (a layer above the
  true second, or the second above a layer tied with it), so the rate is at most
  6/8 + 5/20 = 1 times alpha whatever the tests' dependence;
- ``location``: the single claim at alpha/2, the pair at alpha/3. In an exchangeable location
  model the least favourable configuration is two layers tied on top, where either can win:
  about 2 alpha without the halving. It holds only under that model;
- ``unadjusted``: every claim at alpha (the power no correction exceeds, and its false claims).

``python -m bench.verdict_power --out F`` writes the page (docs/results/verdict-power.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from bench.machine import machine_facts
from bench.stored_cohorts import cohort_homes, stored_modes
from layer_platform.labels import TISSUE_LAYERS
from layer_platform.saliency_names import ABLATION_METHOD
from layer_platform.statistics.gates import ALPHA
from layer_platform.statistics.report import markdown_table
from layer_platform.statistics.verdicts import WHOLE_LAYER, layer_family

LAYERS: tuple[str, ...] = tuple(layer.key for layer in TISSUE_LAYERS)
METHOD = ABLATION_METHOD
#: The planted layer and its runner-up in driver cells (any two would do: layers are exchangeable).
PLANTED, RUNNER_UP = "deep_fascia", "deep_fat"
RULES: tuple[str, ...] = ("product (Holm)", "any dependence", "location", "unadjusted")


@dataclass(frozen=True)
class Cell:
    """One simulated setting: the layers' true means (in units of the paired difference's SD)
    per view, the noise, and the number of subjects (the subgroup ranked, MP by default)."""

    name: str
    means: tuple[tuple[float, ...], ...]
    noise: str
    n: int

    @property
    def is_null(self) -> bool:
        return not self.name.startswith("driver")


def _noise(kind: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit-variance layer noise: ``normal``; ``t3`` (heavy tails); ``unequal`` (layer SDs from
    0.5 to 2, the runner-up's the largest)."""
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "t3":
        return rng.standard_t(3, shape) / np.sqrt(3.0)
    if kind == "unequal":
        return rng.standard_normal(shape) * np.array([0.5, 0.8, 1.0, 2.0, 1.2, 1.5])
    raise ValueError(f"unknown noise {kind!r}")


def simulate(cell: Cell, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Per view, the long table of one cohort: a subject effect shared by the layers (it cancels
    in paired tests) plus layer noise scaled so the paired difference has SD 1."""
    views = {}
    for index, means in enumerate(cell.means):
        values = (
            np.asarray(means)
            + 3.0 * rng.standard_normal((cell.n, 1))
            + _noise(cell.noise, rng, (cell.n, len(LAYERS))) / np.sqrt(2.0)
        )
        views[WHOLE_LAYER if index == 0 else f"channel{index}"] = pd.DataFrame(
            {
                "scan_id": np.repeat([f"s{i}" for i in range(cell.n)], len(LAYERS)),
                "subject_id": np.repeat([f"p{i}" for i in range(cell.n)], len(LAYERS)),
                "layer": np.tile(LAYERS, cell.n),
                "value": values.ravel(),
            }
        )
    return views


Claim = tuple[str, tuple[str, ...]]  # (view, layers), or ("", ()) for no claim


def _scaled(raw: Mapping[Claim, float], single: float, pair: float, n_views: int) -> Claim:
    """The top layer alone at alpha / (single x views), else its best pair at alpha / (pair x
    views), else no claim."""
    for size, factor in ((1, single), (2, pair)):
        best = min(((p, c) for c, p in raw.items() if len(c[1]) == size), default=None)
        if best is not None and best[0] * factor * n_views < ALPHA:
            return best[1]
    return ("", ())


def judge(views: Mapping[str, pd.DataFrame]) -> dict[str, Claim]:
    """Each rule's finding on one cohort: the product's ``layer_family`` and the references."""
    family = layer_family({METHOD: views})
    tested = family.tested[METHOD]
    if tested is None:
        return dict.fromkeys(RULES, ("", ()))
    finding = family.finding(METHOD)
    product = ("", ()) if finding is None else (finding.view, tuple(sorted(finding.layers)))
    raw = {
        (view, tuple(sorted(claim))): p
        for view, claims in family.raw[METHOD].items()
        for claim, p in claims.items()
    }
    return {
        RULES[0]: product,
        RULES[1]: _scaled(raw, 8, 20, len(views)),
        RULES[2]: _scaled(raw, 2, 3, len(views)),
        RULES[3]: _scaled(raw, 1, 1, 1),
    }


def _true(cell: Cell, claim: Claim) -> bool:
    """Every claimed layer's true mean exceeds every other layer's, in the claim's view."""
    view, layers = claim
    index = 0 if view == WHOLE_LAYER else int(view.removeprefix("channel"))
    means = dict(zip(LAYERS, cell.means[index], strict=True))
    outside = [means[b] for b in LAYERS if b not in layers]
    return all(means[a] > max(outside) for a in layers)


def _outcome(cell: Cell, claim: Claim) -> bool:
    """Null cells count false claims; driver cells count findings of exactly the planted layer."""
    if cell.is_null:
        return bool(claim[1]) and not _true(cell, claim)
    return claim[1] == (PLANTED,) and _true(cell, claim)


def _cell_rows(job: tuple[int, Cell, int, int]) -> list[dict[str, object]]:
    """One cell's rows: per rule, the share of ``reps`` cohorts that made a false claim (null
    cells) or found the planted layer (driver cells), with its binomial standard error."""
    number, cell, reps, seed = job
    rng = np.random.default_rng([seed, number])
    hits = dict.fromkeys(RULES, 0)
    for _ in range(reps):
        for rule, claim in judge(simulate(cell, rng)).items():
            hits[rule] += _outcome(cell, claim)
    return [
        {
            "cell": cell.name,
            "noise": cell.noise,
            "views": len(cell.means),
            "subjects": cell.n,
            "rule": rule,
            "reps": reps,
            "share": count / reps,
            "se": float(np.sqrt(count / reps * (1 - count / reps) / reps)),
        }
        for rule, count in hits.items()
    ]


def measure(
    cells: Sequence[Cell], null_reps: int, power_reps: int, *, seed: int = 0, workers: int = 1
) -> pd.DataFrame:
    """Every cell's rows (``_cell_rows``); each cell draws from its own seeded generator, so the
    figures do not depend on ``workers``."""
    jobs = [(i, c, null_reps if c.is_null else power_reps, seed) for i, c in enumerate(cells)]
    with ProcessPoolExecutor(workers) as pool:
        done = tqdm(pool.map(_cell_rows, jobs), total=len(jobs), desc="verdict power", unit="cell")
        return pd.DataFrame([row for rows in done for row in rows])


def _null_means(name: str) -> tuple[float, ...]:
    tied = {"no driver": 0, "two tied on top": 2, "three tied on top": 3}[name]
    return tuple(1.5 if i < tied else 0.0 for i in range(len(LAYERS)))


def _driver_means(d: float) -> tuple[float, ...]:
    means = dict.fromkeys(LAYERS, -d)
    means[PLANTED], means[RUNNER_UP] = d, 0.0
    return tuple(means[x] for x in LAYERS)


def cells(subjects: Sequence[int], effects: Sequence[float]) -> list[Cell]:
    """Nulls under every noise with one and three views (all views null); drivers under normal
    noise with one view, and with three where the second shares the driver and the third is
    null (a two-channel input whose driver lives in one modality)."""
    found = []
    for name in ("no driver", "two tied on top", "three tied on top"):
        for noise in ("normal", "t3", "unequal"):
            for n_views in (1, 3):
                means = (_null_means(name),) * n_views
                found += [
                    Cell(name, means, noise, n) for n in sorted({min(subjects), max(subjects)})
                ]
    for d in effects:
        one = (_driver_means(d),)
        three = (*one, _driver_means(d), _null_means("no driver"))
        for means in (one, three):
            found += [Cell(f"driver d={d:g}", means, "normal", n) for n in subjects]
    return found


def rejudge(folders: Sequence[Path]) -> pd.DataFrame:
    """Every input mode of the cohorts ``layer-platform validate`` stored under ``folders``,
    judged by each rule on its stored evidence: the layers each names ("blocked" where gate 1,
    2 or 3 stops every rule), and whether that is quiet, planted layers only, or another layer."""
    rows = []
    for home in tqdm(cohort_homes(list(folders)), desc="stored cohorts", unit="cohort"):
        for found in stored_modes(home):
            views = (found.views or {}).get(METHOD)
            claims = judge(views) if views else dict.fromkeys(RULES, None)
            row = {
                "cohort": found.cohort,
                "mode": found.mode,
                "planted": ",".join(found.planted) or "none",
            }
            for rule, claim in claims.items():
                row[rule] = "blocked" if claim is None else ",".join(claim[1]) or "-"
                row[f"{rule}: outcome"] = _stored_outcome(claim, found.planted)
            rows.append(row)
    return pd.DataFrame(rows)


def _stored_outcome(claim: Claim | None, planted: Sequence[str]) -> str:
    if claim is None or not claim[1]:
        return "quiet"
    return "planted" if set(claim[1]) <= set(planted) else "other layer"


def _stored_section(stored: pd.DataFrame) -> list[str]:
    counts = (
        pd.DataFrame({rule: stored[f"{rule}: outcome"].value_counts() for rule in RULES})
        .fillna(0)
        .astype(int)
        .reindex(["quiet", "planted", "other layer"], fill_value=0)
    )
    differ = stored[stored[list(RULES)].nunique(axis=1) > 1][["cohort", "mode", "planted", *RULES]]
    return [
        "## Stored cohorts re-judged",
        "",
        f"{stored['cohort'].nunique()} cohorts that `layer-platform validate` ran and stored, "
        f"{len(stored)} input modes,",
        "each judged by every rule on its stored evidence (the default method over the MP",
        "subjects; gates 1-3 as stored: a blocked mode is quiet under every rule). `planted`: the",
        "finding names planted layers only; `other layer`: it names one that was not planted.",
        "",
        _table(counts.rename_axis("outcome").reset_index()),
        "",
        "Input modes whose findings differ between rules:",
        "",
        _table(differ) if len(differ) else "none.",
        "",
    ]


def markdown(
    results: pd.DataFrame, command: str, seconds: float, stored: pd.DataFrame | None = None
) -> str:
    """The page: machine, the worst false-claim rate per rule, the power grid, every null cell,
    and with ``stored`` the stored cohorts re-judged."""
    facts = machine_facts(torch.device("cpu"), threads=1)
    null = results[~results["cell"].str.startswith("driver")]
    worst = null.loc[null.groupby("rule")["share"].idxmax()]
    power = results[results["cell"].str.startswith("driver")].pivot_table(
        index=["cell", "views", "subjects"], columns="rule", values="share"
    )
    lines = [
        "# Results: the verdict rule's false claims and power",
        "",
        f"**Produced by** `{command}` ([bench/verdict_power.py](../../bench/verdict_power.py)) in "
        f"{seconds / 60:.1f} min on {facts['cpu_model']} "
        f"({facts['cpus_available']} CPUs).",
        "",
        "Subjects' layer scores are simulated with known means, and each cohort is judged by the",
        "product's gate 4 (`statistics.verdicts.layer_family`, Holm over 21 candidate claims per",
        "view) and by three references on the same raw tests, per view and Bonferroni over views:",
        "`any dependence` (single claim at alpha/8, pair at alpha/20: at most alpha under any",
        "dependence), `location` (alpha/2 and alpha/3: at most about alpha only in an",
        "exchangeable location model) and `unadjusted` (every claim at alpha). Why, and what the",
        "platform does with it: [the verdict rule](../explanation/verdict.md#gate-4s-"
        "multiplicity-correction).",
        "",
        "## Worst false-claim rate over the null cells (alpha = 0.05)",
        "",
        _table(worst[["rule", "cell", "noise", "views", "subjects", "reps", "share", "se"]]),
        "",
        "## Power: the planted layer found, by its effect over the runner-up",
        "",
        "`d`: the planted layer's mean minus the runner-up's, in SDs of their paired difference;",
        "the other four layers lie `d` below the runner-up. Three views: the driver in the",
        "whole-layer view and one channel, none in the other channel. `subjects`: those ranked",
        "(by default a cohort's MP subjects, about half of it).",
        "",
        _table(power.reset_index()),
        "",
        "## Every null cell",
        "",
        _table(
            null.pivot_table(
                index=["cell", "noise", "views", "subjects"], columns="rule", values="share"
            ).reset_index()
        ),
        "",
        *([] if stored is None else _stored_section(stored)),
    ]
    return "\n".join(lines)


def _table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table, shares to three decimals."""
    return markdown_table(frame.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="gate 4's false-claim rate and power")
    parser.add_argument("--subjects", default="20,30,40,60", help="subjects ranked per cohort")
    parser.add_argument("--effects", default="0.5,0.75,1,1.25", help="driver effects d")
    parser.add_argument("--null-reps", type=int, default=400)
    parser.add_argument("--power-reps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes")
    parser.add_argument(
        "--homes", type=Path, nargs="*", default=[], help="validate --out folders to re-judge"
    )
    parser.add_argument("--out", type=Path, required=True, help="markdown page written here")
    args = parser.parse_args(argv)
    grid = cells(
        [int(n) for n in args.subjects.split(",")], [float(d) for d in args.effects.split(",")]
    )
    start = time.perf_counter()
    results = measure(grid, args.null_reps, args.power_reps, seed=args.seed, workers=args.workers)
    stored = rejudge(args.homes) if args.homes else None
    command = "python -m bench.verdict_power " + " ".join(argv or [])
    args.out.write_text(markdown(results, command.strip(), time.perf_counter() - start, stored))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
