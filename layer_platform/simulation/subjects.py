"""The study design: who is enrolled, their label and severity, where they were scanned, and what
each scan folder will hold.

Every draw comes from its own random stream keyed by (seed, stream, subject[, side]), so adding
subjects never changes existing ones, and no nuisance (site, device, date, format, SWE or
annotation presence) can depend on the label unless a confounding scenario says so; those draw
from streams of their own, so at 0 every cohort is the one drawn without them.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from layer_platform.ingestion.landing import SIDES
from layer_platform.labels import POSITIVE_LABEL
from layer_platform.simulation.config import SimulationConfig
from layer_platform.simulation.devices import CONFOUNDED_SITE, SITES

CONTROL_LABEL = "control"

#: Labels are allocated in permuted blocks (as trial enrolment is) so every cohort is balanced
#: to within one block, whatever its size.
LABEL_BLOCK = 10

#: Pain severity of MP subjects; it scales the planted effects. Controls have severity 0.
SEVERITY_RANGE = (0.3, 1.0)

FIRST_VISIT = dt.date(2024, 1, 8)
DAYS_BETWEEN_SUBJECTS = 3


class Stream(IntEnum):
    """Independent random streams; a subject's draws in one never shift those in another."""

    LABEL = 0
    SEVERITY = 1
    VISIT = 2
    DELIVERY = 3
    ANATOMY = 4
    ECHO = 5
    STIFFNESS = 6
    CONFOUNDING = 7
    SIDEDNESS = 8


def stream(seed: int, kind: Stream, index: int, side: str | None = None) -> np.random.Generator:
    """The generator for one stream of one subject (or label block), optionally one side."""
    key = [seed, int(kind), index]
    if side is not None:
        key.append(SIDES.index(side))
    return np.random.default_rng(key)


@dataclass(frozen=True)
class Subject:
    """One enrolled person: the label and everything shared by their left and right scans."""

    index: int
    subject_id: str
    label: str
    severity: float
    site: str
    device: str
    acquired_at: dt.date


@dataclass(frozen=True)
class ScanPlan:
    """What one scan folder holds, decided before any pixel is rendered."""

    scan_id: str
    subject: Subject
    side: str
    bmode_format: str
    volume_format: str
    has_swe: bool
    has_layers: bool


def subject_id(index: int) -> str:
    return f"S{index + 1:04d}"


def _is_mp(config: SimulationConfig, index: int) -> bool:
    block, position = divmod(index, LABEL_BLOCK)

    def quota(blocks: int) -> int:  # MP subjects among the first `blocks` blocks, rounded
        return math.floor(blocks * LABEL_BLOCK * config.mp_fraction + 0.5)

    order = stream(config.seed, Stream.LABEL, block).permutation(LABEL_BLOCK)
    return bool(order[position] < quota(block + 1) - quota(block))


def draw_subject(config: SimulationConfig, index: int) -> Subject:
    """Subject ``index`` of the cohort defined by ``config`` (independent of cohort size)."""
    is_mp = _is_mp(config, index)
    severity = stream(config.seed, Stream.SEVERITY, index).uniform(*SEVERITY_RANGE)
    visit = stream(config.seed, Stream.VISIT, index)
    site = str(visit.choice(sorted(SITES)))
    device = str(visit.choice(SITES[site]))
    day = index * DAYS_BETWEEN_SUBJECTS + int(visit.integers(0, DAYS_BETWEEN_SUBJECTS))
    site, device = _confounded_site(config, index, is_mp, site, device)
    return Subject(
        index=index,
        subject_id=subject_id(index),
        label=POSITIVE_LABEL if is_mp else CONTROL_LABEL,
        severity=round(float(severity), 4) if is_mp else 0.0,
        site=site,
        device=device,
        acquired_at=FIRST_VISIT + dt.timedelta(days=day),
    )


def _confounded_site(
    config: SimulationConfig, index: int, is_mp: bool, site: str, device: str
) -> tuple[str, str]:
    """With probability ``site_confounding``, MP subjects go to the confounded site and controls
    to another one; everyone else keeps the randomly drawn site and device."""
    rng = stream(config.seed, Stream.CONFOUNDING, index)
    if not rng.random() < config.site_confounding or (site == CONFOUNDED_SITE) == is_mp:
        return site, device
    others = sorted(set(SITES) - {CONFOUNDED_SITE})
    site = CONFOUNDED_SITE if is_mp else str(rng.choice(others))
    return site, str(rng.choice(SITES[site]))


def side_severity(config: SimulationConfig, subject: Subject, side: str) -> float:
    """The severity planted in this side's scan: the subject's, or 0 on the pain-free side of
    a unilateral subject (a share ``unilateral_fraction`` of MP subjects, side drawn per subject).
    """
    rng = stream(config.seed, Stream.SIDEDNESS, subject.index)
    unilateral, painful = rng.random() < config.unilateral_fraction, SIDES[rng.integers(2)]
    return 0.0 if unilateral and side != painful else subject.severity


def plan_scan(config: SimulationConfig, subject_index: int, side: str) -> ScanPlan:
    """The scan of ``side`` for subject ``subject_index``: formats and optional volumes."""
    if side not in SIDES or subject_index < 0:
        raise ValueError(f"no scan {side!r} of subject {subject_index}: sides are {SIDES}")
    subject = draw_subject(config, subject_index)
    rng = stream(config.seed, Stream.DELIVERY, subject_index, side)
    has_swe = bool(rng.random() < _swe_share(config, subject.label == POSITIVE_LABEL))
    has_layers = bool(rng.random() < config.annotated_fraction)
    bmode_format = str(rng.choice(config.formats))
    volume_format = bmode_format
    if volume_format not in config.volume_formats:
        volume_format = str(rng.choice(config.volume_formats))
    return ScanPlan(
        scan_id=f"{subject.subject_id}-{side[0].upper()}",
        subject=subject,
        side=side,
        bmode_format=bmode_format,
        volume_format=volume_format,
        has_swe=has_swe,
        has_layers=has_layers,
    )


def _swe_share(config: SimulationConfig, is_mp: bool) -> float:
    """Chance of an SWE volume, moved towards MP scans by ``swe_coverage_confounding``."""
    share, shift = config.swe_fraction, config.swe_coverage_confounding
    return share + shift * (1.0 - share) if is_mp else share * (1.0 - shift)


def plan_scan_at(config: SimulationConfig, scan_index: int) -> ScanPlan:
    """Scans form one stream (S0001-L, S0001-R, S0002-L, ...); arrivals continue it."""
    subject_index, side_index = divmod(scan_index, len(SIDES))
    return plan_scan(config, subject_index, SIDES[side_index])
