"""Streamlit glue the pages share: cached loaders, the session-state keys (owned here) and the
actions that change them. Logic lives in ``detector``; rendering lives in ``pages/views.py``.

Models are loaded once per model selection by a background thread started when the app starts
(``st.cache_resource`` holds the future: shared by all sessions, never mutated by them), so the
first analysis shows a progress step instead of a silent wait. Analyses live in each session's own
state, keyed by file content hash and extraction settings, so returning to a page or moving a
weight slider never runs inference again; the session keeps its last few analyses to switch
between, and an upload's bytes (for the video player) stay in that session's memory only, never
on disk. A refused upload or weights that fail their check end as an ``Analysis`` with a status,
shown in words like any other; outcomes that may change on a second try are not kept.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from pathlib import Path

import streamlit as st

from detector.errors import DetectorError
from detector.io.uploads import display_name, staged_upload
from detector.models import list_models
from detector.pipeline import Analyzer, ExtractionSettings
from detector.provenance.model import TrustAnchors, trust_anchors_from_bytes
from detector.settings import cache_dir, data_dir
from detector.types import Analysis, ScoringSettings, Verdict
from detector.verdict.scoring import default_models, default_scoring
from detector.verdict.verdict import compute_verdict
from pages.state import (
    AGGREGATION,
    ANALYSES,
    CLIP_WIDGET_PREFIXES,
    CLIP_WIDGETS,
    CURRENT,
    DEFAULT_SAMPLING,
    EXCLUDE_PREFIX,
    GRADCAMS,
    INCLUDED,
    MAX_KEPT,
    MAX_VIDEOS_KEPT,
    MODELS,
    ORDER,
    PLAYABLE,
    PROVENANCE,
    RETRYABLE,
    SAMPLING,
    SAMPLING_CHOICES,
    SCORING,
    SELECTED_FACE,
    STATUS_TITLES,
    THRESHOLD,
    TRUST,
    TRUST_ERROR,
    TRUST_UPLOAD,
    VIA_NAVIGATION,
    VIDEOS,
    WEIGHT_PREFIX,
    Key,
)


@st.cache_resource(show_spinner=False, max_entries=2)
def analyzer_future(models: tuple[str, ...]) -> Future:
    """A future of the loaded analyzer for ``models``; loading starts on the first call.

    At most two model selections stay loaded (each holds its networks in memory).
    """
    future: Future = Future()

    def load() -> None:
        try:
            future.set_result(Analyzer(models, device="auto", spare_children=True).load())
        except BaseException as exc:  # handed to whoever waits; shown there in words
            future.set_exception(exc)

    threading.Thread(target=load, name=f"load-{'+'.join(models)}", daemon=True).start()
    return future


def start_preload() -> None:
    """Start loading the default ensemble when the app starts, so the first click finds it ready."""
    models = tuple(m for m in default_models() if m in available_models())
    if models:
        analyzer_future(models)


def get_analyzer(models: tuple[str, ...], bar=None) -> Analyzer:
    """The loaded analyzer, waiting for it behind a progress step when it is still loading.

    A loading failure is raised (and forgotten, so the next attempt loads again).
    """
    future = analyzer_future(models)
    t0 = time.monotonic()
    while not future.done():
        if bar is not None:
            bar.progress(
                0.02,
                text=f"Loading and checking {len(models)} models (once after the app starts: "
                "a few seconds; after an install or an update they are first prepared for this "
                f"CPU, which takes about half a minute): {time.monotonic() - t0:.0f} s",
            )
        try:
            future.result(timeout=0.5)
        except FutureTimeout:
            continue
        except BaseException:
            break
    if future.exception() is not None:
        analyzer_future.clear()
        raise future.exception()
    return future.result()


@st.cache_resource(show_spinner="Generating the example clip…")
def example_clip() -> Path:
    """The bundled example: generated from scikit-image's public-domain astronaut photo."""
    from detector.io.synthetic import astronaut_clip

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


