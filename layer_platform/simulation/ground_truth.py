"""What was planted, kept beside the landing zone (never in it, so the platform cannot see it).

``<landing>/../ground_truth.json`` holds the config (seed, drivers, effect sizes), each subject's
label and severity, and each scan's delivery. Evaluation compares the platform's answer with it;
arrivals read the config from it and append to it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from layer_platform.simulation.config import SimulationConfig
from layer_platform.simulation.subjects import ScanPlan

GROUND_TRUTH_NAME = "ground_truth.json"
T = TypeVar("T")


@dataclass(frozen=True)
class SubjectTruth:
    subject_id: str
    label: str
    severity: float
    site: str
    device: str
    acquired_at: str


@dataclass(frozen=True)
class ScanTruth:
    scan_id: str
    subject_id: str
    side: str
    format: str
    files: dict[str, str]
    has_swe: bool
    has_layers: bool


def _copied(cls: type[T], source: object, **given: Any) -> T:
    """``cls`` (a dataclass) from ``given`` and, for its other fields, ``source``'s attributes
    of the same name: the truth repeats what was planned, and only says where it differs."""
    names = [f.name for f in fields(cls) if f.name not in given]
    return cls(**{name: getattr(source, name) for name in names}, **given)


@dataclass(frozen=True)
class GroundTruth:
    """The simulated cohort's truth, in landing order."""

    config: SimulationConfig
    subjects: tuple[SubjectTruth, ...]
    scans: tuple[ScanTruth, ...]

    def extended(self, plans: Iterable[ScanPlan]) -> GroundTruth:
        """This truth plus newly written scans (and their subjects, the first time one appears)."""
        subjects, scans = list(self.subjects), list(self.scans)
        known = {s.subject_id for s in subjects}
        for plan in plans:
            subject = plan.subject
            if subject.subject_id not in known:
                known.add(subject.subject_id)
                subjects.append(
                    _copied(SubjectTruth, subject, acquired_at=subject.acquired_at.isoformat())
                )
            scans.append(
                _copied(
                    ScanTruth,
                    plan,
                    subject_id=subject.subject_id,
                    format=plan.bmode_format,
                    files=scan_files(plan),
                )
            )
        return GroundTruth(self.config, tuple(subjects), tuple(scans))

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "subjects": [asdict(s) for s in self.subjects],
            "scans": [asdict(s) for s in self.scans],
        }

    def save_to(self, path: Path) -> GroundTruth:
        """Write atomically, so a reader never sees half a ground truth."""
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        os.replace(staging, path)
        return self


def scan_files(plan: ScanPlan) -> dict[str, str]:
    """File name per role in the scan's folder."""
    files = {"bmode": f"bmode.{plan.bmode_format}"}
    if plan.has_swe:
        files["swe"] = f"swe.{plan.volume_format}"
    if plan.has_layers:
        files["layers"] = f"layers.{plan.volume_format}"
    return files


def ground_truth_path(landing: Path) -> Path:
    """``<landing>/../ground_truth.json``."""
    return Path(landing).absolute().parent / GROUND_TRUTH_NAME


def load_ground_truth(path: Path) -> GroundTruth:
    """Read a ground truth file written by :meth:`GroundTruth.save_to`."""
    data = json.loads(Path(path).read_text())
    return GroundTruth(
        config=SimulationConfig.from_dict(data["config"]),
        subjects=tuple(SubjectTruth(**s) for s in data["subjects"]),
        scans=tuple(ScanTruth(**s) for s in data["scans"]),
    )
