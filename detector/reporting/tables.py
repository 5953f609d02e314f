"""Per-frame breakdown tables and ensemble accuracy tables, in the layout of Latipova &
Yadryshnikova, "Development of Neural Networks for Deepfake Recognition" (Tables 3, 4 and 5).

A *breakdown table* (the paper's Tables 3 and 4) has one row per model and one row per ensemble
weighting; its columns are the per-frame scores, then the Average and the Median over frames.
It works for any clip: any number of frames, any set of models, any weightings.

Two orders of operations give an ensemble row its Average and Median:

* ``"aggregate_then_combine"`` (the paper's, and the default): aggregate each model over the frames
  first (mean or median), then take the weighted sum of those per-model aggregates.
* ``"combine_then_aggregate"``: take the weighted sum of the models per frame first, then aggregate
  those per-frame ensemble scores over the frames.

The mean is linear, so both orders give the same Average; the Median differs in general. In the
paper's Table 3 the 0.5/0.5 ensemble's Median is 0.3241 the paper's way, 0.3530 the other way.
The per-frame ensemble columns are the same in both orders (weighted sum per frame).

*Table 5* (accuracy per ensemble setting) is computed by :func:`table5` on a labelled set of videos:
each setting (weighting x aggregation x order) turns a video into one score, ``score >= threshold``
is called fake, and accuracy, TPR (fake videos called fake) and TNR (real videos called real) follow.

Scores are ``p_fake`` in [0, 1], higher = more likely manipulated (label 1 = fake, 0 = real).

Rounding: :func:`format_table` prints 4 decimals rounding **half up** (half away from zero), after
first snapping each value to 10 decimals so that binary noise (``0.27765`` stored as
``0.2776499999...``) does not decide a decimal tie. :func:`table_to_dict` keeps unrounded floats.

Pure: numpy and the standard library only; no Streamlit, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np

from detector.errors import BadSettingsError
from detector.verdict import aggregate
from detector.verdict.aggregate import ORDERS, combine, reduce_frames

# One source for the two orders and their labels: detector.verdict.aggregate.
DEFAULT_ORDER = "aggregate_then_combine"

AGGREGATIONS: dict[str, str] = {"mean": "Average", "median": "Median"}
"""Frame aggregations used by the tables, keyed by name, with the column heading."""

DECIMALS = 4
ROUNDING = "half up (ties away from zero), after snapping to 10 decimals"


@dataclass(frozen=True)
class BreakdownRow:
    """One row of a breakdown table.

    Attributes:
        label: "Inception-ResNet-v2" for a model row, "Ensemble 0.5/0.5" or
            "Ensemble A 0.6 / B 0.4" for an ensemble row.
        average: mean over frames (for an ensemble row: per the table's order; same either way).
        median: median over frames (for an ensemble row: per the table's order).
        weights: ``None`` for a model row; for an ensemble row the normalised weights (summing to 1)
            of every model in the table, 0.0 for models the weighting leaves out.
    """

    label: str
    average: float
    median: float
    weights: dict[str, float] | None


@dataclass(frozen=True)
class BreakdownTable:
    """A paper-style per-frame breakdown: rows of models and ensembles, Average and Median columns.

    Attributes:
        title: caption, e.g. "Table 3. Video1 output analysis (class 0)".
        order: a key of :data:`ORDERS`, how the ensemble rows' Average and Median were computed.
        frame_count: number of frame columns.
        per_frame: per-frame scores keyed by row label, for every row (models and ensembles).
        rows: models first, in the order given, then one ensemble row per weighting.
    """

    title: str
    order: str
    frame_count: int
    per_frame: dict[str, tuple[float, ...]]
    rows: tuple[BreakdownRow, ...]


@dataclass(frozen=True)
class Table5Row:
    """Accuracy of one ensemble setting on a labelled set of videos.

    Attributes:
        weights: normalised weights of the setting (models it leaves out have 0.0).
        aggregation: "mean" or "median" over frames.
        order: a key of :data:`ORDERS`.
        accuracy: share of videos classified correctly.
        tpr: share of fake videos (label 1) called fake; NaN when the set has no fake video.
        tnr: share of real videos (label 0) called real; NaN when the set has no real video.
        n: number of videos.
    """

    weights: dict[str, float]
    aggregation: str
    order: str
    accuracy: float
    tpr: float
    tnr: float
    n: int


# --- validation -------------------------------------------------------------------------------


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise BadSettingsError(f"unknown order {order!r}; expected one of {sorted(ORDERS)}")


def _check_aggregation(aggregation: str) -> None:
    if aggregation not in AGGREGATIONS:
        raise BadSettingsError(
            f"unknown aggregation {aggregation!r}; expected one of {sorted(AGGREGATIONS)}"
        )


def _score_matrix(per_model_scores: Mapping[str, Sequence[float]]) -> tuple[list[str], np.ndarray]:
    """Models in the given order and a (models x frames) float array; checks shape and values."""
    if not per_model_scores:
        raise BadSettingsError("no models: per_model_scores is empty")
    names = list(per_model_scores)
    rows = [np.asarray(per_model_scores[name], dtype=float).reshape(-1) for name in names]
    counts = {name: row.size for name, row in zip(names, rows, strict=True)}
    if len(set(counts.values())) != 1:
        raise BadSettingsError(f"models have unequal frame counts: {counts}")
    if rows[0].size == 0:
        raise BadSettingsError("no frames: every model has an empty score sequence")
    matrix = np.vstack(rows)
    if not np.all(np.isfinite(matrix)):
        raise BadSettingsError("scores must be finite numbers (found NaN or infinity)")
    return names, matrix


def normalise_weights(weighting: Mapping[str, float], models: Sequence[str]) -> dict[str, float]:
    """Weights for every model in ``models`` (0.0 where the weighting is silent), summing to 1.

    Raises:
        BadSettingsError (a ValueError): weights for models not in ``models``, a negative or
            non-finite weight, or weights summing to zero.
    """
    w = aggregate.normalise_weights(weighting, tuple(models))
    return {name: float(x) for name, x in zip(models, w, strict=True)}


def _fmt_weight(w: float) -> str:
    return f"{w:.4g}"


def weighting_label(weights: Mapping[str, float]) -> str:
    """Row label for normalised weights: "Ensemble 0.5/0.5" when every model has the same weight,
    otherwise "Ensemble A 0.6 / B 0.4" naming the models with a non-zero weight."""
    values = list(weights.values())
    if values and all(math.isclose(w, values[0], rel_tol=1e-12) for w in values):
        return "Ensemble " + "/".join(_fmt_weight(w) for w in values)
    parts = [f"{name} {_fmt_weight(w)}" for name, w in weights.items() if w > 0]
    return "Ensemble " + " / ".join(parts)


# --- aggregation ------------------------------------------------------------------------------


# --- Tables 3 and 4 ---------------------------------------------------------------------------


def breakdown_table(
    title: str,
    per_model_scores: Mapping[str, Sequence[float]],
    weightings: Sequence[Mapping[str, float]],
    order: str = DEFAULT_ORDER,
) -> BreakdownTable:
    """Build a paper-style breakdown table (Tables 3 and 4) for one clip.

    Args:
        title: caption of the table.
        per_model_scores: per-frame ``p_fake`` of each model, all of the same length (>= 1).
        weightings: one mapping model -> weight per ensemble row; normalised to sum to 1; models
            left out get weight 0. May be empty (model rows only).
        order: a key of :data:`ORDERS`; the paper's ``"aggregate_then_combine"`` by default.

    Raises:
        BadSettingsError (a ValueError): see :func:`normalise_weights`; also unequal or zero frame
            counts, non-finite scores, an unknown order, or two weightings giving the same row.
    """
    _check_order(order)
    names, matrix = _score_matrix(per_model_scores)
    means = reduce_frames(matrix, "mean")
    medians = reduce_frames(matrix, "median")

    rows: list[BreakdownRow] = []
    per_frame: dict[str, tuple[float, ...]] = {}
    for i, name in enumerate(names):
        rows.append(BreakdownRow(name, float(means[i]), float(medians[i]), None))
        per_frame[name] = tuple(float(x) for x in matrix[i])

    for weighting in weightings:
        weights = normalise_weights(weighting, names)
        label = weighting_label(weights)
        if label in per_frame:
            continue  # two weightings that normalise alike make one row
        w = np.array([weights[name] for name in names])
        rows.append(
            BreakdownRow(
                label,
                combine(matrix.T, w, "mean", order),
                combine(matrix.T, w, "median", order),
                weights,
            )
        )
        per_frame[label] = tuple(float(x) for x in w @ matrix)

    return BreakdownTable(title, order, int(matrix.shape[1]), per_frame, tuple(rows))


def round_half_up(x: float, decimals: int = DECIMALS) -> str:
    """``x`` as text with ``decimals`` places, ties rounded away from zero (see module docstring)."""
    if not math.isfinite(x):
        return str(x)
    snapped = Decimal(repr(round(x, 10)))
    return str(snapped.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def format_table(t: BreakdownTable, *, max_frame_columns: int | None = None) -> str:
    """Plain-text rendering for the CLI: title, order, then the paper's column layout.

    Args:
        t: the table.
        max_frame_columns: show at most this many frame columns (first and last halves, with
            "..." between); ``None`` shows every frame. Average and Median are always shown.
    """
    frames = list(range(t.frame_count))
    if max_frame_columns is not None and t.frame_count > max_frame_columns:
        head = max(1, (max_frame_columns + 1) // 2)
        tail = max(0, max_frame_columns - head)
        shown: list[int | None] = [*frames[:head], None, *frames[t.frame_count - tail :]]
    else:
        shown = list(frames)

    header = ["Output \\ Frame", *("..." if i is None else str(i + 1) for i in shown)]
    header += ["Average", "Median"]
    body = []
    for row in t.rows:
        scores = t.per_frame[row.label]
        cells = [row.label, *("..." if i is None else round_half_up(scores[i]) for i in shown)]
        cells += [round_half_up(row.average), round_half_up(row.median)]
        body.append(cells)

    widths = [max(len(r[c]) for r in [header, *body]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "-" * len(line(header))
    out = [
        t.title,
        f"Ensemble Average/Median: {ORDERS[t.order]}; {t.frame_count} frame(s); "
        f"{DECIMALS} decimals, rounded {ROUNDING}.",
        rule,
        line(header),
        rule,
        *(line(cells) for cells in body),
        rule,
    ]
    return "\n".join(out)


def table_to_dict(t: BreakdownTable) -> dict[str, Any]:
    """JSON-ready form of a breakdown table (unrounded floats)."""
    return {
        "title": t.title,
        "order": t.order,
        "order_label": ORDERS[t.order],
        "frame_count": t.frame_count,
        "rows": [
            {
                "label": row.label,
                "kind": "model" if row.weights is None else "ensemble",
                "weights": None if row.weights is None else dict(row.weights),
                "per_frame": list(t.per_frame[row.label]),
                "average": row.average,
                "median": row.median,
            }
            for row in t.rows
        ],
    }


# --- Table 5 ----------------------------------------------------------------------------------


def table5(
    videos: Sequence[tuple[int, Mapping[str, Sequence[float]]]],
    weightings: Sequence[Mapping[str, float]],
    aggregations: Sequence[str] = ("mean", "median"),
    orders: Sequence[str] = tuple(ORDERS),
    threshold: float = 0.5,
) -> list[Table5Row]:
    """Accuracy of each ensemble setting on a labelled set of videos (the paper's Table 5).

    Each setting is a weighting x aggregation x order; a video's score is computed as in
    :func:`breakdown_table` and called fake when ``score >= threshold``. With ``"mean"`` both
    orders give the same score, so their rows agree (up to floating-point rounding at the
    threshold).

    Args:
        videos: ``(label, per_model_scores)`` per video; label 1 = fake, 0 = real; within a video
            every model has the same number of frames (videos may differ); every video has the
            same set of models.
        weightings: model -> weight mappings, normalised as in :func:`normalise_weights`.
        aggregations: names from :data:`AGGREGATIONS`.
        orders: keys of :data:`ORDERS`.
        threshold: decision threshold on the ensemble ``p_fake``.

    Returns:
        One row per setting, weightings outermost, then aggregations, then orders.

    Raises:
        BadSettingsError (a ValueError): no videos, a label other than 0/1, videos with different
            model sets, bad scores or weights, unknown aggregation or order, non-finite threshold.
    """
    if not videos:
        raise BadSettingsError("no videos to evaluate")
    if not math.isfinite(threshold):
        raise BadSettingsError(f"threshold must be a finite number: {threshold!r}")
    for aggregation in aggregations:
        _check_aggregation(aggregation)
    for order in orders:
        _check_order(order)

    labels: list[int] = []
    matrices: list[np.ndarray] = []
    names: list[str] | None = None
    for k, (label, scores) in enumerate(videos):
        if label not in (0, 1) or isinstance(label, bool):
            raise BadSettingsError(f"video {k}: label must be 0 (real) or 1 (fake), got {label!r}")
        video_names, matrix = _score_matrix(scores)
        if names is None:
            names = video_names
        elif set(video_names) != set(names):
            raise BadSettingsError(f"video {k} has models {video_names}, video 0 has {names}")
        else:
            matrix = matrix[[video_names.index(name) for name in names]]
        labels.append(int(label))
        matrices.append(matrix)
    assert names is not None
    y = np.array(labels)

    out: list[Table5Row] = []
    for weighting in weightings:
        weights = normalise_weights(weighting, names)
        w = np.array([weights[name] for name in names])
        for aggregation in aggregations:
            for order in orders:
                scores = np.array([combine(m.T, w, aggregation, order) for m in matrices])
                pred = (scores >= threshold).astype(int)
                fake, real = y == 1, y == 0
                out.append(
                    Table5Row(
                        weights=dict(weights),
                        aggregation=aggregation,
                        order=order,
                        accuracy=float(np.mean(pred == y)),
                        tpr=float(np.mean(pred[fake] == 1)) if fake.any() else math.nan,
                        tnr=float(np.mean(pred[real] == 0)) if real.any() else math.nan,
                        n=len(y),
                    )
                )
    return out


def format_table5(rows: Sequence[Table5Row], threshold: float = 0.5) -> str:
    """Plain-text rendering of :func:`table5` rows for the CLI (4 decimals, half up).

    ``threshold`` only labels the caption: pass the one the rows were computed with.
    """
    header = ["Setting of ensemble", "Aggregation", "Order", "Accuracy", "TPR", "TNR", "n"]
    body = [
        [
            weighting_label(row.weights),
            row.aggregation,
            ORDERS[row.order],
            round_half_up(row.accuracy),
            round_half_up(row.tpr),
            round_half_up(row.tnr),
            str(row.n),
        ]
        for row in rows
    ]
    widths = [max(len(r[c]) for r in [header, *body]) for c in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    head = "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()
    rule = "-" * len(head)
    title = f"Accuracy per ensemble setting (fake when p_fake >= {threshold})"
    return "\n".join([title, rule, head, rule, *lines, rule])
