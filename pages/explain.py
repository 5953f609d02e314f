"""Faces / Explain: every person's face crops over time, and Grad-CAM for a chosen face and model."""

import streamlit as st

from detector.models import get_spec
from pages import ui

ui.page_setup()

st.title("Faces and explanations")
analysis = ui.require_ok_analysis()
if analysis is not None:
    verdict = ui.current_verdict(analysis)
    scores = analysis.scores
    row_of = {int(f): i for i, f in enumerate(scores.face_ids)}
    for track in analysis.tracks:
        ts = next(t for t in verdict.tracks if t.track_id == track.track_id)
        with st.expander(
            f"Person {track.track_id + 1}: {len(track.face_ids)} faces, ensemble p_fake "
            f"{ts.p_fake:.3f}"
            + ("" if ts.decisive else " (seen briefly: not used for the verdict)"),
            expanded=track.track_id == verdict.deciding_track_id,
        ):
            shown = track.face_ids[:: max(1, len(track.face_ids) // 12)][:12]
            cols = st.columns(6)
            for k, fid in enumerate(shown):
                face = analysis.face(fid)
                cols[k % 6].image(face.crop, caption=f"{face.timestamp_s:.1f} s", width=110)

    st.subheader("Grad-CAM")
    st.caption(
        "Where a model looked when it scored this face as fake (Grad-CAM on its last "
        "convolutional layer). Computed on demand for the face and model you choose."
    )
    default_face = st.session_state.get(ui.SELECTED_FACE, int(scores.face_ids[0]))
    face_ids = [int(f) for f in scores.face_ids]
    c1, c2 = st.columns(2)
    face_id = c1.selectbox(
        "Face",
        face_ids,
        index=face_ids.index(default_face) if default_face in face_ids else 0,
        format_func=lambda f: (
            f"person {analysis.face(f).track_id + 1} at {analysis.face(f).timestamp_s:.1f} s "
            f"(frame {analysis.face(f).frame_index})"
        ),
    )
    frame_models = [m for m in scores.models if get_spec(m).gradcam_layer]
    without = [m for m in scores.models if m not in frame_models]
    if without:
        st.caption(
            f"No Grad-CAM for {', '.join(without)}: temporal members score windows of a "
            "person's crops (their score per window is the band on the Timeline page) and "
            "two-stream members also look at motion, so one heatmap on one crop would not show "
            "what they used."
        )
    model = c2.selectbox("Model", frame_models)
    if not frame_models:
        st.info("None of the selected models has a Grad-CAM layer.")
    elif st.button("Compute Grad-CAM", type="primary"):
        ui.gradcam(analysis, face_id, model)
    cams = [(f, c) for f, c in ui.gradcams_for_current() if f == face_id]
    for fid, cam in cams:
        left, right = st.columns(2)
        left.image(analysis.face(fid).crop, caption="face crop", width=260)
        right.image(cam.overlay, caption=f"{cam.model}: p_fake {cam.p_fake:.3f}", width=260)
