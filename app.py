"""Deepfake video analysis: navigation and the shared sidebar. Pages live in ``pages/``.

Everything the browser loads comes from this server (air-gapped machines): the page icon is a
bundled PNG (a ``:material/...:`` page icon would make the browser fetch it from Google's font
servers; the material icons of the navigation are in Streamlit's own bundled font).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import streamlit as st

from detector.settings import PROJECT_ROOT
from pages import state, ui

st.set_page_config(
    page_title="Deepfake video analysis",
    page_icon=PROJECT_ROOT / "assets" / "icon.png",
    layout="wide",
)
ui.start_preload()

navigation = st.navigation(
    [
        st.Page("pages/analyze.py", title="Analyze", icon=":material/movie:", default=True),
        st.Page("pages/batch.py", title="Batch", icon=":material/video_library:"),
        st.Page("pages/timeline.py", title="Timeline", icon=":material/show_chart:"),
        st.Page("pages/explain.py", title="Faces / Explain", icon=":material/face:"),
        st.Page("pages/ensemble.py", title="Ensemble lab", icon=":material/tune:"),
        st.Page("pages/report.py", title="Report", icon=":material/description:"),
        st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
    ]
)
ui.sidebar_settings()
st.session_state[state.VIA_NAVIGATION] = True
navigation.run()
