"""Minimum-cost assignment of tracks to faces (the Hungarian method with potentials).

The tracker links a handful of open tracks to a handful of faces per frame. SciPy's
``linear_sum_assignment`` does the same, but importing ``scipy.optimize`` costs 1-2 s at the
start of every process (most of a fresh ``analyze`` call's budget); this is the textbook
shortest-augmenting-path algorithm (Kuhn-Munkres with row and column potentials, O(n^2 m)),
vectorised over columns. ``tests/test_faces.py`` checks it against SciPy on random matrices.
"""

from __future__ import annotations

import numpy as np


def min_cost_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a minimum-cost matching that covers the smaller side, rows ascending
    (SciPy's ``linear_sum_assignment`` contract). Costs must be finite."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("cost must be finite")
    if c.shape[0] > c.shape[1]:
        cols, rows = min_cost_assignment(c.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    n, m = c.shape
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    u = np.zeros(n + 1)  # row potentials (1-based; 0 is the virtual start)
    v = np.zeros(m + 1)  # column potentials
    owner = np.zeros(m + 1, np.int64)  # owner[j]: the row matched to column j (0: none)
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            done = np.flatnonzero(used)
            u[owner[done]] += delta
            v[done] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.flatnonzero(owner[1:])
    rows = owner[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)
