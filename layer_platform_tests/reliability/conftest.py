"""Fixtures of the reliability tests: child processes on real instances, and what they leave.

``saliency_cohort`` is the saliency tests' tiny materialized cohort (reused, not rebuilt).
``from_scratch`` runs the whole platform twice from empty ``LAYER_HOME``s, in two child
processes at once: the determinism test compares them, the PHI scan searches them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from layer_platform.io import Volume, write_volume
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, simulate_scan
from layer_platform_tests.conftest import REPO_ROOT
from layer_platform_tests.defs.test_materialization import landing_with_bad_and_phi_scans
from layer_platform_tests.ingestion.test_bad_input_matrix import (
    NEEDS_GOOD_SCANS,
    land_every_bad_case,
)
from layer_platform_tests.saliency.test_materialization import (  # noqa: F401 (a fixture)
    cohort as saliency_cohort,
)

WORKER = "layer_platform_tests.reliability.worker"
#: A readable, unlabelled scan with no tissue in it: intake accepts it, preprocessing refuses it.
NO_TISSUE = "NOTISSUE-1"
#: torch's CPU kernels may split reductions by thread count; both runs get the same one.
CHILD_THREADS = "1"


def child_env(**extra: str) -> dict[str, str]:
    """The child's environment: this one (the suite's working grid too), minus anything that
    would point it elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LAYER_", "DAGSTER_HOME", "MLFLOW_"))
        or k in ("LAYER_DAGSTER_YAML", "LAYER_PRESET")
    }
    env.update(OMP_NUM_THREADS=CHILD_THREADS, MKL_NUM_THREADS=CHILD_THREADS, **extra)
    return env


def spawn(command: str, home: Path, log: Path, **env: str) -> subprocess.Popen:
    """Start the worker in its own process group (so ``kill -9`` reaches all of it)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", WORKER, command, str(home)],
            cwd=REPO_ROOT,
            env=child_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def tail(log: Path, n: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:])


def kill_group(child: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group and reap it."""
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)


def land_no_tissue_scan(landing: Path) -> None:
    """``NO_TISSUE``: speckle of grey level 0-1 under a bright skin line (2% of voxels show
    tissue after normalisation; the ``non_empty_tissue`` check wants 20%)."""
    config = SimulationConfig(n_subjects=1, seed=11)
    grid = simulate_scan(config, 0, "left").bmode
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 2, grid.shape).astype(np.uint8)
    dark[:, :3, :] = 255
    folder = landing / NO_TISSUE
    folder.mkdir()
    write_volume(folder / "bmode.nii.gz", Volume(dark, grid.spacing))
    (folder / "scan.json").write_text(
        json.dumps({"scan_id": NO_TISSUE, "subject_id": "NT-SUBJ", "label": None})
    )


@dataclass(frozen=True)
class FromScratch:
    """Two ``LAYER_HOME``s built from the same landing zone and seeds."""

    homes: tuple[LayerPaths, LayerPaths]
    logs: tuple[Path, Path]
    #: Every bad-input matrix case landed beside the cohort: folder -> (scan_id, cause).
    bad_cases: dict[str, tuple[str | None, str]]


@pytest.fixture(scope="session")
def from_scratch(tmp_path_factory: pytest.TempPathFactory) -> FromScratch:
    """``layer-platform run`` (tiny settings) twice from nothing, in two processes with
    different hash seeds (set and dict orders differ), on a cohort holding a truncated scan,
    a DICOM whose header carries planted patient identifiers, a scan with no tissue and every
    case of the bad-input matrix."""
    root = tmp_path_factory.mktemp("from_scratch")
    homes, logs, children = [], [], []
    for name, hash_seed in (("a", "1"), ("b", "2")):
        paths = LayerPaths.under(root / name).ensure()
        landing_with_bad_and_phi_scans(paths)
        land_no_tissue_scan(paths.landing)
        bad_cases = land_every_bad_case(
            paths.landing, root / f"{name}-cases", exclude=NEEDS_GOOD_SCANS
        )
        log = root / f"{name}.log"
        homes.append(paths)
        logs.append(log)
        children.append(spawn("pipeline", paths.home, log, PYTHONHASHSEED=hash_seed))
    try:
        for child, log in zip(children, logs, strict=True):
            assert child.wait(timeout=800) == 0, f"the platform run failed:\n{tail(log)}"
    finally:
        for child in children:
            if child.poll() is None:
                kill_group(child)
    return FromScratch((homes[0], homes[1]), (logs[0], logs[1]), bad_cases)
