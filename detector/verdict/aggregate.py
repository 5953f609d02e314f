"""The only frame reducers and model-combination orders in the project, and the weighted model combination."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from detector.errors import BadSettingsError
from detector.types import ScoreTable

Reducer = Callable[[np.ndarray, float], float]


def mean(x: np.ndarray, threshold: float = 0.5) -> float:
    return float(np.mean(x))


def median(x: np.ndarray, threshold: float = 0.5) -> float:
    return float(np.median(x))


def maximum(x: np.ndarray, threshold: float = 0.5) -> float:
    return float(np.max(x))


def vote(x: np.ndarray, threshold: float = 0.5) -> float:
    """Share of frames whose score is at or above the threshold (paper 004's fake-frame share)."""
    return float(np.mean(x >= threshold))


def trimmed_mean(x: np.ndarray, threshold: float = 0.5, cut: float = 0.1) -> float:
    """Mean after dropping ``cut`` of the frames at each end (robust to a few outliers)."""
    k = int(len(x) * cut)
    s = np.sort(x)
    return float(np.mean(s[k : len(s) - k] if len(s) > 2 * k else s))


def confident(x: np.ndarray, threshold: float = 0.5, t: float = 0.8) -> float:
    """The DFDC winner's ``confident_strategy`` (Seferbekov 2020), constants as published.

    If more than ``len/2.5`` and more than 11 frames exceed ``t``, average those; if more than 90 %
    of frames are below 0.2, average those; otherwise the plain mean. With 1 frame/s sampling of
    short clips the first branch rarely fires (it was tuned for 32 frames), so it is usually the
    mean or the confident-real mean.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    fakes = int(np.count_nonzero(x > t))
    if fakes > n // 2.5 and fakes > 11:
        return float(np.mean(x[x > t]))
    if np.count_nonzero(x < 0.2) > 0.9 * n:
        return float(np.mean(x[x < 0.2]))
    return float(np.mean(x))


AGGREGATORS: dict[str, Reducer] = {
    "mean": mean,
    "median": median,
    "max": maximum,
    "vote": vote,
    "confident": confident,
    "trimmed_mean": trimmed_mean,
}


AGGREGATOR_LABELS: dict[str, str] = {
    "mean": "Mean over frames",
    "median": "Median over frames",
    "max": "Most suspicious frame",
    "vote": "Share of frames over the threshold",
    "confident": "Confident strategy (DFDC winner)",
    "trimmed_mean": "Trimmed mean (10 % each end)",
}


ORDERS: dict[str, str] = {
    "aggregate_then_combine": "aggregate frames per model, then weight models (the core paper's order)",
    "combine_then_aggregate": "weight models per frame, then aggregate frames",
}


def normalise_weights(weights: Mapping[str, float], models: tuple[str, ...]) -> np.ndarray:
    """Weight vector aligned with ``models``, summing to 1; missing models get 0."""
    unknown = sorted(set(weights) - set(models))
    if unknown:
        raise BadSettingsError(
            f"weights given for unknown models {unknown}; models are {list(models)}"
        )
    w = np.array([float(weights.get(m, 0.0)) for m in models])
    if not np.all(np.isfinite(w)):
        raise BadSettingsError(f"model weights must be finite numbers: {dict(weights)}")
    if np.any(w < 0):
        raise BadSettingsError(f"model weights must not be negative: {dict(weights)}")
    if w.sum() <= 0:
        raise BadSettingsError(
            f"weights sum to zero: at least one model needs a positive weight ({dict(weights)})"
        )
    return w / w.sum()


def ensemble_per_face(table: ScoreTable, weights: Mapping[str, float]) -> np.ndarray:
    """Weighted model combination for every face (the timeline's ensemble line)."""
    return table.p_fake @ normalise_weights(weights, table.models)


def reduce_frames(x: np.ndarray, aggregation: str, axis: int = -1, threshold: float = 0.5):
    """Reduce scores over frames along ``axis`` with the named reducer of :data:`AGGREGATORS`
    (vectorised for mean and median; the median of an even count is the midpoint)."""
    if aggregation not in AGGREGATORS:
        raise BadSettingsError(
            f"unknown aggregation {aggregation!r}; use one of {', '.join(AGGREGATORS)}"
        )
    x = np.asarray(x, dtype=float)
    if aggregation == "mean":
        return x.mean(axis=axis)
    if aggregation == "median":
        return np.median(x, axis=axis)
    reduce = AGGREGATORS[aggregation]
    return np.apply_along_axis(lambda v: reduce(v, threshold), axis, x)


def combine(
    scores: np.ndarray, w: np.ndarray, aggregation: str, order: str, threshold: float = 0.5
) -> float:
    """One score from ``scores`` (frames x models) and normalised weights ``w`` (models,), in one
    of the two :data:`ORDERS`: reduce each model over frames then weigh, or weigh then reduce."""
    if order not in ORDERS:
        raise BadSettingsError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    scores = np.asarray(scores, dtype=float)
    if order == "aggregate_then_combine":
        return float(reduce_frames(scores, aggregation, 0, threshold) @ w)
    return float(reduce_frames(scores @ w, aggregation, 0, threshold))
