"""Faces / Explain: every person's faces over time, and Grad-CAM on all of a person's frames."""

import streamlit as st

from detector.models import get_spec
from detector.reporting.record import person_role
from detector.reporting.visual import CAM_LAYERS
from pages import actions, charts, state, ui, views

MAX_CAM_FACES = 24  # Grad-CAM runs on at most this many of a person's frames, evenly spaced

ui.page_setup()

st.title("Faces and explanations")
analysis = ui.require_ok_analysis()
if analysis is not None:
    verdict = ui.current_verdict(analysis)
    scores = analysis.scores
    n_frames = len({int(i) for i in scores.frame_indices})
    st.caption(
        "Each person keeps one colour on every page and in the report (timeline lines, face "
        "borders, boxes in the frames)."
    )
    rows_of = {
        t.track_id: [int(f) for f in scores.face_ids[scores.track_ids == t.track_id]]
        for t in verdict.tracks
    }
    for ts in verdict.tracks:
        faces = rows_of[ts.track_id]
        st.markdown(
            f"**Person {ts.track_id + 1}** · in {ts.n_frames} of {n_frames} sampled frames with "
            f"faces · manipulation score {ts.p_fake:.3f} · {person_role(ts, verdict)}"
        )
        shown = faces[:: max(1, len(faces) // 16)][:16]
        views.face_strip(analysis, shown)

    st.subheader("Grad-CAM")
    st.caption(
        f"Where a model found evidence for 'fake' in a face ({CAM_LAYERS}), drawn on one fixed "
        "scale for every face and model, so a weak map stays faint. Only scored faces are "
        "explained."
    )
    views.colour_bar()
    frame_models = [m for m in scores.models if get_spec(m).gradcam_layer]
    without = [m for m in scores.models if m not in frame_models]
    if without:
        st.caption(
            f"No Grad-CAM for {', '.join(without)}: temporal members score windows of a "
            "person's crops (their score per window is the band on the Timeline page) and "
            "two-stream members also look at motion, so one heatmap on one crop would not show "
            "what they used."
        )
    people = [ts.track_id for ts in verdict.tracks]
    opened = ui.selected_face()
    default_person = (
        analysis.face(opened).track_id if opened is not None else (verdict.deciding_track_id)
    )
    c1, c2 = st.columns(2)
    person = c1.selectbox(
        "Person",
        people,
        index=people.index(default_person),
        format_func=lambda t: f"Person {t + 1} ({len(rows_of[t])} frames)",
        key=state.CAM_PERSON,
    )
    model = c2.selectbox("Model", frame_models, key=state.CAM_MODEL)
    faces = rows_of[person]
    chosen = charts.evenly_spaced(faces, MAX_CAM_FACES)
    if not frame_models:
        st.info("None of the selected models has a Grad-CAM layer.")
    else:
        more = (
            f" ({len(chosen)} of {len(faces)}, evenly spaced)" if len(chosen) < len(faces) else ""
        )
        label = f"Run Grad-CAM on person {person + 1}'s frames{more}"
        if st.button(label, type="primary", key="run_gradcam"):
            actions.run_gradcams(analysis, chosen, model)
        done = [(fid, actions.cached_gradcam(fid, model)) for fid in chosen]
        done = [(fid, cam) for fid, cam in done if cam is not None]
        if done:
            quiet = [cam for _, cam in done if not cam.stands_out]
            st.write(
                f"{model} on person {person + 1}: {len(done)} frame(s); nothing stands out in "
                f"{len(quiet)} of them."
            )
            for reason in sorted({cam.why_nothing for cam in quiet}):
                st.caption(f"Nothing stands out: {reason}.")
            cols = st.columns(6)
            for k, (fid, cam) in enumerate(done):
                views.gradcam_tile(analysis, fid, cam, cols[k % 6])
            ids = [fid for fid, _ in done]
            shown = st.selectbox(
                "Shown on the whole frame",
                ids,
                index=ids.index(opened) if opened in ids else 0,
                format_func=lambda f: (
                    f"{analysis.face(f).timestamp_s:.2f} s (frame {analysis.face(f).frame_index})"
                ),
                key=state.CAM_FRAME,
            )
            views.gradcam_on_frame(analysis, shown, dict(done)[shown])
