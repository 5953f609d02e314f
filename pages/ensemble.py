"""Ensemble lab: re-weight models, change aggregation and threshold (no new inference), and the
core paper's Tables 3, 4 and 5 reproduced."""

from dataclasses import replace

import streamlit as st

from detector.reporting.paper000 import PRINTED_TABLE5, reproduce_tables
from detector.reporting.record import ORDER_WORDS
from detector.reporting.tables import breakdown_table
from detector.verdict.aggregate import AGGREGATOR_LABELS
from pages import actions, charts, state, ui, views, voice_view

ui.page_setup()

st.title("Ensemble lab")
analysis = ui.current_analysis()
if analysis is not None and analysis.ok:
    scoring = ui.current_scoring(analysis)
    models = list(analysis.scores.models)
    st.subheader("Weights and aggregation")
    st.caption("Changes apply to this clip only and are marked on its verdict and report.")
    ui.init_lab_widgets(scoring)
    cols = st.columns(len(models))
    raw = {}
    for col, m in zip(cols, models, strict=True):
        raw[m] = col.slider(m, 0.0, 1.0, step=0.05, key=ui.weight_key(m))
    total = sum(raw.values())
    if total <= 0:
        st.error("Give at least one model a weight above zero.")
    else:
        st.caption("Normalised: " + ", ".join(f"{m} {w / total:.2f}" for m, w in raw.items()))
        voice_view.ensemble_note(analysis)
        c1, c2, c3 = st.columns(3)
        aggregation = c1.selectbox(
            "Frames → person",
            list(AGGREGATOR_LABELS),
            format_func=AGGREGATOR_LABELS.get,
            key=state.AGGREGATION,
        )
        order = c2.radio("Order", list(ORDER_WORDS), format_func=ORDER_WORDS.get, key=state.ORDER)
        threshold = c3.slider("Threshold", 0.05, 0.95, step=0.01, key=state.THRESHOLD)
        new = replace(
            scoring, weights=raw, aggregation=aggregation, order=order, threshold=threshold
        )
        ui.set_scoring(new)
        st.button("Reset to defaults", key="reset_lab", on_click=ui.reset_scoring)
        verdict = ui.current_verdict(analysis)
        views.verdict_card(analysis, verdict)
        st.plotly_chart(
            charts.timeline_figure(analysis, new, verdict.deciding_track_id + 1), key="lab_timeline"
        )
        person = verdict.deciding_track_id
        rows = analysis.scores.track_ids == person
        per_model = {m: analysis.scores.p_fake[rows, j] for j, m in enumerate(models)}
        weightings = [raw, dict.fromkeys(models, 1.0)]
        clip_table = breakdown_table(
            f"Your clip, person {person + 1}: per-frame outputs", per_model, weightings, order=order
        )
        st.subheader("Your clip in the core paper's layout")
        st.caption(f"Ensemble Average/Median: {ORDER_WORDS[order]}.")
        st.dataframe(charts.breakdown_dataframe(clip_table))
elif analysis is not None:
    ui.show_status(analysis)
else:
    st.info(
        "Analyse a clip on the Analyze page to tune its ensemble; the paper's tables are below."
    )

st.divider()
st.subheader("The core paper (Latipova & Yadryshnikova) reproduced: Tables 3 and 4")
st.caption(
    "Rebuilt from the per-photo outputs of Inception-ResNet-v2 and Xception printed in the "
    "paper; 4 decimals, rounded half up."
)
paper_order = st.radio(
    "Ensemble Average/Median computed as",
    list(ORDER_WORDS),
    format_func=ORDER_WORDS.get,
    key=state.PAPER_ORDER,
)
for table in reproduce_tables(order=paper_order):
    st.markdown(f"**{table.title}**")
    st.dataframe(charts.breakdown_dataframe(table))
st.subheader("The core paper's Table 5 (as printed)")
st.dataframe(
    [{"Setting": r.setting, "Accuracy": f"{r.accuracy:.4f}"} for r in PRINTED_TABLE5],
    hide_index=True,
)
st.caption("The paper's test videos are not published, so its Table 5 cannot be recomputed.")

st.subheader("Table 5 on your labelled clips")
st.write(
    "Accuracy per ensemble setting (equal weights and 0.6/0.4 on the first two models, your "
    "current weights; average and median; both orders) on clips whose truth you know. Upload "
    "them below (analysed with the sidebar's models, then forgotten), or evaluate a folder on "
    "the server from the command line, `python -m detector evaluate --real DIR --fake DIR "
    "--json`, and load its output here."
)
c1, c2 = st.columns(2)
real = c1.file_uploader(
    "Real clips",
    type=state.UPLOAD_TYPES,
    accept_multiple_files=True,
    key=state.EVAL_REAL,
)
fake = c2.file_uploader(
    "Manipulated clips",
    type=state.UPLOAD_TYPES,
    accept_multiple_files=True,
    key=state.EVAL_FAKE,
)
if st.button("Evaluate these clips", key="run_eval", disabled=not (real and fake)):
    actions.evaluate_uploads(real, fake)
result = st.session_state.get(state.EVALUATION)
if result is not None:
    st.dataframe(charts.table5_dataframe(result.table5), hide_index=True)
    st.caption(
        f"{len(result.video_scores)} clips; clip-level AUC {result.video_auc:.3f}, "
        f"frame-level AUC {result.frame_auc:.3f} (ensemble, models {', '.join(result.models)})."
    )
    for line in result.skipped:
        st.warning(f"Not counted: {line}")
uploaded = st.file_uploader("Evaluation output (JSON)", type=["json"], key=state.EVAL_JSON)
if uploaded is not None:
    rows = actions.table5_from_json(uploaded.getvalue())
    if rows is None:
        st.error("This JSON has no `table5`: is it the output of `detector evaluate --json`?")
    else:
        st.dataframe(charts.table5_dataframe(rows), hide_index=True)
