"""Planted-driver recovery: on a simulated cohort, where the planted layers landed in a ranking.

A method that does not put the simulator's planted driver near the top is reported as failing
(``driver_recovery`` table), which is how the default method and its baseline were chosen.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from layer_platform.labels import Layer

#: Which input modality each input mode's classifier sees.
MODE_MODALITIES: dict[str, tuple[str, ...]] = {
    "bmode": ("bmode",),
    "swe": ("swe",),
    "bmode_swe": ("bmode", "swe"),
}


def driver_recovery_rows(
    ranking: pd.DataFrame, drivers: Mapping[str, str | None], *, cohort: str
) -> pd.DataFrame:
    """``driver_recovery``: where the planted layer landed in each mode and method's ranking.

    Args:
        ranking: ``ranking_rows`` output.
        drivers: planted layer key (or None) per modality, ``{"bmode": ..., "swe": ...}``.
        cohort: a name for the simulated cohort (e.g. its seed and size).

    A mode gets one row per modality it sees (``bmode_swe`` both). ``recovered``: the planted
    layer ranks within the top k, k the number of distinct layers planted in the modalities the
    mode sees (1, or 2 for ``bmode_swe`` with two different drivers). A modality without a
    driver gets ``planted_layer = 'none'`` and is recovered when no layer stands out.
    """
    records = []
    for (mode, method), rows in ranking.groupby(["input_mode", "method"], sort=True):
        modalities = MODE_MODALITIES.get(str(mode), ())
        planted = {drivers.get(m) for m in modalities} - {None}
        ranks = dict(zip(rows["layer"], rows["rank"], strict=True))
        any_standout = bool(rows["stands_out"].any())
        for modality in modalities:
            layer = drivers.get(modality)
            if layer is None:
                rank, recovered = None, not any_standout
            else:
                rank = ranks.get(layer)
                recovered = rank is not None and int(rank) <= len(planted)
            records.append(
                {
                    "cohort": cohort,
                    "input_mode": mode,
                    "method": method,
                    "modality": modality,
                    "planted_layer": layer or "none",
                    "rank_of_planted_layer": None if rank is None else int(rank),
                    "recovered": bool(recovered),
                }
            )
    frame = pd.DataFrame.from_records(records, columns=_RECOVERY_COLUMNS)
    return frame.astype({"rank_of_planted_layer": "Int64"})


_RECOVERY_COLUMNS = [
    "cohort",
    "input_mode",
    "method",
    "modality",
    "planted_layer",
    "rank_of_planted_layer",
    "recovered",
]


def planted_drivers(bmode: Layer | str | None, swe: Layer | str | None) -> dict[str, str | None]:
    """``{"bmode": key, "swe": key}`` from a simulator's drivers (Layer, key or None)."""

    def key(value: Layer | str | None) -> str | None:
        if value is None:
            return None
        return value.key if isinstance(value, Layer) else Layer.from_key(str(value)).key

    return {"bmode": key(bmode), "swe": key(swe)}
