"""Do MP and control subjects differ in how much of each layer they have? A caveat, not a gate.

A classifier can tell MP from control by anatomy alone: when MP subjects carry more
subcutaneous fat (body size), the fat layers are thicker and muscle starts deeper, and a layer
"stands out" although no tissue property changed. The platform cannot tell that from a real
thickness driver (a thickened fascia *is* a tissue finding), so it does not block the finding;
it says which layers differ in size, so a reader can weigh "tissue" against "body size".

The test: per subject, the mean share of the field of view each layer occupies
(``layer_saliency.volume_fraction``, the same for every method); per layer a two-sided
Mann-Whitney test of MP vs control subjects; Holm's correction over the six layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pandas as pd
from scipy.stats import mannwhitneyu

from layer_platform.statistics.gates import ALPHA, holm
from layer_platform.statistics.verdicts import Verdict

#: Subjects per class below which a layer's size is not compared.
MIN_SUBJECTS = 3


def layers_differing_in_size(rows: pd.DataFrame, *, alpha: float = ALPHA) -> list[str]:
    """Layers whose share of the field of view differs between MP and control subjects
    (Holm-adjusted p < ``alpha``), in the rows' layer order; ``rows`` are one input mode's."""
    if rows.empty or "volume_fraction" not in rows:
        return []  # nothing to compare (frames built without layer sizes)
    one_method = rows[rows["method"] == rows["method"].iloc[0]]
    shares = (
        one_method.groupby(["layer", "label", "subject_id"], sort=False)["volume_fraction"]
        .mean()
        .reset_index()
    )
    tested, p_values = [], []
    for layer in dict.fromkeys(one_method["layer"]):
        mine = shares[shares["layer"] == layer]
        mp, control = (mine.loc[mine["label"] == c, "volume_fraction"] for c in ("MP", "control"))
        if min(len(mp), len(control)) >= MIN_SUBJECTS and mine["volume_fraction"].nunique() > 1:
            tested.append(layer)
            p_values.append(float(mannwhitneyu(mp, control, alternative="two-sided").pvalue))
    if not tested:
        return []
    return [layer for layer, p in zip(tested, holm(p_values), strict=True) if p < alpha]


def with_size_caveat(verdicts: Mapping[str, Verdict], rows: pd.DataFrame) -> dict[str, Verdict]:
    """``verdicts`` (per method, of one mode and subgroup) with ``layer_size_differs`` set from
    ``rows``, and a standing-out layer's statement carrying the caveat."""
    differing = layers_differing_in_size(rows)
    named = ", ".join(differing) or None
    found = {}
    for method, verdict in verdicts.items():
        statement = verdict.statement
        if named and verdict.layer is not None:
            statement += (
                f"; caveat: MP and control subjects differ in the size of {named} (subject"
                " shares of the field of view, Mann-Whitney, Holm): body size or anatomy can"
                " look like a tissue driver"
            )
        found[method] = replace(verdict, statement=statement, layer_size_differs=named)
    return found
