"""Anatomical post-processing: every column from the skin down passes through layers 1 → 6.

Each column (fixed lateral and sweep position, running along depth) is replaced by the
*closest ordered column*: the sequence of states ``background above → 1 → … → 6 → background
below`` (non-decreasing, any state may be skipped) that changes the fewest voxels. A dynamic
program over the 8 states finds it exactly, for all columns at once; islands and swapped layers
disappear because no ordered sequence contains them.
"""

from __future__ import annotations

import numpy as np

from layer_platform.labels import MAX_LABEL

#: The label each ordered state emits: background above the skin, layers 1..6, padding below.
STATE_LABELS = np.array([0, *range(1, MAX_LABEL + 1), 0], dtype=np.int16)


def _ordered_fit(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest ordered columns and the number of voxels each column had to change."""
    lateral, depth, sweep = labels.shape
    columns = labels.transpose(1, 0, 2).reshape(depth, -1).astype(np.int16)  # (depth, columns)
    n_states, n_columns = len(STATE_LABELS), columns.shape[1]
    mismatch = (columns[:, None, :] != STATE_LABELS[None, :, None]).astype(np.int32)

    cost = mismatch[0].copy()  # (states, columns): best cost ending in each state
    came_from = np.zeros((depth, n_states, n_columns), dtype=np.int8)
    for d in range(1, depth):
        best_prev = cost.copy()
        best_state = np.broadcast_to(np.arange(n_states)[:, None], cost.shape).copy()
        for s in range(1, n_states):  # running minimum over states <= s
            better = best_prev[s - 1] <= best_prev[s]
            best_prev[s] = np.where(better, best_prev[s - 1], best_prev[s])
            best_state[s] = np.where(better, best_state[s - 1], best_state[s])
        came_from[d] = best_state
        cost = best_prev + mismatch[d]

    state = np.argmin(cost, axis=0)
    changed = cost[state, np.arange(n_columns)]
    fitted = np.empty_like(columns)
    for d in range(depth - 1, -1, -1):
        fitted[d] = STATE_LABELS[state]
        state = came_from[d, state, np.arange(n_columns)]
    out = fitted.reshape(depth, lateral, sweep).transpose(1, 0, 2)
    return out.astype(labels.dtype), changed.reshape(lateral, sweep)


def enforce_anatomical_order(labels: np.ndarray) -> np.ndarray:
    """The closest label map (fewest changed voxels) in which every column is ordered."""
    return _ordered_fit(labels)[0]


def order_ok_fraction(labels: np.ndarray) -> float:
    """Fraction of tissue columns that are already in anatomical order."""
    _, changed = _ordered_fit(labels)
    tissue = (labels > 0).any(axis=1)
    return float((changed[tissue] == 0).mean()) if tissue.any() else 0.0
