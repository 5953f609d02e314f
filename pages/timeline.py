"""Timeline: per-frame scores over time, one line per model, the ensemble, the threshold."""

import streamlit as st

from detector.report import frame_scores_csv
from pages import charts, ui

ui.page_setup()

st.title("Timeline")
analysis = ui.require_ok_analysis()
if analysis is not None:
    scoring = ui.current_scoring(analysis)
    people = [t.track_id + 1 for t in analysis.tracks]
    verdict = ui.current_verdict(analysis)
    person = verdict.deciding_track_id + 1
    if len(people) > 1:
        person = st.selectbox("Models shown for person", people, index=people.index(person))
    fig = charts.timeline_figure(analysis, scoring, person)
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="timeline_chart")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points and points[0].get("customdata"):
        st.session_state[ui.SELECTED_FACE] = int(points[0]["customdata"][0])
    face_id = st.session_state.get(ui.SELECTED_FACE)
    if face_id is not None:
        face = analysis.face(face_id)
        left, right = st.columns([1, 3])
        left.image(face.crop, caption=f"person {face.track_id + 1}, t={face.timestamp_s:.2f} s")
        df = charts.scores_frame(analysis, scoring)
        right.dataframe(df[df["face_id"] == face_id], hide_index=True)
        right.page_link(
            "pages/explain.py", label="Explain this face with Grad-CAM", icon=":material/face:"
        )
    st.subheader("Per-frame scores")
    st.dataframe(charts.scores_frame(analysis, scoring), hide_index=True)
    st.download_button(
        "Download CSV",
        frame_scores_csv(analysis, scoring),
        file_name="frame_scores.csv",
        mime="text/csv",
    )
