"""Models: a card per registered model: what it is, what it was trained on, how well it did."""

import streamlit as st

from detector.models import get_spec, list_models, model_card
from detector.reporting.record import (
    crossval_absence,
    crossval_metrics,
    describe_init,
    retraining_spread_words,
)
from pages import ui, views, voice_view

ui.page_setup()

st.title("Models")
st.write(
    "Every model the registry knows. Only models with verified weights can be selected; a model "
    "without weights is listed so you know it exists, never used to score a video. Two kinds of "
    "figure: **cross-dataset** video AUCs (with 95 % bootstrap intervals) on clips no model "
    "trained on (Celeb-DF v2; FaceForensics++ Deepfakes, FaceSwap and NeuralTextures clips; "
    "against real interview, talking-head and FaceForensics++ footage), and val / test AUCs on "
    "held-out FaceForensics++ frames, an in-distribution figure that is not a promise on other "
    "manipulation methods."
)
views.calibration_summary()
loaded = set(ui.selected_models())
for name in list_models():
    card = model_card(name)
    with st.container(border=True):
        state = "selected" if name in loaded else ("available" if card.available else "no weights")
        st.markdown(f"#### {name} · {card.family} · _{state}_")
        st.write(card.description)
        headline = {**crossval_metrics(card.metrics), **views.headline_metrics(card.metrics)}
        if headline:
            cols = st.columns(len(headline))
            for col, (label, value) in zip(cols, headline.items(), strict=True):
                col.metric(label, value)
        else:
            st.caption("No measured metrics recorded for this model.")
        spec = get_spec(name)
        if card.available and (why := crossval_absence(card.metrics)):
            st.caption(why)
        if spread := retraining_spread_words(card.metrics):
            st.caption(spread)
        if pool := (card.metrics.get("crossval") or {}).get("pool"):
            st.caption(f"Cross-dataset figures on part of the set: {pool}.")
        c1, c2 = st.columns(2)
        scores = (
            f"windows of up to {spec.sequence_length} crops of one person (temporal)"
            if spec.kind == "track"
            else "each face crop"
        )
        if spec.inputs == "crop_and_flow":
            scores += ", with the optical flow to the next raw frame"
        c1.markdown(
            f"**Scores** {scores}  \n"
            f"**Input** {card.input_size}×{card.input_size} px  \n"
            f"**Trained on** {card.trained_on}  \n"
            f"**Initialised from** {describe_init(card.init_from)}"
        )
        c2.markdown(
            f"**Licence** {card.licence or '—'}  \n"
            f"**Data terms** {card.data_terms or '—'}  \n"
            f"**Weights sha256** `{(card.sha256 or 'none')[:16]}…`"
        )
        if card.notes:
            st.caption(card.notes)
        if card.metrics:
            with st.expander("All recorded metrics"):
                st.json(card.metrics)
voice_view.audio_model_cards()
