"""Pieces of page the pages share: the verdict card, the frame viewer, face strips, Grad-CAM.

Each function draws one piece from an analysis and the session's settings (read through
``pages.ui``); the pictures themselves come from ``detector.reporting.visual`` and ``detector.scoring.explain`` so
the PDF shows the same ones.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from detector.faces.detect import FaceSettings
from detector.provenance.findings import credential_facts, metadata_rows
from detector.provenance.model import Provenance
from detector.reporting.record import best_face, person_role, precision_path_words
from detector.reporting.visual import (
    SCALE_MAX,
    STANDS_OUT_AT,
    annotated_frame,
    colour_bar_png,
    frame_image,
    frame_record,
    framed,
    overlay_on_frame,
    person_rgb,
)
from detector.scoring.explain import CamResult
from detector.types import Analysis, Verdict
from detector.verdict.verdict import NO_CALIBRATION, VERDICT_WORDS, uncalibrated_words
from pages import state, ui

LABEL_COLOUR = {"fake": "red", "uncertain": "orange", "real": "green"}


def verdict_card(analysis: Analysis, verdict: Verdict, controls: bool = False) -> None:
    """The verdict, led by the person who decides it; every other person with their own score.

    ``controls`` adds the analyst's exclusion choice per person and a reset to the defaults (on
    one page only: widget keys are unique).
    """
    deciding = next(t for t in verdict.tracks if t.track_id == verdict.deciding_track_id)
    n_frames = len({int(i) for i in analysis.scores.frame_indices})
    marks = ui.custom_marks(analysis)
    with st.container(border=True):
        left, right = st.columns([2, 1])
        left.markdown(f"### :{LABEL_COLOUR[verdict.label]}[{VERDICT_WORDS[verdict.label].upper()}]")
        thumb, who = left.columns([1, 4])
        thumb.image(face_thumbnail(analysis, best_face(analysis, deciding.track_id)), width=96)
        who.markdown(
            f"**Person {deciding.track_id + 1} decides.** Seen in {deciding.n_frames} of "
            f"{n_frames} sampled frames with faces ({deciding.first_timestamp_s:.1f}–"
            f"{deciding.last_timestamp_s:.1f} s); manipulation score {deciding.p_fake:.3f}."
        )
        who.caption(f"Who decides: {verdict.rule}")
        right.metric(
            "Manipulation score",
            f"{verdict.p_fake:.3f}",
            help="The ensemble's score for the deciding person: 0 = no sign of manipulation, "
            "1 = certainly manipulated (for the methods these models know).",
        )
        low = max(0.0, verdict.threshold - verdict.settings.inconclusive_band)
        right.caption(
            f"Alarm threshold {verdict.threshold:.2f}; inconclusive from {low:.2f} up to it."
        )
        if verdict.real_percentile is not None:
            right.caption(
                f"Higher than {100 * verdict.real_percentile:.0f} % of the real videos the "
                "threshold was calibrated on."
            )
        else:  # the same words as the explanation and the report
            right.caption(verdict.placement_note or uncalibrated_words(verdict))
        if marks:
            st.warning("**Custom settings:** " + "; ".join(marks) + ".", icon=":material/tune:")
            if controls:
                st.button("Reset to defaults", key="reset_card", on_click=ui.reset_scoring)
        with st.expander("How this verdict was reached"):
            st.write(verdict.explanation)
        people_table(analysis, verdict, controls)
        st.caption(f"Models for person {deciding.track_id + 1}:")
        cols = st.columns(max(1, len(verdict.per_model)))
        total = max(1e-9, sum(verdict.settings.weights.values()))
        for col, (m, p) in zip(cols, verdict.per_model.items(), strict=True):
            w = verdict.settings.weights.get(m, 0.0) / total
            col.metric(m, f"{p:.3f}", help=f"this model's manipulation score; weight {w:.2f}")
    untrained = [c.name for c in analysis.models if not c.metrics]
    if untrained:
        st.caption(f"Models without measured metrics: {', '.join(untrained)}.")
    st.caption(
        "A score is evidence, not proof: the models were trained on specific manipulation "
        "methods (see the Models page) and can miss others."
    )


def people_table(analysis: Analysis, verdict: Verdict, controls: bool) -> None:
    """One row per person: face, frames, score, role; with controls, the exclusion choice."""
    tracks = verdict.tracks
    if len(tracks) < 2 and not any(t.excluded for t in tracks):
        return
    st.markdown(f"**{len(tracks)} people in this clip**")
    if controls:
        st.caption(
            'Everyone counts unless you exclude them: choose "not a face" for a detection '
            'that is not one, "not relevant" for a person outside the question. The verdict '
            "is computed again from the others, without a new analysis, and the report records it."
        )
    if controls:
        ui.init_exclusion_widgets(verdict.settings, [t.track_id for t in tracks])
    included = [t for t in tracks if not t.excluded]
    for t in tracks:
        c0, c1, c2 = st.columns([1, 5, 3])
        c0.image(face_thumbnail(analysis, best_face(analysis, t.track_id)), width=56)
        c1.markdown(
            f"**Person {t.track_id + 1}** · {t.n_frames} frame(s) · manipulation score "
            f"{t.p_fake:.3f} · {person_role(t, verdict)}"
        )
        if controls:
            c2.selectbox(
                f"Person {t.track_id + 1}",
                state.EXCLUSION_REASONS,
                key=ui.exclusion_key(t.track_id),
                on_change=ui.apply_exclusion,
                args=(t.track_id,),
                disabled=not t.excluded and len(included) == 1,
                help="At least one person must count.",
                label_visibility="collapsed",
            )


def face_thumbnail(analysis: Analysis, face_id: int) -> np.ndarray:
    """A face crop with a border in its person's colour."""
    face = analysis.face(face_id)
    return framed(face.crop, person_rgb(face.track_id))


