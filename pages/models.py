"""Models: a card per registered model: what it is, what it was trained on, how well it did."""

import streamlit as st

from detector.models import list_models, model_card
from pages import ui

st.title("Models")
st.write(
    "Every model the registry knows. Only models with verified weights can be selected; a model "
    "without weights is listed so you know it exists, never used to score a video."
)
loaded = set(ui.selected_models())
for name in list_models():
    card = model_card(name)
    with st.container(border=True):
        state = "selected" if name in loaded else ("available" if card.available else "no weights")
        st.markdown(f"#### {name} · {card.family} · _{state}_")
        st.write(card.description)
        c1, c2 = st.columns(2)
        c1.markdown(
            f"**Input** {card.input_size}×{card.input_size} px  \n"
            f"**Trained on** {card.trained_on}  \n"
            f"**Initialised from** {card.init_from or '—'}"
        )
        c2.markdown(
            f"**Licence** {card.licence or '—'}  \n"
            f"**Data terms** {card.data_terms or '—'}  \n"
            f"**Weights sha256** `{(card.sha256 or 'none')[:16]}…`"
        )
        if card.metrics:
            st.json(card.metrics, expanded=False)
        else:
            st.caption("No measured metrics recorded for this model.")
        if card.notes:
            st.caption(card.notes)
