"""Streamlit glue the pages share: cached loaders, the session-state keys (owned here), the
analysis runner and the verdict card. Logic lives in ``detector``; this module only wires it to
widgets. Models are cached with ``st.cache_resource`` (shared by all sessions, never mutated);
analyses live in each session's own state, keyed by file content hash and extraction settings, so
returning to a page or moving a weight slider never runs inference again. A refused upload or
weights that fail their check end as an ``Analysis`` with a status, shown in words like any other;
outcomes that may change on a second try (a timeout on a busy machine) are not kept.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import streamlit as st

from detector.aggregate import compute_verdict
from detector.errors import DetectorError
from detector.explain import Explainer
from detector.models import list_models, model_card
from detector.paths import cache_dir, data_dir
from detector.pipeline import Analyzer, ExtractionSettings, default_scoring
from detector.types import Analysis, ScoringSettings, Verdict
from detector.uploads import display_name, staged_upload

# Session-state keys: this module is their only writer.
SAMPLING = "sampling"
MODELS = "models"
ANALYSES = "analyses"  # dict[(sha256, sampling, models)] -> Analysis
CURRENT = "current_analysis_key"
SCORING = "scoring"
SELECTED_FACE = "selected_face_id"
VIA_NAVIGATION = "via_navigation"  # set by app.py; see page_setup()
GRADCAMS = "gradcams"  # dict[(analysis key, face_id, model)] -> CamResult, for the report

SAMPLING_CHOICES = {
    "1fps": "1 frame per second (paper 000, default)",
    "even:16": "16 evenly spaced frames (paper 004)",
    "even:40": "40 evenly spaced frames (paper 003)",
    "first:20": "first 20 frames (paper 001)",
    "all": "every frame (slow)",
}

STATUS_TITLES = {
    "no_faces": "No face found: nothing to judge",
    "unreadable": "The file cannot be read as a video",
    "no_video_stream": "The file holds no video",
    "unsupported_codec": "The video codec is not supported",
    "too_short": "The video is too short to judge",
    "too_large": "The video is too large to decode safely",
    "timeout": "Decoding took too long and was stopped",
    "bad_settings": "The analysis settings are invalid",
    "weights_missing": "A model's weights are missing",
    "weights_tampered": "A model's weights failed their integrity check",
}

# Outcomes that do not depend on the file alone: analysing it again may give another answer.
RETRYABLE = {"timeout", "weights_missing", "weights_tampered", "bad_settings"}

LABEL_STYLE = {
    "fake": ("LIKELY MANIPULATED", "red"),
    "real": ("NO MANIPULATION DETECTED", "green"),
    "uncertain": ("UNCERTAIN", "orange"),
}


@st.cache_resource(show_spinner="Loading models…")
def get_analyzer(models: tuple[str, ...]) -> Analyzer:
    return Analyzer(models, device="auto").load()


@st.cache_resource(show_spinner="Preparing Grad-CAM…")
def get_explainer(model: str) -> Explainer:
    return Explainer(model, device="cpu")


@st.cache_resource(show_spinner="Generating the example clip…")
def example_clip() -> Path:
    """The bundled example: generated from scikit-image's public-domain astronaut photo."""
    from detector.synthetic import astronaut_clip

    path = cache_dir() / "examples" / "astronaut_example.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        astronaut_clip(path, seconds=6, width=960, height=540)
    return path


def example_choices() -> dict[str, Path]:
    """The generated example, plus the FaceForensics++ clips when ../shared is present."""
    choices = {"Astronaut (generated example, public domain)": example_clip()}
    clips = data_dir() / "clips"
    if clips.is_dir():
        for p in sorted(clips.rglob("*.mp4")):
            choices[f"{p.parent.parent.name}/{p.parent.name}/{p.name} (research data)"] = p
    return choices


def available_models() -> list[str]:
    return list_models(available_only=True)


def sidebar_settings() -> ExtractionSettings:
    """The shared sidebar: sampling and model selection (changing them means new inference)."""
    defaults = default_scoring()
    st.session_state.setdefault(SAMPLING, "1fps")
    st.session_state.setdefault(MODELS, [m for m in defaults.weights if m in available_models()])
    with st.sidebar:
        st.header("Analysis settings")
        st.selectbox(
            "Frame sampling",
            list(SAMPLING_CHOICES),
            format_func=SAMPLING_CHOICES.get,
            key=SAMPLING,
        )
        st.multiselect(
            "Models",
            available_models(),
            key=MODELS,
            format_func=lambda n: f"{n} ({model_card(n).family})",
            help="Only models with verified weights are listed. See the Models page.",
        )
        analysis = current_analysis()
        if analysis is not None and analysis.video is not None:
            st.caption(f"Current clip: **{analysis.video.name}** ({analysis.status})")
    return ExtractionSettings(sampling=st.session_state[SAMPLING])