def frame_viewer(analysis: Analysis, face_id: int) -> None:
    """The whole frame of a face with every face box, the face itself and the video at that time."""
    face = analysis.face(face_id)
    fr = frame_record(analysis, face.frame_index)
    left, right = st.columns([3, 2])
    image = annotated_frame(analysis, face.frame_index, highlight_face_id=face_id)
    people = sorted({analysis.face(f).track_id + 1 for f in fr.face_ids})
    if image is None:
        left.warning("This analysis kept no picture of the whole frame (made by an older version).")
    else:
        left.image(
            image,
            caption=f"Frame {face.frame_index} at {face.timestamp_s:.2f} s: "
            f"{len(fr.face_ids)} face(s), person(s) {', '.join(map(str, people))}; "
            f"person {face.track_id + 1} is the thick box.",
        )
    right.image(
        face_thumbnail(analysis, face_id),
        caption=f"Person {face.track_id + 1} at {face.timestamp_s:.2f} s",
        width=200,
    )
    row = int(np.flatnonzero(analysis.scores.face_ids == face_id)[0])
    scores = {
        m: float(analysis.scores.p_fake[row, j]) for j, m in enumerate(analysis.scores.models)
    }
    right.dataframe(
        {"model": list(scores), "manipulation score": [round(v, 3) for v in scores.values()]},
        hide_index=True,
    )
    right.page_link(
        "pages/explain.py", label="Explain this person with Grad-CAM", icon=":material/face:"
    )
    video_player(analysis, face.timestamp_s)


def video_player(analysis: Analysis, start_s: float) -> None:
    """The analysed video from (the second of) ``start_s``, re-encoded only if it cannot play."""
    from detector.io.playback import browser_can_play

    key = ui.current_key()
    data = ui.video_bytes(key)
    if data is None:
        st.info(
            "The video itself is no longer held in this session (only the last "
            f"{state.MAX_VIDEOS_KEPT} are kept); analyse it again to play it."
        )
        return
    if not browser_can_play(analysis.video):
        data = ui.playable_video(key)
        if data is None:
            st.caption(
                f"Browsers cannot play this file's {analysis.video.codec} video as it is. A "
                "playable H.264 copy (no sound, at most 720 px high) can be made in memory."
            )
            st.button(
                "Make a playable copy",
                key="make_playable",
                on_click=ui.make_playable,
                args=(key,),
            )
            return
    st.video(data, start_time=int(start_s), width=640)
    st.caption(f"The player starts at {int(start_s)} s (this frame is at {start_s:.2f} s).")


def face_strip(analysis: Analysis, face_ids, per_row: int = 8, width: int = 96) -> None:
    """A row of face thumbnails (bordered in the person's colour) with their times."""
    cols = st.columns(per_row)
    for k, fid in enumerate(face_ids):
        face = analysis.face(fid)
        cols[k % per_row].image(
            face_thumbnail(analysis, fid), caption=f"{face.timestamp_s:.1f} s", width=width
        )


def colour_bar() -> None:
    st.image(colour_bar_png(SCALE_MAX, STANDS_OUT_AT), width=420)


def gradcam_tile(analysis: Analysis, face_id: int, cam: CamResult, col) -> None:
    """One face's Grad-CAM, or the "nothing stands out" state in words."""
    face = analysis.face(face_id)
    if cam.stands_out:
        col.image(
            framed(cam.overlay, person_rgb(face.track_id)),
            caption=f"{face.timestamp_s:.1f} s · score {cam.p_fake:.2f} · peak {cam.peak:.1f}",
        )
    else:
        col.image(
            face_thumbnail(analysis, face_id),
            caption=f"{face.timestamp_s:.1f} s · score {cam.p_fake:.2f} · nothing stands out",
        )


