"""Binary-classification metrics for detectors: AUC with a bootstrap interval grouped by video,
confusion-matrix rates at a threshold, and JSON-ready numbers (NaN becomes null)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def binary_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> dict:
    """ROC AUC (NaN unless both classes are present) and the confusion-matrix metrics."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=float)
    pred = (s >= threshold).astype(int)
    tp = int(np.sum((pred == 1) & (y == 1)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))

    def ratio(a: int, b: int) -> float:
        return a / b if b else math.nan

    return {
        "auc": float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else math.nan,
        "accuracy": ratio(tp + tn, len(y)),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "tpr": ratio(tp, tp + fn),
        "tnr": ratio(tn, tn + fp),
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "n": len(y),
    }


def bootstrap_auc_ci(
    labels: Sequence[int],
    scores: Sequence[float],
    groups: Sequence[str] | None = None,
    n: int = 500,
    seed: int = 0,
) -> list[float]:
    """95 % percentile-bootstrap interval of the ROC AUC, [] when it cannot be computed.

    With ``groups`` (the video of each frame) whole videos are resampled, because the frames of
    one video are not independent; without, the items themselves.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=float)
    if len(np.unique(y)) < 2 or np.isnan(s).any():
        return []
    keys = np.asarray(groups) if groups is not None else np.arange(len(y))
    uniq, inverse = np.unique(keys, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(uniq))]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(uniq), len(uniq))])
        if len(np.unique(y[idx])) == 2:
            vals.append(roc_auc_score(y[idx], s[idx]))
    if len(vals) < n // 2:
        return []
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]


def json_ready(obj, decimals: int | None = None):
    """``obj`` with every NaN as None (JSON null) and floats rounded to ``decimals`` if given,
    through dicts, lists and tuples."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else (round(obj, decimals) if decimals is not None else obj)
    if isinstance(obj, dict):
        return {k: json_ready(v, decimals) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v, decimals) for v in obj]
    return obj
