"""Plotly figures for the pages (pure functions of an analysis and scoring settings)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from detector.reporting.visual import person_colour
from detector.types import Analysis, ScoringSettings
from detector.verdict.aggregate import ensemble_per_face

# Models are thin dotted lines in muted colours; people keep their own colours (detector.reporting.visual).
PALETTE = ["#7f7f7f", "#8c564b", "#bcbd22", "#17becf", "#9467bd", "#e377c2", "#1f77b4", "#2ca02c"]


def scores_frame(analysis: Analysis, scoring: ScoringSettings) -> pd.DataFrame:
    """One row per scored face: where and when, every model's score and the weighted ensemble."""
    s = analysis.scores
    df = pd.DataFrame(
        {
            "face_id": s.face_ids,
            "person": s.track_ids + 1,
            "frame_index": s.frame_indices,
            "timestamp_s": np.round(s.timestamps_s, 3),
        }
    )
    for j, m in enumerate(s.models):
        df[m] = s.p_fake[:, j]
    df["ensemble"] = ensemble_per_face(s, scoring.weights)
    return df


def evenly_spaced(items: list, n: int) -> list:
    """At most ``n`` of ``items``, evenly spaced, first and last included."""
    if len(items) <= n:
        return list(items)
    picks = np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))
    return [items[i] for i in picks]


def scores_table(analysis: Analysis, scoring: ScoringSettings) -> pd.DataFrame:
    """``scores_frame`` with the column names an analyst reads (manipulation scores per model)."""
    names = {"face_id": "face", "frame_index": "frame", "timestamp_s": "time (s)"}
    return scores_frame(analysis, scoring).rename(columns=names)


def timeline_figure(
    analysis: Analysis, scoring: ScoringSettings, person: int | None = None
) -> go.Figure:
    """Per-frame scores over time: each model for ``person``, the ensemble for every person."""
    df = scores_frame(analysis, scoring)
    fig = go.Figure()
    people = sorted(df["person"].unique())
    person = person if person in people else people[0]
    one = df[df["person"] == person]
    temporal = {c.name for c in analysis.models if c.kind == "track"}
    for k, m in enumerate(analysis.scores.models):
        if scoring.weights.get(m, 0) <= 0:
            continue
        if m in temporal:  # one score per window of the track: a band, not per-frame points
            fig.add_trace(
                go.Scatter(
                    x=one["timestamp_s"],
                    y=one[m],
                    mode="lines",
                    line_shape="hv",
                    fill="tozeroy",
                    opacity=0.35,
                    name=f"{m} (per window)",
                    line={"color": PALETTE[k % len(PALETTE)], "width": 6},
                    hovertemplate=f"{m}, temporal window<br>t=%{{x:.2f}} s<br>"
                    "score %{y:.3f}<extra></extra>",
                )
            )
            continue
        fig.add_trace(
            go.Scatter(
                x=one["timestamp_s"],
                y=one[m],
                mode="lines+markers",
                name=m,
                line={"color": PALETTE[k % len(PALETTE)], "width": 1, "dash": "dot"},
                marker={"size": 5},
                customdata=_customdata(one),
                hovertemplate=f"{m}<br>t=%{{x:.2f}} s, frame %{{customdata[1]}}<br>"
                "score %{y:.3f}<extra>click to open</extra>",
            )
        )
    for p in people:
        sub = df[df["person"] == p]
        fig.add_trace(
            go.Scatter(
                x=sub["timestamp_s"],
                y=sub["ensemble"],
                mode="lines+markers",
                name=f"Ensemble, person {p}",
                line={"color": person_colour(p - 1), "width": 3},
                marker={"size": 9},
                customdata=_customdata(sub),
                hovertemplate=f"Ensemble, person {p}<br>t=%{{x:.2f}} s, frame %{{customdata[1]}}"
                "<br>manipulation score %{y:.3f}<extra>click to open</extra>",
            )
        )
    fig.add_hline(
        y=scoring.threshold,
        line_dash="dash",
        line_color="black",
        annotation_text=f"threshold {scoring.threshold:.2f}",
        annotation_position="top left",
    )
    fig.update_layout(
        xaxis_title="time (s)",
        yaxis_title="manipulation score",
        yaxis_range=[-0.02, 1.02],
        height=420,
        margin={"l": 40, "r": 10, "t": 30, "b": 40},
        legend={"orientation": "h"},
        clickmode="event+select",
    )
    return fig