def gradcam_on_frame(analysis: Analysis, face_id: int, cam: CamResult) -> None:
    """The Grad-CAM drawn where the crop was cut from the whole frame, with every face box."""
    face = analysis.face(face_id)
    fr = frame_record(analysis, face.frame_index)
    base = frame_image(fr)
    if base is None:
        st.warning("This analysis kept no picture of the whole frame.")
        return
    margin = FaceSettings().crop_margin
    if cam.stands_out:
        base = overlay_on_frame(base, fr.preview_scale, face.box_xyxy, cam.heatmap, margin)
    image = annotated_frame(analysis, face.frame_index, image=base, highlight_face_id=face_id)
    state = "" if cam.stands_out else f" Nothing stands out: {cam.why_nothing}."
    st.image(
        image,
        caption=f"{cam.model} on person {face.track_id + 1} at {face.timestamp_s:.2f} s "
        f"(frame {face.frame_index}).{state}",
    )


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


def precision_paths_text(paths: dict) -> str:
    """In words: the threshold holds on each precision path, with each path's counts."""
    return (
        "The threshold is the higher of those set on each precision path measured, so it holds "
        "on each of these kinds of CPU (a GPU computes in another mix of precisions, not "
        "calibrated). At it: " + precision_path_words(paths) + "."
    )


def calibration_summary() -> None:
    """How the default verdict's threshold was set, and what it catches, in words."""
    from detector.verdict.scoring import default_scoring

    s = default_scoring()
    cal = s.calibration
    with st.container(border=True):
        st.markdown("#### The default ensemble and its threshold")
        members = ", ".join(f"{m} {w:.2f}" for m, w in s.weights.items())
        st.write(f"Members: {members}; frames combined by the {s.aggregation}.")
        if cal is None:
            st.caption(NO_CALIBRATION)
            return
        r = cal.rates
        real, fakes = r.get("real", {}), r.get("all_fakes", {})
        st.write(
            f"Alarm threshold {s.threshold:.3f}: the score that at most "
            f"{100 * cal.target_false_alarm:.0f} % of {len(cal.real_scores)} real videos reach "
            f'({cal.pool}). "Inconclusive" from {s.threshold - s.inconclusive_band:.3f}.'
        )
        if len(cal.paths) > 1:
            st.write("Measured with every model in float32:")
        lines = [
            f"- real videos flagged: {real.get('flagged_count', '?')} of {real.get('n', '?')}",
        ]
        for key, label in (("celebdf", "Celeb-DF fakes"), ("ffpp_clips", "FF++ DF/FS/NT clips")):
            if key in r:
                lines.append(f"- {label} flagged: {r[key]['flagged_count']} of {r[key]['n']}")
        if fakes:
            lines.append(
                f"- all validation fakes flagged: {fakes['flagged_count']} of {fakes['n']}"
            )
        st.markdown("\n".join(lines))
        if len(cal.paths) > 1:
            st.caption(precision_paths_text(cal.paths))
        st.caption(
            "Measured on the same videos that set the threshold, so these rates are optimistic; "
            "on manipulation methods and footage unlike these, expect fewer fakes caught."
        )


STATE_ICON = {
    "present": ":material/verified:",
    "absent": ":material/help:",
    "invalid": ":material/gpp_bad:",
    "unchecked": ":material/help:",
}


def provenance_section(p: Provenance | None, note: str = "") -> None:
    """File & provenance: content credentials, findings by severity, the metadata table.

    Evidence beside the faces: it never enters the manipulation score, and says so.
    """
    st.subheader("File & provenance")
    if p is None:
        st.caption("The file's credentials and metadata were not read for this analysis.")
        return
    st.caption(
        "What the file says about itself: content credentials (C2PA) and container metadata. "
        "Evidence beside the faces; it does not change the manipulation score."
    )
    if note:
        st.info(note)
    if not p.ok:
        st.warning(f"The file could not be read for provenance: {p.message}")
    c = p.c2pa
    rows = credential_facts(p)
    headline = f"**{rows[0][1]}**"
    if c.state == "invalid":
        st.error(headline, icon=STATE_ICON[c.state])
    elif c.state == "present" and c.trust == "trusted":
        st.success(headline, icon=STATE_ICON[c.state])
    else:
        st.info(headline, icon=STATE_ICON[c.state])
    if len(rows) > 1:
        st.table({"": [k for k, _ in rows[1:]], "Content credentials": [v for _, v in rows[1:]]})
    for f in p.findings:
        if f.severity == "notable":
            st.warning(f.text, icon=":material/flag:")
        else:
            st.caption(f":material/info: {f.text}")
    if p.metadata is not None:
        with st.expander("Container and stream metadata"):
            meta = metadata_rows(p.metadata)
            st.table({"Field": [k for k, _ in meta], "Value": [v for _, v in meta]})