def selected_models() -> tuple[str, ...]:
    return tuple(st.session_state.get(MODELS) or ())


def current_analysis() -> Analysis | None:
    key = st.session_state.get(CURRENT)
    return st.session_state.get(ANALYSES, {}).get(key) if key else None


def run_analysis(data: bytes | None, name: str, path: Path | None = None) -> Analysis | None:
    """Analyse uploaded bytes (staged privately, then deleted) or a local example file."""
    import hashlib

    models = selected_models()
    if not models:
        st.error("Select at least one model in the sidebar.")
        return None
    sampling = st.session_state.get(SAMPLING, "1fps")
    digest = hashlib.sha256(data if data is not None else path.read_bytes()).hexdigest()
    key = (digest, sampling, models)
    cache = st.session_state.setdefault(ANALYSES, {})
    if key not in cache or cache[key].status in RETRYABLE:
        bar = st.progress(0.0, text="Starting…")
        stages = {
            "probe": (0.0, 0.05),
            "faces": (0.05, 0.8),
            "scoring": (0.8, 0.98),
            "done": (1, 1),
        }

        def progress(stage: str, frac: float, message: str) -> None:
            lo, hi = stages.get(stage, (0.0, 1.0))
            bar.progress(min(1.0, lo + (hi - lo) * frac), text=f"{stage.title()}: {message}")

        settings = ExtractionSettings(sampling=sampling)
        label = display_name(name)
        try:
            analyzer = get_analyzer(models)
            if data is not None:
                with staged_upload(data, label) as staged:
                    analysis = analyzer.analyze(staged, settings, progress=progress, name=label)
            else:
                analysis = analyzer.analyze(path, settings, progress=progress, name=label)
        except DetectorError as exc:  # refused upload, weights that fail their check ...
            analysis = Analysis(status=exc.status, message=str(exc), video=None, sampling=sampling)
        finally:
            bar.empty()
        cache[key] = analysis
    st.session_state[CURRENT] = key
    st.session_state.pop(SELECTED_FACE, None)
    return cache[key]


def gradcam(analysis: Analysis, face_id: int, model: str):
    """Grad-CAM for one face and model, computed once on demand and kept for the report."""
    cams = st.session_state.setdefault(GRADCAMS, {})
    key = (st.session_state.get(CURRENT), face_id, model)
    if key not in cams:
        cams[key] = get_explainer(model).explain(analysis.face(face_id).crop)
    return cams[key]


def gradcams_for_current() -> list:
    """(face_id, CamResult) pairs computed for the current analysis, in the order they were made."""
    current = st.session_state.get(CURRENT)
    return [(k[1], v) for k, v in st.session_state.get(GRADCAMS, {}).items() if k[0] == current]


def current_scoring(analysis: Analysis) -> ScoringSettings:
    """The session's scoring settings, fitted to the models of this analysis."""
    scoring = st.session_state.get(SCORING) or analysis.verdict.settings
    models = analysis.scores.models
    if set(scoring.weights) != set(models):
        base = analysis.verdict.settings
        scoring = replace(scoring, weights=dict(base.weights))
    return scoring


def set_scoring(scoring: ScoringSettings) -> None:
    st.session_state[SCORING] = scoring


def current_verdict(analysis: Analysis) -> Verdict:
    return compute_verdict(analysis.scores, current_scoring(analysis))


def require_ok_analysis() -> Analysis | None:
    """The current analysis if it has a verdict; otherwise explain why not and return None."""
    analysis = current_analysis()
    if analysis is None:
        st.info("Analyse a clip on the **Analyze** page first.")
        return None
    if not analysis.ok:
        show_status(analysis)
        return None
    return analysis


def show_status(analysis: Analysis) -> None:
    """The explicit state for an analysis without a verdict: words, never a number."""
    title = STATUS_TITLES.get(analysis.status, "The analysis could not be completed")
    st.error(f"**{title}.** {analysis.message}", icon=":material/warning:")
    if analysis.status == "no_faces":
        st.caption(
            f"{len(analysis.frames)} frames were sampled ({analysis.sampling}). Try denser "
            "sampling (e.g. every frame) if faces appear only briefly."
        )


