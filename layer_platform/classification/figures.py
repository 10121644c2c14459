"""ROC curves as PNG bytes for the Dagster UI and MLflow."""

from __future__ import annotations

import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve


def roc_png(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str) -> bytes:
    """One ROC curve per entry (``name → (y_true, probability)``), with the chance diagonal."""
    figure, axis = plt.subplots(figsize=(4, 4), dpi=90)
    for name, (y_true, proba) in curves.items():
        if len(np.unique(y_true)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y_true, proba)
        axis.plot(fpr, tpr, label=name)
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axis.set(xlabel="1 − specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1))
    axis.legend(loc="lower right", fontsize=8)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
