"""Streamlit glue for the Batch page: its session-state keys (owned here) and its actions.

A batch lives in this browser session only. Uploaded clips are analysed one after another by the
analyzer the app has already loaded (shared across sessions and never changed by them), each
staged in a private temporary file that is deleted as soon as its analysis ends; their analyses
stay in this session's memory so that any of them can be opened on the Analyze page. A finished
scan's ``results.jsonl`` is read from an upload, never from a path on the server; its clips are
shown as the documents it holds. Text from a results file is shown as text (tables, JSON), never
as Markdown, so a crafted file cannot make the browser fetch anything.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from detector.batch.records import clip_record, latest_rows, ranked, read_records, summary_csv
from detector.errors import DetectorError
from detector.io.uploads import display_name
from detector.types import Analysis
from detector.verdict.verdict import VERDICT_WORDS
from pages import state, ui

# ---- session-state keys: this module is their only owner ------------------------------------
BATCH = "batch"  # Batch | None: the batch shown
SOURCE = "batch_source"
UPLOADS = "batch_uploads"
RESULTS_UPLOAD = "batch_results_upload"
CHOICE = "batch_choice"

FROM_UPLOADS = "Upload clips"
FROM_RESULTS = "Open a results.jsonl"
MAX_UPLOADS = 20  # clips analysed per batch here: their analyses are kept in this session's memory


@dataclass(frozen=True)
class Entry:
    """A clip of the batch: its results line, and for uploaded clips the whole analysis."""

    record: dict
    analysis: Analysis | None = None


@dataclass(frozen=True)
class Batch:
    source: str
    entries: tuple[Entry, ...]
    sampling: str = ""
    models: tuple[str, ...] = ()
    note: str = ""


def current_batch() -> Batch | None:
    return st.session_state.get(BATCH)


def clear_batch() -> None:
    st.session_state.pop(BATCH, None)
    st.session_state.pop(CHOICE, None)


def run_batch(files: list) -> None:
    """Analyse the uploaded clips with the models and sampling chosen in the sidebar."""
    models = ui.selected_models()
    if not models:
        st.error("Select at least one model in the sidebar.")
        return
    if len(files) > MAX_UPLOADS:
        st.error(
            f"{len(files)} clips: this page analyses at most {MAX_UPLOADS} at a time (it keeps "
            "every analysis in this session's memory). For more, use "
            "`python -m detector scan` (see the README's *Scanning many clips*)."
        )
        return
    sampling = st.session_state.get(state.SAMPLING, state.DEFAULT_SAMPLING)
    bar = st.progress(0.0, text="Loading the models…")
    entries = []
    try:
        for k, f in enumerate(files):
            name = display_name(f.name)
            bar.progress(k / len(files), text=f"Analysing {name} ({k + 1} of {len(files)})")
            data = f.getvalue()
            t0 = time.perf_counter()
            analysis = ui.analyse_upload(data, name, sampling, models, bar)
            sha = hashlib.sha256(data).hexdigest()
            record = clip_record(analysis, name, sha, None, time.perf_counter() - t0)
            entries.append(Entry(record, analysis))
    finally:
        bar.empty()
    clear_batch()
    st.session_state[BATCH] = Batch(FROM_UPLOADS, tuple(entries), sampling, models)


def load_results() -> None:
    """Callback: a results.jsonl was uploaded (or removed)."""
    clear_batch()
    upload = st.session_state.get(RESULTS_UPLOAD)
    if upload is None:
        return
    name = display_name(upload.name)
    try:
        records, torn = read_records(upload.getvalue(), name)
    except DetectorError as exc:
        st.session_state[BATCH] = Batch(name, (), note=str(exc))
        return
    note = (
        f"The last line ({torn} bytes) is incomplete, as a scan interrupted while writing it "
        "leaves it; it is not shown (resuming that scan analyses its clip again)."
        if torn
        else ""
    )
    if not records:
        note = note or f"{name} holds no scan results."
    st.session_state[BATCH] = Batch(name, tuple(Entry(r) for r in records), note=note)


def rows(batch: Batch) -> list[dict]:
    """The summary rows (the newest line of each clip), highest score first."""
    return ranked(latest_rows(e.record for e in batch.entries))


def table(batch: Batch) -> pd.DataFrame:
    """What the page lists: one row per clip, highest score first, every status in words."""
    shown = []
    for r in rows(batch):
        verdict = VERDICT_WORDS.get(r["label"]) if r["score"] != "" else None
        shown.append(
            {
                "clip": r["path"],
                "result": verdict or state.STATUS_TITLES.get(r["status"], r["status"]),
                "score": r["score"] if r["score"] != "" else None,
                "status": r["status"],
                "people": r["people"] if r["people"] != "" else None,
                "duration (s)": r["duration_s"] if r["duration_s"] != "" else None,
                "message": r["message"],
            }
        )
    return pd.DataFrame(shown)


def counts(batch: Batch) -> str:
    found = Counter(r["status"] for r in rows(batch))
    return " · ".join(f"{status.replace('_', ' ')}: {n}" for status, n in found.most_common())


def summary(batch: Batch) -> str:
    return summary_csv(rows(batch))


def choices(batch: Batch) -> dict[int, str]:
    """Entry index -> label, in the table's order (the newest line of each clip)."""
    newest = {e.record.get("path"): i for i, e in enumerate(batch.entries)}
    order = [newest[r["path"]] for r in rows(batch)]
    return {i: _label(batch.entries[i].record) for i in order}


