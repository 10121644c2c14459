"""One scan rendered in memory: the join of design, anatomy, B-mode and SWE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from threadpoolctl import threadpool_limits

from layer_platform.io.volume import Volume
from layer_platform.labels import POSITIVE_LABEL
from layer_platform.simulation.anatomy import draw_anatomy
from layer_platform.simulation.bmode import render_bmode
from layer_platform.simulation.config import SimulationConfig
from layer_platform.simulation.devices import DEVICES
from layer_platform.simulation.fields import Grid
from layer_platform.simulation.subjects import ScanPlan, plan_scan, side_severity
from layer_platform.simulation.swe import render_swe


@dataclass(frozen=True)
class SimulatedScan:
    """A scan's volumes before writing.

    ``layers`` is always rendered (it is the anatomy); whether it is delivered as an annotation
    is ``plan.has_layers``. ``swe_layers`` is the tissue each SWE voxel measures, the reference
    for checking stiffness per layer without resampling.
    """

    plan: ScanPlan
    bmode: Volume
    layers: Volume
    swe: Volume | None
    swe_layers: Volume | None

    def scan_json(self) -> dict[str, Any]:
        """The scan's ``scan.json`` document (landing contract)."""
        subject = self.plan.subject
        return {
            "scan_id": self.plan.scan_id,
            "subject_id": subject.subject_id,
            "label": subject.label,
            "side": self.plan.side,
            "acquired_at": subject.acquired_at.isoformat(),
            "site": subject.site,
            "device": subject.device,
        }


def simulate_scan(config: SimulationConfig, subject_index: int, side: str) -> SimulatedScan:
    """Render one scan without writing it; identical on every call with the same arguments.

    BLAS runs single-threaded here: the products are small, and on a shared machine a thread
    pool spinning for them costs several times the work itself.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _render(config, subject_index, side)


def _render(config: SimulationConfig, subject_index: int, side: str) -> SimulatedScan:
    plan = plan_scan(config, subject_index, side)
    device = DEVICES[plan.subject.device]
    severity = side_severity(config, plan.subject, side)
    bmode_effect, swe_effect = config.planted(severity)
    is_mp = plan.subject.label == POSITIVE_LABEL
    where = {"seed": config.seed, "subject_index": subject_index, "side": side}

    grid = Grid.from_spacing(
        config.field_of_view_mm, tuple(s * config.spacing_scale for s in device.spacing_mm)
    )
    anatomy = draw_anatomy(
        config.seed, subject_index, side, config.thickness_factors(is_mp, severity)
    )
    labels = anatomy.label_map(grid)
    bmode = render_bmode(anatomy, grid, labels, device, bmode_effect, **where)

    swe = swe_layers = None
    if plan.has_swe:
        swe_grid = grid.coarsened(tuple(s * config.spacing_scale for s in device.swe_spacing_mm))
        swe_labels = anatomy.label_map(swe_grid)
        swe = Volume(render_swe(swe_grid, swe_labels, swe_effect, **where), swe_grid.spacing)
        swe_layers = Volume(swe_labels, swe_grid.spacing)
    return SimulatedScan(
        plan=plan,
        bmode=Volume(bmode, grid.spacing),
        layers=Volume(labels, grid.spacing),
        swe=swe,
        swe_layers=swe_layers,
    )
