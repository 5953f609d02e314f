"""Timeline: per-frame scores over time, one line per model, the ensemble, the threshold; click a
point to open its frame."""

from functools import partial

import streamlit as st

from detector.reporting.record import frame_scores_csv
from pages import charts, state, ui, views, voice_view

ui.page_setup()

st.title("Timeline")
analysis = ui.require_ok_analysis()
if analysis is not None:
    scoring = ui.current_scoring(analysis)
    verdict = ui.current_verdict(analysis)
    people = [t.track_id + 1 for t in analysis.tracks]
    person = verdict.deciding_track_id + 1
    if len(people) > 1:
        person = st.selectbox(
            "Models shown for person",
            people,
            index=people.index(person),
            format_func=lambda p: f"Person {p}",
            key=state.PERSON_SHOWN,
            help="Each model's line is drawn for one person; the thick lines are the ensemble "
            "of every person, in that person's colour.",
        )
    fig = charts.timeline_figure(analysis, scoring, person)
    event = st.plotly_chart(
        fig, on_select="rerun", selection_mode="points", key=state.TIMELINE_CHART
    )
    clicked = charts.face_id_from_selection(
        (event or {}).get("selection"), fig, analysis.scores.face_ids
    )
    if clicked is not None:
        ui.select_face(clicked)
    if analysis.audio is not None and analysis.audio.segments:  # the audio lane, same time axis
        st.caption("Voice: each scored speech window at its voice score (its own threshold)")
        st.plotly_chart(voice_view.voice_lane(analysis.audio), key="timeline_voice_lane")
    face_id = ui.selected_face()
    if face_id is None:
        st.caption("Click a point to open its frame, its face and the video at that time.")
    else:
        views.frame_viewer(analysis, face_id)
    st.subheader("Per-frame scores")
    st.caption("Manipulation score of every face, per model and for the weighted ensemble.")
    st.dataframe(charts.scores_table(analysis, scoring), hide_index=True)
    st.download_button(
        "Download CSV",
        partial(frame_scores_csv, analysis, scoring),  # made on click (see pages/report.py)
        file_name="frame_scores.csv",
        mime="text/csv",
        on_click="ignore",
    )