def _customdata(rows: pd.DataFrame) -> list[list[int]]:
    """(face id, frame index) per point as plain lists: numpy arrays would be sent as typed
    arrays, whose rows come back from the browser as {"0": .., "1": ..} objects."""
    return [[int(f), int(i)] for f, i in zip(rows["face_id"], rows["frame_index"], strict=True)]


def face_id_from_selection(selection, fig: go.Figure, face_ids) -> int | None:
    """The face id of the clicked point of a ``timeline_figure``, whatever shape it arrives in.

    A point's ``customdata`` may come back as a list ``[face_id, frame]``, as an object
    ``{"0": face_id, "1": frame}`` (a typed-array row serialised by the browser), as a bare
    number (one-column custom data) or not at all (a trace without custom data, e.g. a temporal
    band); then the trace and point index find it in the figure. Ids not in ``face_ids`` (a
    selection left over from another clip) are ignored.
    """
    points = (selection or {}).get("points") or []
    valid = {int(f) for f in face_ids}
    for point in points:
        for candidate in (_from_customdata(point.get("customdata")), _from_figure(point, fig)):
            if candidate is not None and candidate in valid:
                return candidate
    return None


def _as_int(value) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _from_customdata(data) -> int | None:
    if isinstance(data, dict):
        return _as_int(data.get("0", data.get(0)))
    if isinstance(data, list | tuple | np.ndarray):
        return _as_int(data[0]) if len(data) else None
    return _as_int(data)


def _from_figure(point, fig: go.Figure) -> int | None:
    curve = _as_int(point.get("curve_number", point.get("curveNumber")))
    index = _as_int(point.get("point_index", point.get("pointIndex", point.get("point_number"))))
    if curve is None or index is None or not 0 <= curve < len(fig.data):
        return None
    data = fig.data[curve].customdata
    if data is None or not 0 <= index < len(data):
        return None
    return _from_customdata(data[index])


def breakdown_dataframe(table) -> pd.DataFrame:
    """A paper-style breakdown table (rows: models and ensembles; columns: frames, Average, Median)."""
    from detector.reporting.tables import round_half_up

    rows = {}
    for row in table.rows:
        cells = {str(i + 1): round_half_up(v) for i, v in enumerate(table.per_frame[row.label])}
        cells["Average"] = round_half_up(row.average)
        cells["Median"] = round_half_up(row.median)
        rows[row.label] = cells
    return pd.DataFrame.from_dict(rows, orient="index")


def table5_dataframe(rows) -> pd.DataFrame:
    """Paper 000's Table 5 layout: accuracy per ensemble setting (rows as dicts or Table5Row)."""
    from dataclasses import asdict, is_dataclass

    from detector.reporting.record import ORDER_WORDS
    from detector.reporting.tables import weighting_label

    out = []
    for r in rows:
        r = asdict(r) if is_dataclass(r) else r
        out.append(
            {
                "Setting": weighting_label(r["weights"]),
                "Frames": "Average" if r["aggregation"] == "mean" else "Median",
                "Order": ORDER_WORDS[r["order"]],
                "Accuracy": f"{r['accuracy']:.4f}",
                "TPR": "—" if r.get("tpr") is None else f"{r['tpr']:.3f}",
                "TNR": "—" if r.get("tnr") is None else f"{r['tnr']:.3f}",
                "Videos": r["n"],
            }
        )
    return pd.DataFrame(out)
