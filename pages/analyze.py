"""Analyze: upload a clip (or pick an example), run the pipeline, show the verdict."""

import streamlit as st

from pages import actions, state, ui, views, voice_view

ui.page_setup()

st.title("Analyze a video")
st.write(
    "Upload a clip or pick an example. Faces are found in sampled frames, every face is scored "
    "by each model of the ensemble, and the scores are combined into a verdict."
)

source = st.radio(
    "Source",
    ["Upload a file", "Example clip"],
    horizontal=True,
    key=state.SOURCE,
    on_change=ui.clear_current,
)
if source == "Upload a file":
    upload = st.file_uploader(
        "Video file",
        type=state.UPLOAD_TYPES,
        key=state.UPLOAD,
        on_change=ui.clear_current,
        help="Checked by content, not by extension. The file is deleted after analysis; the "
        "video stays in this browser session's memory for the player.",
    )
    if upload is not None and st.button("Analyze", type="primary", key="run_upload"):
        ui.run_analysis(upload.getvalue(), upload.name)
else:
    examples = ui.example_choices()
    choice = st.selectbox("Example", list(examples), key=state.EXAMPLE, on_change=ui.clear_current)
    if st.button("Analyze", type="primary", key="run_example"):
        ui.run_analysis(None, examples[choice].name, path=examples[choice])

analysis = ui.current_analysis()
if analysis is not None:
    st.subheader(analysis.video.name if analysis.video else "Result")
    if ui.settings_differ(analysis):
        st.info(
            "The sidebar now asks for other models or sampling than this result was made "
            "with; press Analyze to run them."
        )
    if analysis.ok:
        views.verdict_card(analysis, ui.current_verdict(analysis), controls=True)
        v = analysis.video
        st.caption(
            f"{v.width}x{v.height}, {v.fps:.2f} fps, {v.duration_s:.1f} s, {v.codec}; "
            f"{len(analysis.frames)} frames sampled ({analysis.sampling}), "
            f"{len(analysis.faces)} faces in {len(analysis.tracks)} track(s); "
            f"SHA-256 {v.sha256[:16]}…"
        )
        for note in analysis.notes:
            st.warning(note)
        st.page_link("pages/timeline.py", label="See the timeline", icon=":material/show_chart:")
    else:
        ui.show_status(analysis)
    voice_view.voice_section(analysis)
    views.provenance_section(*actions.current_provenance(analysis))
