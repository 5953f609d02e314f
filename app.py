"""Deepfake video analysis: navigation and the shared sidebar. Pages live in ``pages/``."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import streamlit as st

from pages import ui

st.set_page_config(
    page_title="Deepfake video analysis", page_icon=":material/policy:", layout="wide"
)

navigation = st.navigation(
    [
        st.Page("pages/analyze.py", title="Analyze", icon=":material/movie:", default=True),
        st.Page("pages/timeline.py", title="Timeline", icon=":material/show_chart:"),
        st.Page("pages/explain.py", title="Faces / Explain", icon=":material/face:"),
        st.Page("pages/ensemble.py", title="Ensemble lab", icon=":material/tune:"),
        st.Page("pages/report.py", title="Report", icon=":material/description:"),
        st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
    ]
)
ui.sidebar_settings()
st.session_state[ui.VIA_NAVIGATION] = True
navigation.run()
