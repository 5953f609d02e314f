"""What the Explain, Report and Ensemble-lab pages do beyond showing: Grad-CAMs (cached per
session), the case details of the report, and the evaluation of labelled clips an analyst uploads."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from detector.errors import DetectorError
from detector.io.uploads import display_name, staged_upload
from detector.provenance.model import Provenance
from detector.provenance.read import inspect_file
from detector.reporting.record import CaseInfo
from detector.scoring.explain import CamResult, Explainer
from detector.types import Analysis
from pages import ui
from pages.state import (
    ANALYST_INPUT,
    CASE,
    CASE_ID_INPUT,
    DEFAULT_SAMPLING,
    EVALUATION,
    GRADCAMS,
    NOTES_INPUT,
    PROVENANCE,
    SAMPLING,
)
from pages.ui import (
    current_analysis,
    current_key,
    current_scoring,
    current_trust,
    selected_models,
    video_bytes,
)


@st.cache_resource(show_spinner="Preparing Grad-CAM…")
def get_explainer(model: str) -> Explainer:
    return Explainer(model)


def gradcam(analysis: Analysis, face_id: int, model: str) -> CamResult:
    """Grad-CAM for one scored face and model, computed once on demand and kept for the report."""
    if face_id not in {int(f) for f in analysis.scores.face_ids}:
        raise KeyError(f"face {face_id} was not scored")  # rejected detections are never explained
    cams = st.session_state.setdefault(GRADCAMS, {})
    key = (current_key(), face_id, model)
    if key not in cams:
        cams[key] = get_explainer(model).explain(analysis.face(face_id).crop)
    return cams[key]


def run_gradcams(analysis: Analysis, face_ids: list[int], model: str) -> None:
    """Grad-CAM for several faces with one model, behind a progress bar."""
    bar = st.progress(0.0, text="Grad-CAM…")
    try:
        for k, fid in enumerate(face_ids):
            bar.progress(
                k / len(face_ids), text=f"Grad-CAM with {model}: face {k + 1} of {len(face_ids)}"
            )
            gradcam(analysis, fid, model)
    finally:
        bar.empty()


def cached_gradcam(face_id: int, model: str) -> CamResult | None:
    return st.session_state.get(GRADCAMS, {}).get((current_key(), face_id, model))


def gradcams_for_current() -> list[tuple[int, CamResult]]:
    """(face_id, CamResult) pairs computed for the current analysis, in the order they were made."""
    current = current_key()
    return [(k[1], v) for k, v in st.session_state.get(GRADCAMS, {}).items() if k[0] == current]


def case_info() -> CaseInfo:
    return st.session_state.get(CASE) or CaseInfo()


def save_case_info() -> None:
    """Copy the Report page's fields into the session (widget states vanish with the page)."""
    st.session_state[CASE] = CaseInfo(
        case_id=st.session_state.get(CASE_ID_INPUT, "").strip(),
        analyst=st.session_state.get(ANALYST_INPUT, "").strip(),
        notes=st.session_state.get(NOTES_INPUT, "").strip(),
    )


def table5_from_json(data: bytes) -> list[dict] | None:
    """The ``table5`` rows of an ``evaluate --json`` document, or None if it has none."""
    import json

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    rows = doc.get("table5") if isinstance(doc, dict) else None
    return rows if isinstance(rows, list) and rows else None


def evaluate_uploads(real: list, fake: list) -> None:
    """Analyse uploaded labelled clips with the selected models and keep their Table 5."""
    from detector.evaluation.evaluate import evaluate_scores, scores_from_analyses

    models = selected_models()
    if not models:
        st.error("Select at least one model in the sidebar.")
        return
    if not real or not fake:
        st.error("Upload at least one real and one fake clip.")
        return
    sampling = st.session_state.get(SAMPLING, DEFAULT_SAMPLING)
    uploads = [(f, 0) for f in real] + [(f, 1) for f in fake]
    bar = st.progress(0.0, text="Loading the models…")
    analysed = []
    try:
        for k, (f, label) in enumerate(uploads):
            name = display_name(f.name)
            bar.progress(k / len(uploads), text=f"Analysing {name} ({k + 1} of {len(uploads)})")
            analysed.append(
                (name, label, ui.analyse_upload(f.getvalue(), name, sampling, models, bar))
            )
        scored = scores_from_analyses(analysed, models, log=lambda *_: None)
        if len({lab for lab in scored.labels}) < 2:
            st.session_state.pop(EVALUATION, None)
            st.error(
                "Both real and fake clips need a verdict to compare them. Without one: "
                + "; ".join(scored.skipped)
            )
            return
        weights = None
        analysis = current_analysis()
        if analysis is not None and analysis.ok and set(analysis.scores.models) == set(models):
            weights = current_scoring(analysis).weights
        result = evaluate_scores(
            scored.videos, scored.labels, scored.scores, scored.models, weights=weights
        )
        st.session_state[EVALUATION] = replace(result, skipped=scored.skipped)
    except DetectorError as exc:
        st.error(str(exc))
    finally:
        bar.empty()


def current_provenance(analysis: Analysis) -> tuple[Provenance | None, str]:
    """The analysis's provenance under the trust anchors set now, and a note when it could not
    be read again with them (the file's bytes are no longer kept). Credentials are re-read, not
    the faces: changing the anchors never reruns inference."""
    p = analysis.provenance
    trust = current_trust()
    sha = trust.sha256 if trust else ""
    if p is None or p.trust_anchors_sha256 == sha:
        return p, ""
    key = current_key()
    cache = st.session_state.setdefault(PROVENANCE, {})
    if (key, sha) not in cache:
        data = video_bytes(key)
        if data is None:
            return p, (
                "This was read with other trust anchors than those set now; analyse the clip "
                "again to apply them."
            )
        name = analysis.video.name if analysis.video else "upload"
        try:
            with staged_upload(data, name) as staged:
                cache[(key, sha)] = inspect_file(staged, name, trust=trust)
        except DetectorError as exc:
            return p, f"The credentials could not be read again: {exc}"
    return cache[(key, sha)], ""


def with_current_provenance(analysis: Analysis) -> Analysis:
    """The analysis as the report should file it: provenance under the anchors set now."""
    p, _ = current_provenance(analysis)
    return replace(analysis, provenance=p) if p is not analysis.provenance else analysis