def shipped_models() -> list[str]:
    return [m for m in default_scoring().weights if m in available_models()]


def sidebar_settings() -> ExtractionSettings:
    """The shared sidebar: sampling, model selection, and the clips analysed in this session."""
    from detector.models import model_card

    st.session_state.setdefault(SAMPLING, DEFAULT_SAMPLING)
    st.session_state.setdefault(MODELS, shipped_models())
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
        st.caption("Changing these means a new analysis (press Analyze again).")
        _trust_settings()
        analysed = st.session_state.get(ANALYSES, {})
        if analysed:
            keys = list(analysed)[::-1]
            current = st.session_state.get(CURRENT)
            choice = st.selectbox(
                "Clips analysed in this session",
                keys,
                index=keys.index(current) if current in keys else None,
                format_func=lambda k: clip_label(analysed[k]),
                placeholder="Choose a clip to show again",
                help=f"The session keeps its last {MAX_KEPT} analyses (in memory only).",
            )
            if choice is not None and choice != current:
                show_analysis(choice)
                st.rerun()
    return ExtractionSettings(sampling=st.session_state[SAMPLING])


def _trust_settings() -> None:
    """Which signers of content credentials count as trusted: none unless the analyst says."""
    with st.expander("Content credentials (C2PA)"):
        st.file_uploader(
            "Trust anchors (PEM)",
            type=["pem", "crt", "cer"],
            key=TRUST_UPLOAD,
            on_change=load_trust_anchors,
            help="CA certificates whose signers you trust. None are shipped: without them a "
            "valid signature's signer is shown as unknown, never as trusted.",
        )
        if error := st.session_state.get(TRUST_ERROR):
            st.error(error)
        trust = current_trust()
        st.caption(
            f"Trusted signers: those issued by {trust.describe()}."
            if trust
            else "No trust anchors: no signer is trusted (shown as unknown)."
        )


def load_trust_anchors() -> None:
    """The trust-anchor upload changed: parse it (a refused file trusts nobody, and says why)."""
    upload = st.session_state.get(TRUST_UPLOAD)
    st.session_state[TRUST], st.session_state[TRUST_ERROR] = None, ""
    if upload is None:
        return
    try:
        st.session_state[TRUST] = trust_anchors_from_bytes(
            upload.getvalue(), display_name(upload.name)
        )
    except DetectorError as exc:
        st.session_state[TRUST_ERROR] = str(exc)


def current_trust() -> TrustAnchors | None:
    return st.session_state.get(TRUST)


def clip_label(analysis: Analysis) -> str:
    name = analysis.video.name if analysis.video else "upload"
    return f"{name} · {analysis.sampling} · {analysis.status.replace('_', ' ')}"


def selected_models() -> tuple[str, ...]:
    return tuple(st.session_state.get(MODELS) or ())


def settings_differ(analysis: Analysis) -> bool:
    """Whether the sidebar now asks for other models or sampling than ``analysis`` was made with."""
    models = tuple(m.name for m in analysis.models)
    return analysis.sampling != st.session_state.get(SAMPLING, DEFAULT_SAMPLING) or (
        bool(models) and set(models) != set(selected_models())
    )


def current_key() -> Key | None:
    return st.session_state.get(CURRENT)


def current_analysis() -> Analysis | None:
    key = current_key()
    return st.session_state.get(ANALYSES, {}).get(key) if key else None


def clear_current() -> None:
    """Hide the shown result (a new file or example was chosen); it stays in the session's list."""
    _set_current(None)


def show_analysis(key: Key) -> None:
    if key in st.session_state.get(ANALYSES, {}):
        _set_current(key)


def _set_current(key: Key | None) -> None:
    """Show another clip; widgets whose values belong to one clip start again from its state."""
    if st.session_state.get(CURRENT) != key:
        _drop_widgets(CLIP_WIDGETS, CLIP_WIDGET_PREFIXES)
    st.session_state[CURRENT] = key


