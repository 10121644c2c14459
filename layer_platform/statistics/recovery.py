"""Planted-driver recovery: on a simulated cohort, where the planted layers landed in a ranking.

A method that does not put the simulator's planted driver near the top is reported as failing
(``driver_recovery`` table), which is how the default method and its baseline were chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from layer_platform.labels import Layer

#: Which input modality each input mode's classifier sees.
MODE_MODALITIES: dict[str, tuple[str, ...]] = {
    "bmode": ("bmode",),
    "swe": ("swe",),
    "bmode_swe": ("bmode", "swe"),
}


def driver_recovery_rows(
    ranking: pd.DataFrame, drivers: Mapping[str, Sequence[str]], *, cohort: str
) -> pd.DataFrame:
    """``driver_recovery``: where the planted layers landed in each mode and method's ranking.

    Args:
        ranking: ``ranking_rows`` output.
        drivers: planted layer keys per modality (empty: none), ``planted_drivers``' form.
        cohort: a name for the simulated cohort (e.g. its seed and size).

    A mode gets one row per planted layer of each modality it sees (``bmode_swe`` both), or one
    row ``planted_layer = 'none'`` for a modality without a driver, recovered when no layer
    stands out. ``recovered``: the planted layer ranks within the top k, k the number of
    distinct layers planted in the modalities the mode sees (2 for ``bmode_swe`` with two
    different drivers, or for a two-layer B-mode driver).
    """
    records = []
    for (mode, method), rows in ranking.groupby(["input_mode", "method"], sort=True):
        modalities = MODE_MODALITIES.get(str(mode), ())
        planted = {layer for m in modalities for layer in drivers.get(m, ())}
        ranks = dict(zip(rows["layer"], rows["rank"], strict=True))
        any_standout = bool(rows["stands_out"].any())
        for modality in modalities:
            for layer in drivers.get(modality, ()) or (None,):
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


def planted_drivers(
    bmode: Layer | str | None, swe: Layer | str | None, bmode_second: Layer | str | None = None
) -> dict[str, tuple[str, ...]]:
    """``{"bmode": keys, "swe": keys}`` from a simulator's drivers (Layer, key or None; a
    two-layer B-mode driver's second layer in ``bmode_second``)."""

    def keys(*values: Layer | str | None) -> tuple[str, ...]:
        return tuple(
            v.key if isinstance(v, Layer) else Layer.from_key(str(v)).key
            for v in values
            if v is not None
        )

    return {"bmode": keys(bmode, bmode_second), "swe": keys(swe)}
