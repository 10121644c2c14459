"""Sites and scanners: the nuisance the platform's preprocessing has to undo.

Each device samples the same anatomy on its own voxel grid, with its own SWE grid, dynamic range
and gain calibration. Subjects are assigned to sites at random, so none of this carries the label,
unless a scenario's ``site_confounding`` sends MP subjects to :data:`CONFOUNDED_SITE`.
"""

from __future__ import annotations

from dataclasses import dataclass

from layer_platform.simulation.fields import Triple


@dataclass(frozen=True)
class Device:
    """A scanner model as the simulator renders it.

    Args:
        name: written to ``scan.json``'s ``device``.
        spacing_mm: native B-mode voxel size (lateral, depth, sweep).
        swe_spacing_mm: approximate SWE voxel size; the SWE grid covers the B-mode field of view.
        dynamic_range_db: span of the log compression onto 0..255.
        gain_offset_db: calibration offset added to every scan's gain.
    """

    name: str
    spacing_mm: Triple
    swe_spacing_mm: Triple
    dynamic_range_db: float
    gain_offset_db: float


DEVICES: dict[str, Device] = {
    device.name: device
    for device in (
        Device("LX-15", (0.50, 0.20, 1.00), (1.0, 0.5, 2.0), 60.0, 0.0),
        Device("SV-9", (0.45, 0.18, 0.90), (1.1, 0.6, 1.8), 55.0, 2.0),
        Device("HD-12", (0.55, 0.22, 1.10), (0.9, 0.45, 2.2), 65.0, -2.0),
    )
}

#: Which devices each site owns; a subject is scanned on one of their site's devices.
SITES: dict[str, tuple[str, ...]] = {
    "site-north": ("LX-15", "SV-9"),
    "site-south": ("HD-12",),
    "site-east": ("LX-15", "HD-12"),
}

#: Where ``site_confounding`` sends MP subjects: its one scanner has the widest dynamic range and
#: the lowest gain, so its scans look unlike the others' in every layer.
CONFOUNDED_SITE = "site-south"