def _drop_widgets(keys, prefixes) -> None:
    for k in [k for k in st.session_state if k in keys or str(k).startswith(prefixes)]:
        del st.session_state[k]


def run_analysis(data: bytes | None, name: str, path: Path | None = None) -> None:
    """Analyse uploaded bytes (staged privately, then deleted) or a local example file, show it,
    and run the page again so that everything (the sidebar's list of clips too) shows it."""
    models = selected_models()
    if not models:
        st.error("Select at least one model in the sidebar.")
        return
    if data is None:
        data = path.read_bytes()
    sampling = st.session_state.get(SAMPLING, DEFAULT_SAMPLING)
    key: Key = (hashlib.sha256(data).hexdigest(), sampling, models)
    cache = st.session_state.setdefault(ANALYSES, {})
    if key not in cache or cache[key].status in RETRYABLE:
        bar = st.progress(0.0, text="Checking the file…")
        try:
            cache[key] = analyse_upload(data, display_name(name), sampling, models, bar)
        finally:
            bar.empty()
    _keep(key, data)
    _set_current(key)
    st.rerun()


def analyse_upload(data: bytes, label: str, sampling: str, models, bar) -> Analysis:
    stages = {"probe": (0.05, 0.1), "faces": (0.1, 0.8), "scoring": (0.8, 0.98), "done": (1, 1)}
    words = {"probe": "Reading the file", "faces": "Finding faces", "scoring": "Scoring faces"}

    def progress(stage: str, frac: float, message: str) -> None:
        lo, hi = stages.get(stage, (0.0, 1.0))
        title = words.get(stage, stage.title())
        bar.progress(min(1.0, lo + (hi - lo) * frac), text=f"{title}: {message}")

    settings = ExtractionSettings(sampling=sampling, trust_anchors=current_trust())
    try:
        with staged_upload(data, label) as staged:  # refuses a non-video before any model loads
            analyzer = get_analyzer(models, bar)
            return analyzer.analyze(staged, settings, progress=progress, name=label)
    except DetectorError as exc:  # refused upload, weights that fail their check ...
        return Analysis(status=exc.status, message=str(exc), video=None, sampling=sampling)


def _keep(key: Key, data: bytes | None) -> None:
    """Keep the newest analyses (and the newest videos) of this session; forget the rest."""
    analyses = st.session_state[ANALYSES]
    analyses[key] = analyses.pop(key)  # most recent last
    videos = st.session_state.setdefault(VIDEOS, {})
    videos.pop(key, None)
    if analyses[key].ok and data is not None:
        videos[key] = data
    while len(analyses) > MAX_KEPT:
        _forget(next(iter(analyses)))
    for old in list(videos)[:-MAX_VIDEOS_KEPT]:
        videos.pop(old, None)
        st.session_state.get(PLAYABLE, {}).pop(old, None)


def show_new_analysis(key: Key, analysis: Analysis, data: bytes | None) -> None:
    """Keep an analysis made on another page (the Batch page) in this session's list and show
    it; ``data`` is the clip's bytes for the player (None when they are no longer at hand)."""
    st.session_state.setdefault(ANALYSES, {})[key] = analysis
    _keep(key, data)
    _set_current(key)


def _forget(key: Key) -> None:
    for name in (ANALYSES, VIDEOS, PLAYABLE, SCORING, SELECTED_FACE):
        st.session_state.get(name, {}).pop(key, None)
    for cached in (st.session_state.get(GRADCAMS, {}), st.session_state.get(PROVENANCE, {})):
        for k in [k for k in cached if k[0] == key]:
            del cached[k]


def video_bytes(key: Key) -> bytes | None:
    return st.session_state.get(VIDEOS, {}).get(key)


def playable_video(key: Key) -> bytes | None:
    return st.session_state.get(PLAYABLE, {}).get(key)


