"""The voice on the pages: its verdict card and its lane (per-window scores over time).

Judged apart from the faces (:mod:`detector.audio`); this module only shows what the analysis
holds. The figure is a pure function of the audio part, testable without Streamlit.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from detector.audio.records import AudioAnalysis
from detector.audio.reporting import STATUS_WORDS, verdict_line
from detector.types import Analysis


def voice_lane(a: AudioAnalysis) -> go.Figure:
    """Each scored speech window as a segment at its voice score; speech shaded; threshold."""
    fig = go.Figure()
    for s, e in a.speech:
        fig.add_vrect(x0=s, x1=e, fillcolor="#dde8f5", line_width=0, layer="below")
    for seg in a.segments:
        fig.add_trace(
            go.Scatter(
                x=[seg.start_s, seg.end_s],
                y=[seg.p_fake, seg.p_fake],
                mode="lines",
                line={"color": "#b3261e", "width": 5},
                name=f"{seg.start_s:.1f}–{seg.end_s:.1f} s",
                hovertemplate=f"{seg.start_s:.2f}–{seg.end_s:.2f} s: voice score "
                f"{seg.p_fake:.3f}" + (" (tiled)" if seg.tiled else "") + "<extra></extra>",
                showlegend=False,
            )
        )
    if a.verdict is not None:
        fig.add_hline(y=a.verdict.threshold, line_dash="dash", line_color="black")
    fig.update_layout(
        height=200,
        margin={"l": 40, "r": 10, "t": 10, "b": 40},
        xaxis={"title": "time (s); shaded: speech", "range": [0, max(a.duration_s, 1.0)]},
        yaxis={"title": "voice score", "range": [0, 1]},
    )
    return fig


def voice_section(analysis: Analysis) -> None:
    """Voice: the two-part verdict line, the voice's own verdict or state, and its lane."""
    a = analysis.audio
    if a is None:
        return
    st.subheader("Voice")
    st.caption(
        "The audio track, judged apart from the faces by a speech anti-spoofing model with its "
        "own calibrated threshold; it never changes the faces' manipulation score."
    )
    st.markdown(f"**{verdict_line(analysis)}**")
    if a.verdict is None:
        st.info(f"No voice verdict: {STATUS_WORDS.get(a.status, a.status)}. {a.message}")
        return
    v = a.verdict
    show = st.error if v.label == "fake" else st.warning if v.label == "uncertain" else st.success
    show(f"**{v.words}**: voice score {v.p_fake:.2f} (threshold {v.threshold:.2f})")
    st.plotly_chart(voice_lane(a), key="voice_lane")
    st.caption(
        f"{len(a.segments)} window(s) over {a.speech_s:.1f} s of speech; member {a.member}. "
        f"{v.rule}. It knows 2019-era synthetic speech and the local systems it was checked "
        "on; modern neural TTS and voice clones it never saw can pass as real."
    )
    for note in a.notes:
        st.warning(note)


def ensemble_note(analysis: Analysis) -> None:
    """The Ensemble lab's line for the voice: its weight in the faces' score is zero."""
    a = analysis.audio
    if a is None:
        return
    if a.verdict is None:
        state = STATUS_WORDS.get(a.status, a.status)
        st.caption(f"Voice member {a.member or '—'}: weight 0 in the faces' score; {state}.")
        return
    v = a.verdict
    st.caption(
        f"Voice member {a.member}: weight 0 in the faces' score (judged apart, {v.reduction} of "
        f"its windows, threshold {v.threshold:.2f}): {v.words}, voice score {v.p_fake:.2f}."
    )


def audio_model_cards() -> None:
    """The Models page's cards for the audio members (not in the face picker)."""
    from detector.models import list_models, model_card

    for name in list_models(kinds=("audio",)):
        card = model_card(name)
        with st.container(border=True):
            st.markdown(f"#### {name} · {card.family} · _voice, judged apart from the faces_")
            st.write(card.description)
            st.markdown(
                f"**Trained on** {card.trained_on}  \n"
                f"**Licence** {card.licence or '—'}  \n"
                f"**Data terms** {card.data_terms or '—'}  \n"
                f"**Weights sha256** `{(card.sha256 or 'none')[:16]}…`"
            )
            if card.notes:
                st.caption(card.notes)
            if card.metrics:
                with st.expander("All recorded metrics"):
                    st.json(card.metrics)
