"""Report: the PDF an analyst files, plus JSON and CSV exports of the same analysis."""

import json

import streamlit as st

from detector.pdf import render_pdf
from detector.report import analysis_to_dict, frame_scores_csv
from pages import ui

ui.page_setup()

st.title("Report")
analysis = ui.current_analysis()
if analysis is None:
    st.info("Analyse a clip on the Analyze page first.")
else:
    scoring = ui.current_scoring(analysis) if analysis.ok else None
    if not analysis.ok:
        ui.show_status(analysis)
        st.write("The report below records that no verdict could be given, and why.")
    cams = ui.gradcams_for_current()
    st.write(
        f"The PDF holds the verdict and its explanation, the settings, the timeline, face "
        f"thumbnails per person, {len(cams)} Grad-CAM image(s) computed on the Faces page, the "
        "per-frame table, the paper-style breakdown, limitations and software versions."
    )
    stem = analysis.video.sha256[:12] if analysis.video else "analysis"
    pdf = render_pdf(analysis, scoring, gradcams=cams)
    st.download_button(
        "Download PDF report",
        pdf,
        file_name=f"deepfake-report-{stem}.pdf",
        mime="application/pdf",
        type="primary",
        key="download_pdf",
    )
    doc = analysis_to_dict(analysis, scoring)
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download JSON",
        json.dumps(doc, indent=2),
        file_name=f"deepfake-report-{stem}.json",
        mime="application/json",
        key="download_json",
    )
    c2.download_button(
        "Download CSV",
        frame_scores_csv(analysis, scoring),
        file_name=f"frame-scores-{stem}.csv",
        mime="text/csv",
        key="download_csv",
    )