def make_playable(key: Key) -> None:
    """Re-encode the kept video to H.264 (in a capped child process) for the player."""
    from detector.io.playback import playable_copy

    data = video_bytes(key)
    if data is None:
        return
    with st.spinner("Re-encoding to H.264 for the browser…"):
        try:
            st.session_state.setdefault(PLAYABLE, {})[key] = playable_copy(data)
        except DetectorError as exc:
            st.error(str(exc))


def selected_face() -> int | None:
    return st.session_state.get(SELECTED_FACE, {}).get(current_key())


def select_face(face_id: int | None) -> None:
    faces = st.session_state.setdefault(SELECTED_FACE, {})
    if face_id is None:
        faces.pop(current_key(), None)
    else:
        faces[current_key()] = int(face_id)


def default_scoring_for(analysis: Analysis) -> ScoringSettings:
    """The shipped default scoring, with equal weights if the clip was scored by other models."""
    base = default_scoring()
    models = analysis.scores.models
    if set(base.weights) == set(models):
        return base
    return replace(base, weights=dict.fromkeys(models, 1.0))


def current_scoring(analysis: Analysis) -> ScoringSettings:
    """This clip's scoring settings: the default until the analyst changes them."""
    return st.session_state.get(SCORING, {}).get(current_key()) or default_scoring_for(analysis)


def set_scoring(scoring: ScoringSettings) -> None:
    st.session_state.setdefault(SCORING, {})[current_key()] = scoring


def reset_scoring() -> None:
    """Back to the shipped defaults, exclusions included: drop this clip's settings and the
    widget states that showed them (the pages set them again from the defaults, through session
    state, so the browser shows them)."""
    st.session_state.get(SCORING, {}).pop(current_key(), None)
    _drop_widgets((AGGREGATION, ORDER, THRESHOLD), CLIP_WIDGET_PREFIXES)


def custom_marks(analysis: Analysis) -> list[str]:
    """What differs from the shipped defaults for this clip, in words."""
    from detector.reporting.record import custom_marks as marks

    return marks(analysis, current_scoring(analysis) if analysis.ok else None)


def weight_key(model: str) -> str:
    return f"{WEIGHT_PREFIX}{model}"


def exclusion_key(track_id: int) -> str:
    return f"{EXCLUDE_PREFIX}{track_id}"


def init_exclusion_widgets(scoring: ScoringSettings, track_ids) -> None:
    """Give each person's exclusion choice the clip's setting where it holds none yet."""
    for tid in track_ids:
        k = exclusion_key(tid)
        if k not in st.session_state:
            st.session_state[k] = scoring.exclusions.get(int(tid), INCLUDED)


def apply_exclusion(track_id: int) -> None:
    """Callback: the analyst included or excluded a person; the verdict is aggregated again."""
    analysis = current_analysis()
    if analysis is None or not analysis.ok:
        return
    scoring = current_scoring(analysis)
    why = st.session_state.get(exclusion_key(track_id), INCLUDED)
    exclusions = {k: v for k, v in scoring.exclusions.items() if k != track_id}
    if why != INCLUDED:
        exclusions[track_id] = why
    set_scoring(replace(scoring, exclusions=exclusions))


def init_lab_widgets(scoring: ScoringSettings) -> None:
    """Give the Ensemble lab's widgets the clip's settings where they hold none yet.

    Set through session state (not the widgets' default values) so a reset also reaches the
    browser: a widget whose state was only deleted keeps showing, and later sends back, its old
    value.
    """
    values = {weight_key(m): float(w) for m, w in scoring.weights.items()}
    values |= {
        AGGREGATION: scoring.aggregation,
        ORDER: scoring.order,
        THRESHOLD: float(scoring.threshold),
    }
    for k, v in values.items():
        if k not in st.session_state:
            st.session_state[k] = v


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


def page_setup() -> None:
    """Send a page opened by a direct link (before app.py ran in this session) to the app.

    Streamlit runs a script in ``pages/`` on its own when its URL is the first thing a session
    loads after the server starts; it would then have no navigation and no shared sidebar.
    """
    if not st.session_state.get(VIA_NAVIGATION):
        st.switch_page("app.py")
