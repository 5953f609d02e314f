"""Report: the case details, then the PDF an analyst files, plus JSON and CSV of the same analysis."""

import json
import re
from functools import partial

import streamlit as st

from detector.reporting.pdf import render_pdf
from detector.reporting.record import analysis_to_dict, frame_scores_csv
from detector.verdict.verdict import VERDICT_WORDS
from pages import actions, state, ui


def _json_report(analysis, scoring, case) -> str:
    return json.dumps(analysis_to_dict(analysis, scoring, case=case), indent=2, ensure_ascii=False)


ui.page_setup()

st.title("Report")
analysis = ui.current_analysis()
prepared = False
if analysis is None:
    st.info("Analyse a clip on the Analyze page first.")
else:
    scoring = ui.current_scoring(analysis) if analysis.ok else None
    if not analysis.ok:
        ui.show_status(analysis)
        st.write("The report below records that no verdict could be given, and why.")
    if analysis.ok:
        verdict = ui.current_verdict(analysis)
        st.markdown(
            f"Verdict to be filed: **{VERDICT_WORDS[verdict.label]}** (manipulation score "
            f"{verdict.p_fake:.3f}, person {verdict.deciding_track_id + 1} decides)."
        )
        if marks := ui.custom_marks(analysis):
            st.warning("**Custom settings:** " + "; ".join(marks) + ".", icon=":material/tune:")
    cams = actions.gradcams_for_current()
    st.write(
        f"The PDF holds the case, the verdict and who decided it, the settings, the timeline, "
        f"face thumbnails per person, {len(cams)} Grad-CAM image(s) computed on the Faces page, "
        "the file's provenance (content credentials, metadata, findings), the per-frame "
        "table, limitations, the app version; the models' training details and the core "
        "paper's layout are in an appendix."
    )
    # A form: the fields reach the report all together, with its button. Fields that commit on
    # blur lost what was typed last when the analyst went straight from a field to a download
    # (the file was made before the blur's rerun had saved the field).
    case = actions.case_info()
    st.subheader("Case")
    with st.form(state.CASE_FORM, border=False, enter_to_submit=False):
        c1, c2 = st.columns(2)
        c1.text_input("Case id", case.case_id, key=state.CASE_ID_INPUT)
        c2.text_input("Analyst", case.analyst, key=state.ANALYST_INPUT)
        st.text_area(
            "Notes", case.notes, key=state.NOTES_INPUT, help="Printed in the report as written."
        )
        if st.form_submit_button("Prepare the report", type="primary"):
            actions.save_case_info()  # the session keeps them when the page is left
            st.session_state[state.REPORT_FOR] = st.session_state.get(state.CURRENT)
    case = actions.case_info()
    prepared = st.session_state.get(state.REPORT_FOR) == st.session_state.get(state.CURRENT)
    if not prepared:
        st.info(
            "Press **Prepare the report** to make the PDF, JSON and CSV of this analysis with "
            "the case details above.",
            icon=":material/description:",
        )
if prepared:  # (False without an analysis)
    carried = re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$])", r"\\\1", case.in_words())  # as typed
    st.markdown(
        f"The files below carry {carried}. To change them, edit the fields and press "
        "**Prepare the report** again."
    )
    analysis = actions.with_current_provenance(analysis)  # under the trust anchors set now
    stem = analysis.video.sha256[:12] if analysis.video else "analysis"
    # The files are made when a button is clicked (a callable, run by Streamlit on click), not
    # on every run: a PDF takes about a second, and a run that renders one cannot be stopped,
    # so quick reruns overlapped and one run's clean-up removed the file the page still
    # offered (the download failed with a 404). No rerun on click either.
    st.download_button(
        "Download PDF report",
        partial(render_pdf, analysis, scoring, gradcams=cams, case=case),
        file_name=f"deepfake-report-{stem}.pdf",
        mime="application/pdf",
        type="primary",
        key="download_pdf",
        on_click="ignore",
    )
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download JSON",
        partial(_json_report, analysis, scoring, case),
        file_name=f"deepfake-report-{stem}.json",
        mime="application/json",
        key="download_json",
        on_click="ignore",
    )
    c2.download_button(
        "Download CSV",
        partial(frame_scores_csv, analysis, scoring),
        file_name=f"frame-scores-{stem}.csv",
        mime="text/csv",
        key="download_csv",
        on_click="ignore",
    )
