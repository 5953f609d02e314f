"""Batch: analyse several clips with the loaded models, or read a finished scan's results.jsonl;
the clips sorted by score with their statuses, any clip opened in full, the summary as CSV."""

from functools import partial

import streamlit as st

from pages import batch_ui, state, ui

ui.page_setup()

st.title("Scan several clips")
st.write(
    "Analyse several clips one after another with the models already loaded, or open the "
    "`results.jsonl` of a finished `python -m detector scan`. Clips are listed by manipulation "
    "score; a clip without a verdict shows why, never a score."
)

source = st.radio(
    "Source",
    [batch_ui.FROM_UPLOADS, batch_ui.FROM_RESULTS],
    horizontal=True,
    key=batch_ui.SOURCE,
    on_change=batch_ui.clear_batch,
)
if source == batch_ui.FROM_UPLOADS:
    files = st.file_uploader(
        "Video files",
        type=state.UPLOAD_TYPES,
        accept_multiple_files=True,
        key=batch_ui.UPLOADS,
        help=f"Up to {batch_ui.MAX_UPLOADS} clips, checked by content. Each file is deleted after "
        "its analysis; the results stay in this browser session's memory only.",
    )
    if files and st.button("Analyze all", type="primary", key="run_batch"):
        batch_ui.run_batch(files)
else:
    st.file_uploader(
        "results.jsonl of a finished scan",
        type=["jsonl"],
        key=batch_ui.RESULTS_UPLOAD,
        on_change=batch_ui.load_results,
        help="Written by `python -m detector scan ... --out DIR` as DIR/results.jsonl.",
    )

batch = batch_ui.current_batch()
if batch is not None:
    if batch.note:
        st.warning(batch.note)
    if batch.entries:
        st.subheader(f"{len(batch_ui.rows(batch))} clip(s)")
        st.caption(batch_ui.counts(batch))
        st.dataframe(batch_ui.table(batch), hide_index=True, key="batch_table")
        st.download_button(
            "Download the summary (CSV)",
            partial(batch_ui.summary, batch),  # made on click (see pages/report.py)
            file_name="summary.csv",
            mime="text/csv",
            key="batch_summary",
            on_click="ignore",
        )
        labels = batch_ui.choices(batch)
        choice = st.selectbox(
            "Open a clip",
            list(labels),
            index=None,
            format_func=labels.get,
            placeholder="Choose a clip to see its full analysis",
            key=batch_ui.CHOICE,
        )
        if choice is not None:
            entry = batch.entries[choice]
            if entry.analysis is not None:
                if st.button("Open on the Analyze page", type="primary", key="open_batch_clip"):
                    batch_ui.open_on_analyze(entry)
            else:
                batch_ui.document_view(entry.record)
