"""The cohort reference holds the champion's training controls only, never the test controls
nor the explained scan's own fold (issue #16)."""

from __future__ import annotations

import numpy as np

from layer_platform.attribution.cohort_reference import (
    Control,
    parse_reference,
    reference_document,
)
from layer_platform.classification.splits import SplitScheme

SCHEME = SplitScheme(n_folds=3, test_fraction=0.25, seed=0)
SHAPE = (4, 6, 2)


def control(subject: str, value: float) -> Control:
    """A control whose every voxel is ``value`` and every depth row one layer (1..6)."""
    labels = np.repeat(np.arange(1, 7)[None, :, None], SHAPE[0], 0).repeat(SHAPE[2], 2)
    return Control(subject, np.full((1, *SHAPE), value, np.float32), labels.astype(np.uint8))


def test_each_table_holds_exactly_the_training_controls_of_its_explainer() -> None:
    subjects = [f"c{i}" for i in range(40)]
    values = {s: float(i) for i, s in enumerate(subjects)}
    controls = [control(s, values[s]) for s in subjects]
    reference = parse_reference(reference_document(controls, SCHEME, model="m", version="1"))
    fold = {s: SCHEME.assign(s) for s in subjects}
    assert None in fold.values()  # some test controls exist, and must be left out

    def expected(keep) -> float:
        return float(np.mean([values[s] for s in subjects if keep(fold[s])]))

    development = reference.table_for(None)
    assert np.allclose(development, expected(lambda f: f is not None))
    for k in range(3):
        table = reference.table_for(k)
        assert np.allclose(table, expected(lambda f, k=k: f is not None and f != k))
        # Fold k is not empty, so leaving it (and the explained scan) out was tested.
        assert any(f == k for f in fold.values())


def test_the_document_is_canonical_and_names_its_version() -> None:
    controls = [control(f"c{i}", float(i)) for i in range(12)]
    first = reference_document(controls, SCHEME, model="m", version="1")
    assert first == reference_document(list(reversed(controls)), SCHEME, model="m", version="1")
    other = reference_document(controls, SCHEME, model="m", version="2")
    assert parse_reference(first).sha256 != parse_reference(other).sha256
