"""The frozen ``cohort`` reference: the champion's training controls' mean input per layer.

Layer ablation asks "what if this layer looked like a control's?". The controls answering it are
the ones the champion trained on, never a test control and never the explained scan: the
reference of a development scan explained by fold member ``k`` holds that member's own training
controls (development controls outside fold ``k``), so the scan's own fold, itself included, is
left out; a test scan explained by member ``k`` gets the same table, and an unlabelled scan,
explained by the whole ensemble, gets every development control the champion trained on. The
document is built once per champion version, stored with it (``tracking.reference_store``) and
read back unchanged until the champion changes: rows computed against different references are
never pooled unknowingly, each names its reference's SHA-256
(``layer_saliency.reference_sha256``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from layer_platform.attribution.scan_profile import control_layer_means
from layer_platform.classification.splits import SplitScheme

DEVELOPMENT = "development"


@dataclass(frozen=True)
class Control:
    """One control scan the champion trained on: its subject and its input with layer labels."""

    subject_id: str
    x: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class FrozenReference:
    """Per group (``development``, ``fold_0`` …), the controls' ``(6, C)`` layer means."""

    tables: dict[str, np.ndarray]
    sha256: str

    def table_for(self, member: int | None) -> np.ndarray | None:
        """The table of the controls fold-ensemble member ``member`` trained on (``fold_k``
        leaves out fold ``k``), for the scans it explains; None: the whole champion's, over
        every development control."""
        return self.tables.get(DEVELOPMENT if member is None else f"fold_{member}")


def reference_document(
    controls: Iterable[Control],
    scheme: SplitScheme,
    *,
    model: str,
    version: str,
    no_signal_channels: tuple[int, ...] = (),
) -> bytes:
    """The reference of one champion version as canonical JSON (its bytes are what is hashed).

    Only development controls count (test controls are dropped by ``scheme``); ``fold_k``
    leaves out fold ``k``. A group without controls is absent (that scan falls back to the
    ``layer_mean`` baseline).
    """
    folds = [(c, scheme.assign(c.subject_id)) for c in controls]
    development = [(c, fold) for c, fold in folds if fold is not None]
    groups = {DEVELOPMENT: [c for c, _ in development]}
    for k in range(scheme.n_folds):
        groups[f"fold_{k}"] = [c for c, fold in development if fold != k]
    tables, counts = {}, {}
    for group, members in groups.items():
        if members:
            means = control_layer_means(
                ((c.x, c.labels) for c in members), no_signal_channels=no_signal_channels
            )
            tables[group] = [[None if np.isnan(v) else float(v) for v in row] for row in means]
            counts[group] = len(members)
    document = {
        "model": model,
        "model_version": version,
        "split": scheme.tag(),
        "n_controls": counts,
        "tables": tables,
    }
    return json.dumps(document, sort_keys=True).encode()


def parse_reference(data: bytes) -> FrozenReference:
    """The tables of a stored reference document, with the SHA-256 of its bytes."""
    document = json.loads(data)
    tables = {
        group: np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
        for group, rows in document["tables"].items()
    }
    return FrozenReference(tables, hashlib.sha256(data).hexdigest())
