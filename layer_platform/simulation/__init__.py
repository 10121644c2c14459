"""The embedded cohort simulator: 3D lower-back ultrasound with planted pain drivers.

Subjects get smooth, undulating skin-to-muscle layers; each scan is rendered as B-mode (layer
echotexture, correlated speckle, attenuation, gain, log compression), optionally SWE (per-layer
stiffness on a coarser grid) and a reference annotation, and written into a landing zone. Pain
changes only the configured driver layer(s); the ground truth beside the landing zone says which.
"""

from layer_platform.simulation.cohort import arrive, simulate_cohort, write_scan
from layer_platform.simulation.config import FORMATS, SimulationConfig
from layer_platform.simulation.ground_truth import (
    GroundTruth,
    ScanTruth,
    SubjectTruth,
    ground_truth_path,
    load_ground_truth,
)
from layer_platform.simulation.scan import SimulatedScan, simulate_scan

__all__ = [
    "FORMATS",
    "GroundTruth",
    "ScanTruth",
    "SimulatedScan",
    "SimulationConfig",
    "SubjectTruth",
    "arrive",
    "ground_truth_path",
    "load_ground_truth",
    "simulate_cohort",
    "simulate_scan",
    "write_scan",
]
