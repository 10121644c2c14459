"""Writing the simulated cohort into a landing zone, and later arrivals into the same zone."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tqdm import tqdm

from layer_platform.ingestion.landing import SCAN_JSON
from layer_platform.io import write_volume
from layer_platform.simulation.config import SimulationConfig
from layer_platform.simulation.ground_truth import (
    GroundTruth,
    ground_truth_path,
    load_ground_truth,
    scan_files,
)
from layer_platform.simulation.scan import SimulatedScan, simulate_scan
from layer_platform.simulation.subjects import ScanPlan, plan_scan_at


def write_scan(scan: SimulatedScan, landing: Path, *, unlabelled: bool = False) -> Path:
    """Write one scan folder; ``scan.json`` last and atomically, marking the folder complete.

    ``unlabelled``: a scan to explain, as a clinic sends it: no label and no reference layers
    (the ground truth still knows both).
    """
    folder = Path(landing) / scan.plan.scan_id
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; the simulator never merges into a scan")
    folder.mkdir(parents=True)
    volumes = {"bmode": scan.bmode, "swe": scan.swe, "layers": scan.layers}
    for role, name in scan_files(scan.plan).items():
        if not (unlabelled and role == "layers"):
            write_volume(folder / name, volumes[role])
    meta = scan.scan_json() | ({"label": None} if unlabelled else {})
    staging = folder / f".{SCAN_JSON}.tmp"
    staging.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(staging, folder / SCAN_JSON)
    return folder


def _write_all(
    config: SimulationConfig,
    landing: Path,
    plans: list[ScanPlan],
    progress: bool,
    unlabelled: bool = False,
) -> None:
    for plan in tqdm(plans, desc="simulating scans", unit="scan", disable=not progress):
        scan = simulate_scan(config, plan.subject.index, plan.side)
        write_scan(scan, landing, unlabelled=unlabelled)


def simulate_cohort(
    config: SimulationConfig, landing: Path, progress: bool = False, *, overwrite: bool = False
) -> GroundTruth:
    """Write ``config.n_subjects`` subjects (left and right scans) and the ground truth.

    Raises:
        FileExistsError: the landing zone already has a ground truth, or a folder with one of
            the new scan ids. ``overwrite`` removes both (the old cohort's folders and any with
            a new id) first; other folders are never touched.
    """
    landing = Path(landing)
    truth_path = ground_truth_path(landing)
    plans = [plan_scan_at(config, n) for n in range(2 * config.n_subjects)]
    clashes = sorted(plan.scan_id for plan in plans if (landing / plan.scan_id).exists())
    if not overwrite and (truth_path.exists() or clashes):
        held = f"a simulated cohort ({truth_path.name})" if truth_path.exists() else clashes[0]
        raise FileExistsError(
            f"{landing} already holds {held}; use overwrite to replace it, or arrivals to add"
            " scans to an existing cohort"
        )
    if truth_path.exists():
        clashes += [scan.scan_id for scan in load_ground_truth(truth_path).scans]
        truth_path.unlink()
    for scan_id in clashes:
        shutil.rmtree(landing / scan_id, ignore_errors=True)
    landing.mkdir(parents=True, exist_ok=True)
    _write_all(config, landing, plans, progress)
    return GroundTruth(config, (), ()).extended(plans).save_to(truth_path)


def arrive(
    landing: Path, n_scans: int, progress: bool = False, *, unlabelled: bool = False
) -> list[str]:
    """Drop the next ``n_scans`` scans of the cohort's stream into ``landing``; return their ids.

    Scans continue the stream S0001-L, S0001-R, S0002-L, ... after the last written one, with
    the cohort's config, so an odd count leaves a subject's right side for the next arrival.
    ``unlabelled`` scans (no label, no reference layers) change no model's training data:
    the platform only preprocesses, segments and explains them.
    """
    if n_scans < 1:
        raise ValueError(f"n_scans must be at least 1, got {n_scans}")
    truth_path = ground_truth_path(landing)
    if not truth_path.exists():
        raise FileNotFoundError(f"{truth_path} not found: simulate a cohort into {landing} first")
    truth = load_ground_truth(truth_path)
    start = len(truth.scans)
    plans = [plan_scan_at(truth.config, start + n) for n in range(n_scans)]
    _write_all(truth.config, Path(landing), plans, progress, unlabelled)
    truth.extended(plans).save_to(truth_path)
    return [plan.scan_id for plan in plans]
