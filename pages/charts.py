"""Plotly figures for the pages (pure functions of an analysis and scoring settings)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from detector.aggregate import ensemble_per_face
from detector.types import Analysis, ScoringSettings

PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
PERSON_COLOURS = ["#d62728", "#ff7f0e", "#17becf", "#9467bd", "#2ca02c"]


def scores_frame(analysis: Analysis, scoring: ScoringSettings) -> pd.DataFrame:
    """One row per face: where and when, every model's p_fake and the weighted ensemble."""
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
                    "p_fake=%{y:.3f}<extra></extra>",
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
                customdata=one[["face_id", "frame_index"]].to_numpy(),
                hovertemplate=f"{m}<br>t=%{{x:.2f}} s, frame %{{customdata[1]}}<br>p_fake=%{{y:.3f}}<extra></extra>",
            )
        )
    for i, p in enumerate(people):
        sub = df[df["person"] == p]
        fig.add_trace(
            go.Scatter(
                x=sub["timestamp_s"],
                y=sub["ensemble"],
                mode="lines+markers",
                name=f"Ensemble, person {p}" if len(people) > 1 else "Ensemble",
                line={"color": PERSON_COLOURS[i % len(PERSON_COLOURS)], "width": 3},
                marker={"size": 8},
                customdata=sub[["face_id", "frame_index"]].to_numpy(),
                hovertemplate="Ensemble<br>t=%{x:.2f} s, frame %{customdata[1]}<br>"
                "p_fake=%{y:.3f}<extra>click to open</extra>",
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
        yaxis_title="p_fake",
        yaxis_range=[-0.02, 1.02],
        height=420,
        margin={"l": 40, "r": 10, "t": 30, "b": 40},
        legend={"orientation": "h"},
        clickmode="event+select",
    )
    return fig


def breakdown_dataframe(table) -> pd.DataFrame:
    """A paper-style breakdown table (rows: models and ensembles; columns: frames, Average, Median)."""
    from detector.tables import round_half_up

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

    from detector.aggregate import ORDERS
    from detector.tables import weighting_label

    out = []
    for r in rows:
        r = asdict(r) if is_dataclass(r) else r
        out.append(
            {
                "Setting": weighting_label(r["weights"]),
                "Frames": "Average" if r["aggregation"] == "mean" else "Median",
                "Order": ORDERS[r["order"]],
                "Accuracy": f"{r['accuracy']:.4f}",
                "TPR": "—" if r.get("tpr") is None else f"{r['tpr']:.3f}",
                "TNR": "—" if r.get("tnr") is None else f"{r['tnr']:.3f}",
                "Videos": r["n"],
            }
        )
    return pd.DataFrame(out)
