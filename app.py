"""Deepfake video analysis: navigation and the shared sidebar. Pages live in ``pages/``."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import streamlit as st

from pages import ui

st.set_page_config(page_title="Deepfake video analysis", page_icon="🔎", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/analyze.py", title="Analyze", icon="🎬", default=True),
        st.Page("pages/timeline.py", title="Timeline", icon="📈"),
        st.Page("pages/explain.py", title="Faces / Explain", icon="🧑"),
        st.Page("pages/ensemble.py", title="Ensemble lab", icon="⚖️"),
        st.Page("pages/report.py", title="Report", icon="📄"),
        st.Page("pages/models.py", title="Models", icon="🧠"),
    ]
)
ui.sidebar_settings()
navigation.run()