def _label(record: dict) -> str:
    score = (record.get("verdict") or {}).get("p_fake")
    shown = f"{score:.3f}" if isinstance(score, float | int) else record.get("status", "?")
    return f"{record.get('path', '?')} · {shown}"


def open_on_analyze(entry: Entry) -> None:
    """Show an uploaded clip's analysis on the Analyze page (it joins the session's list)."""
    batch = current_batch()
    sha = entry.record["sha256"]
    data = next(
        (
            f.getvalue()
            for f in st.session_state.get(UPLOADS) or []
            if hashlib.sha256(f.getvalue()).hexdigest() == sha
        ),
        None,
    )  # the player needs the bytes: still in the uploader unless the file was removed
    ui.show_new_analysis((sha, batch.sampling, batch.models), entry.analysis, data)
    st.switch_page("pages/analyze.py")


def document_view(record: dict) -> None:
    """A clip read from a results file: the verdict or its status, the people, the document."""
    st.text(str(record.get("path", "")))
    verdict = record.get("verdict")
    if verdict:
        label = VERDICT_WORDS.get(verdict.get("label"), "unknown verdict")
        c1, c2 = st.columns(2)
        c1.metric("Verdict", label)
        c2.metric("Manipulation score", f"{float(verdict.get('p_fake', 0.0)):.3f}")
    else:
        title = state.STATUS_TITLES.get(record.get("status"), "The analysis could not be completed")
        st.error(title, icon=":material/warning:")
    st.text(str(record.get("message", "")))
    tracks = record.get("tracks") or []
    if tracks and verdict:
        st.dataframe(
            pd.DataFrame(
                {
                    "person": [t.get("track_id", 0) + 1 for t in tracks],
                    "score": [t.get("p_fake") for t in tracks],
                    "faces": [t.get("n_faces") for t in tracks],
                    "decides": [
                        t.get("track_id") == verdict.get("deciding_track_id") for t in tracks
                    ],
                    "brief": [t.get("brief") for t in tracks],
                }
            ),
            hide_index=True,
        )
    settings = record.get("settings") or {}
    st.caption(
        "From a results file: faces, frames and Grad-CAM need the clip itself. Upload it on the "
        "Analyze page with the same settings to see them."
    )
    st.text(
        f"sampling {settings.get('sampling')}, models {', '.join(settings.get('models') or [])}"
    )
    with st.expander("The whole document"):
        st.json(record, expanded=False)