def verdict_card(analysis: Analysis, verdict: Verdict) -> None:
    text, colour = LABEL_STYLE[verdict.label]
    with st.container(border=True):
        left, right = st.columns([2, 1])
        left.markdown(f"### :{colour}[{text}]")
        left.write(verdict.explanation)
        right.metric("Ensemble p_fake", f"{verdict.p_fake:.3f}", help="0 = real, 1 = fake")
        right.caption(
            f"Threshold {verdict.threshold:.2f}; inconclusive from {max(0.0, verdict.threshold - verdict.settings.inconclusive_band):.2f}"
        )
        cols = st.columns(max(1, len(verdict.per_model)))
        for col, (m, p) in zip(cols, verdict.per_model.items(), strict=True):
            w = verdict.settings.weights.get(m, 0.0) / max(
                1e-9, sum(verdict.settings.weights.values())
            )
            col.metric(m, f"{p:.3f}", help=f"weight {w:.2f}")
    untrained = [c.name for c in analysis.models if not c.metrics]
    if untrained:
        st.caption(f"Models without measured metrics: {', '.join(untrained)}.")
    st.caption(
        "A score is evidence, not proof: the models were trained on specific manipulation "
        "methods (see the Models page) and can miss others."
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


def default_eval_folder() -> str:
    clips = data_dir() / "clips" / "ffpp_c23"
    return str(clips) if clips.is_dir() else ""


def evaluate_folder(folder: str):
    """Run the evaluation on ``folder``/real and ``folder``/fake with the selected models."""
    from detector.evaluate import evaluate_scores, score_folders

    root = Path(folder).expanduser()
    real, fake = root / "real", root / "fake"
    if not (real.is_dir() and fake.is_dir()):
        st.error(f"{root} needs both a real/ and a fake/ subfolder.")
        return None
    models = selected_models()
    if not models:
        st.error("Select at least one model in the sidebar.")
        return None
    with st.spinner("Scoring the evaluation set…"):
        try:
            scored = score_folders([real], [fake], models)
            analysis = current_analysis()
            weights = None
            if analysis is not None and analysis.ok and set(analysis.scores.models) == set(models):
                weights = current_scoring(analysis).weights
            return evaluate_scores(
                scored.videos, scored.labels, scored.scores, scored.models, weights=weights
            )
        except DetectorError as exc:
            st.error(str(exc))
            return None


def headline_metrics(metrics: dict) -> dict[str, str]:
    """The few numbers a model card leads with, from whichever the manifest records."""
    out: dict[str, str] = {}

    def with_ci(m: dict, key: str) -> str:
        ci = m.get(f"{key}_ci95") or []
        return f"{m[key]:.3f}" + (f" (95% CI {ci[0]:.2f}–{ci[1]:.2f})" if len(ci) == 2 else "")

    for split, label in (("val", "val"), ("test", "test"), ("cv", "cross-validated")):
        m = metrics.get(split) or {}
        if m.get("frame_auc") is not None:
            out[f"{label} frame AUC"] = with_ci(m, "frame_auc")
        if m.get("video_auc") is not None:
            out[f"{label} video AUC"] = with_ci(m, "video_auc")
    ffpp = metrics.get("ffpp_c23_shared_frames") or {}
    if "frame_auc" in ffpp:
        out["FF++ frame AUC (all 200 videos)"] = f"{ffpp['frame_auc']:.3f}"
    return out


def describe_init(init) -> str:
    """A manifest's ``init_from`` in words (it may be a string or a record)."""
    if not init:
        return "—"
    if isinstance(init, str):
        return init
    source = init.get("source") if isinstance(init.get("source"), dict) else {}
    if source.get("package"):
        return f"{source['package']} {source.get('version', '')} (PyPI), {source.get('file', '')}"
    return str(init.get("file") or init)


def page_setup() -> None:
    """Send a page opened by a direct link (before app.py ran in this session) to the app.

    Streamlit runs a script in ``pages/`` on its own when its URL is the first thing a session
    loads after the server starts; it would then have no navigation and no shared sidebar.
    """
    if not st.session_state.get(VIA_NAVIGATION):
        st.switch_page("app.py")
