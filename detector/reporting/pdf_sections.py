"""The sections of the PDF report (:mod:`detector.reporting.pdf` assembles them): verdict, provenance, people and faces, the most suspicious frame, Grad-CAMs, the models appendix, the score breakdown and the per-frame table."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from fpdf import FPDF

from detector.faces.detect import FaceSettings
from detector.provenance.findings import credential_facts, metadata_rows
from detector.provenance.model import Provenance
from detector.reporting.record import (
    ORDER_WORDS,
    best_face,
    crossval_absence,
    crossval_words,
    custom_marks,
    describe_init,
    person_role,
    precision_path_words,
    retraining_spread_words,
)
from detector.reporting.tables import breakdown_table, round_half_up
from detector.reporting.visual import (
    CAM_LAYERS,
    SCALE_MAX,
    STANDS_OUT_AT,
    annotated_frame,
    colour_bar_png,
    frame_image,
    frame_record,
    framed,
    overlay_on_frame,
    person_rgb,
    png_bytes,
)
from detector.types import Analysis, Verdict
from detector.verdict.aggregate import ensemble_per_face
from detector.verdict.verdict import VERDICT_WORDS

LABEL_RGB = {"fake": (179, 38, 30), "real": (30, 120, 50), "uncertain": (200, 120, 0)}


MAX_TABLE_ROWS = 300


def image_stream(arr: np.ndarray) -> io.BytesIO:
    return io.BytesIO(png_bytes(arr))


def verdict_section(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
    """The verdict led by the person who decides it, every person's score, the custom mark."""
    pdf.set_font("DejaVu", "B", 12)  # the longest words and the score fit on one line
    pdf.set_text_color(*LABEL_RGB[verdict.label])
    pdf.multi_cell(
        0,
        7,
        f"{VERDICT_WORDS[verdict.label].upper()}   manipulation score {verdict.p_fake:.3f}",
        align="L",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_text_color(0)
    marks = custom_marks(analysis, verdict.settings)
    if marks:
        pdf.set_font("DejaVu", "B", 9)
        pdf.set_text_color(*LABEL_RGB["uncertain"])
        para(pdf, 5, "Custom settings: " + "; ".join(marks) + ".")
        pdf.set_text_color(0)
    pdf.set_font("DejaVu", "", 9)
    deciding = next(t for t in verdict.tracks if t.track_id == verdict.deciding_track_id)
    n_frames = len({int(i) for i in analysis.scores.frame_indices})
    y = pdf.get_y() + 1
    face = best_face(analysis, deciding.track_id)
    pdf.image(
        image_stream(framed(analysis.face(face).crop, person_rgb(deciding.track_id))),
        x=15,
        y=y,
        w=24,
    )
    pdf.set_xy(42, y)
    pdf.set_font("DejaVu", "B", 9)
    pdf.multi_cell(
        0,
        5,
        f"Person {deciding.track_id + 1} decides: seen in {deciding.n_frames} of {n_frames} "
        f"sampled frames with faces ({deciding.first_timestamp_s:.1f}–"
        f"{deciding.last_timestamp_s:.1f} s).",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font("DejaVu", "", 9)
    pdf.set_x(42)
    pdf.multi_cell(0, 5, f"Who decides: {verdict.rule}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(pdf.get_y(), y + 26))
    para(pdf, 5, verdict.explanation)
    if len(verdict.tracks) > 1 or any(t.excluded for t in verdict.tracks):
        rows = [["Person", "Frames", "Manipulation score", "Part in the verdict"]]
        for t in verdict.tracks:
            rows.append(
                [
                    f"Person {t.track_id + 1}",
                    str(t.n_frames),
                    f"{t.p_fake:.3f}",
                    person_role(t, verdict),
                ]
            )
        draw_table(pdf, rows, widths=(25, 20, 35, 110))


def provenance_section(pdf: FPDF, p: Provenance) -> None:
    """Content credentials, metadata and findings: evidence beside the faces, not in the score."""
    heading(pdf, "File & provenance")
    para(
        pdf,
        4,
        "What the file says about itself: content credentials (C2PA) and container metadata. "
        "This is evidence beside the faces; it does not enter the manipulation score.",
    )
    if not p.ok:
        para(pdf, 5, f"The file could not be read for provenance: {p.message}")
    draw_facts(pdf, credential_facts(p))
    if p.findings:
        rows = [["Severity", "Finding"]] + [[f.severity, f.text] for f in p.findings]
        draw_table(pdf, rows, widths=(18, 172))
    if p.metadata is not None:
        draw_table(pdf, [["Metadata", "Value"], *map(list, metadata_rows(p.metadata))], (45, 145))


def para(pdf: FPDF, height: float, text: str) -> None:
    """A paragraph across the full text width, starting at the left margin."""
    pdf.set_x(pdf.l_margin)
    pdf.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


def heading(pdf: FPDF, text: str) -> None:
    pdf.ln(3)
    pdf.set_font("DejaVu", "B", 12)
    pdf.multi_cell(0, 7, text, align="L", new_x="LMARGIN", new_y="NEXT")  # a long one wraps
    pdf.set_font("DejaVu", "", 9)


def draw_facts(pdf: FPDF, facts: Sequence[tuple[str, str]]) -> None:
    for key, value in facts:
        pdf.set_font("DejaVu", "B", 9)
        pdf.cell(35, 5, key)
        pdf.set_font("DejaVu", "", 9)
        pdf.multi_cell(0, 5, str(value), align="L", new_x="LMARGIN", new_y="NEXT")


def draw_table(pdf: FPDF, rows: Sequence[Sequence[str]], widths: Sequence[float]) -> None:
    pdf.set_font("DejaVu", "", 7)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=4) as table:
        for row in rows:
            r = table.row()
            for cell in row:
                r.cell(str(cell))
    pdf.set_font("DejaVu", "", 9)


def scored_faces(analysis: Analysis, track_id: int) -> list[int]:
    s = analysis.scores
    return [int(f) for f in s.face_ids[s.track_ids == track_id]]


def faces_section(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
    heading(pdf, "Faces per person")
    for ts in verdict.tracks:
        faces = scored_faces(analysis, ts.track_id)
        pdf.set_font("DejaVu", "B", 9)
        pdf.set_text_color(*person_rgb(ts.track_id))
        pdf.multi_cell(
            0,
            5,
            f"Person {ts.track_id + 1}: {ts.n_frames} frames, manipulation score "
            f"{ts.p_fake:.3f}; {person_role(ts, verdict)}",
            align="L",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_text_color(0)
        pdf.set_font("DejaVu", "", 9)
        step = max(1, len(faces) // 8)
        if pdf.get_y() > 250:
            pdf.add_page()
        y = pdf.get_y()
        for k, fid in enumerate(faces[::step][:8]):
            img = framed(analysis.face(fid).crop, person_rgb(ts.track_id))
            pdf.image(image_stream(img), x=15 + k * 22.5, y=y, w=21)
        pdf.set_y(y + 23)


def frame_section(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
    """The deciding person's most suspicious frame, whole, with every face box."""
    s = analysis.scores
    ens = ensemble_per_face(s, verdict.settings.weights)
    rows = np.flatnonzero(s.track_ids == verdict.deciding_track_id)
    if not len(rows):
        return
    top = rows[int(np.argmax(ens[rows]))]
    face = analysis.face(int(s.face_ids[top]))
    image = annotated_frame(analysis, face.frame_index, highlight_face_id=face.face_id)
    if image is None:
        return
    if pdf.get_y() > 170:
        pdf.add_page()
    heading(pdf, "The deciding person's most suspicious frame")
    pdf.image(image_stream(image), w=120)
    para(
        pdf,
        4,
        f"Frame {face.frame_index} at {face.timestamp_s:.2f} s: every face found in it, boxed in "
        f"its person's colour; person {face.track_id + 1} (thick box) scored {ens[top]:.3f} here.",
    )


def gradcam_section(pdf: FPDF, analysis: Analysis, gradcams) -> None:
    pdf.add_page()
    heading(pdf, "Grad-CAM explanations")
    pdf.set_font("DejaVu", "", 8)
    para(
        pdf,
        4,
        f"Where a model found evidence for 'fake' ({CAM_LAYERS}), on one fixed scale from 0 "
        f"to {SCALE_MAX:.0f} for every face and model. A map whose strongest region is below "
        f"{STANDS_OUT_AT:g}, or from a model that does not lean towards 'fake' on that face, is "
        "reported as 'nothing stands out' and not coloured.",
    )
    pdf.image(io.BytesIO(colour_bar_png(SCALE_MAX, STANDS_OUT_AT)), w=90)
    for fid, cam in gradcams:
        face = analysis.face(fid)
        if pdf.get_y() > 235:
            pdf.add_page()
        y = pdf.get_y() + 2
        colour = person_rgb(face.track_id)
        pdf.image(image_stream(framed(face.crop, colour)), x=15, y=y, w=38)
        text = (
            f"Person {face.track_id + 1}, t = {face.timestamp_s:.2f} s, frame {face.frame_index}\n"
            f"Model {cam.model}: score {cam.p_fake:.3f}, strongest region {cam.peak:.2f}"
        )
        if cam.stands_out:
            pdf.image(image_stream(framed(cam.overlay, colour)), x=57, y=y, w=38)
            fr = frame_record(analysis, face.frame_index)
            base = frame_image(fr)
            if base is not None:
                whole = overlay_on_frame(
                    base, fr.preview_scale, face.box_xyxy, cam.heatmap, FaceSettings().crop_margin
                )
                whole = annotated_frame(
                    analysis, face.frame_index, image=whole, highlight_face_id=fid
                )
                pdf.image(image_stream(whole), x=99, y=y, w=60)
        else:
            text += f"\nNothing stands out: {cam.why_nothing}."
        pdf.set_xy(162 if cam.stands_out else 57, y)
        pdf.multi_cell(0 if not cam.stands_out else 33, 4, text)
        pdf.set_y(y + 42)


# a manifest's in-distribution figures, as the appendix names them
IN_DISTRIBUTION_SPLITS = {
    "val": "val",
    "test": "test",
    "val_ffpp_methods_test_crops": "held-out FF++ crops",  # the CLIP member's check
}


def models_appendix(pdf: FPDF, analysis: Analysis) -> None:
    if not analysis.models:
        para(pdf, 5, "No model was loaded for this analysis.")
        return
    for m in analysis.models:
        pdf.set_font("DejaVu", "B", 9)
        para(pdf, 5, f"{m.name} ({m.family})")
        pdf.set_font("DejaVu", "", 8)
        para(pdf, 4, m.description)
        metrics = m.metrics or {}
        measured = []
        for split, words in IN_DISTRIBUTION_SPLITS.items():
            part = metrics.get(split) or {}
            for key in ("frame_auc", "video_auc"):
                if part.get(key) is not None:
                    measured.append(f"{words} {key.replace('_', ' ').upper()} {part[key]:.3f}")
        cross = crossval_words(metrics) or crossval_absence(metrics)
        if spread := retraining_spread_words(metrics):
            cross += f". {spread}"
        in_dist = "; ".join(measured)
        draw_facts(
            pdf,
            [
                ("Trained on", m.trained_on or "—"),
                ("Initialised from", describe_init(m.init_from)),
                ("Licence", m.licence or "—"),
                ("Data terms", m.data_terms or "—"),
                ("Cross-dataset", cross),
                (
                    "Measured",
                    f"{in_dist} (held-out frames of its own training data: in-distribution, "
                    "not a promise on other manipulations)"
                    if in_dist
                    else "no measured metrics recorded",
                ),
                ("Weights sha256", m.sha256 or "—"),
            ],
        )
        pdf.ln(2)


def breakdown_section(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
    s = analysis.scores
    rows_mask = s.track_ids == verdict.deciding_track_id
    per_model = {m: s.p_fake[rows_mask, j] for j, m in enumerate(s.models)}
    weights = verdict.settings.weights
    table = breakdown_table(
        "breakdown",
        per_model,
        [weights, dict.fromkeys(s.models, 1.0)],
        order=verdict.settings.order,
    )
    heading(
        pdf,
        "Appendix B. The deciding person in the core paper's layout "
        f"(Latipova & Yadryshnikova, Tables 3-4; person {verdict.deciding_track_id + 1})",
    )
    pdf.set_font("DejaVu", "", 8)
    para(
        pdf,
        4,
        f"Ensemble Average and Median: {ORDER_WORDS[verdict.settings.order]}. {table.frame_count} "
        "frames; per-frame values in the per-frame table.",
    )
    rows = [["Output", "Average", "Median"]]
    rows += [[r.label, round_half_up(r.average), round_half_up(r.median)] for r in table.rows]
    draw_table(pdf, rows, widths=(110, 35, 35))


def frame_table(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
    s = analysis.scores
    ens = ensemble_per_face(s, verdict.settings.weights)
    heading(pdf, "Per-frame manipulation scores")
    header = ["t (s)", "frame", "person", *s.models, "ensemble"]
    rows = [header]
    for i in range(min(len(s.face_ids), MAX_TABLE_ROWS)):
        rows.append(
            [f"{s.timestamps_s[i]:.2f}", str(s.frame_indices[i]), str(s.track_ids[i] + 1)]
            + [f"{s.p_fake[i, j]:.3f}" for j in range(len(s.models))]
            + [f"{ens[i]:.3f}"]
        )
    n = len(header)
    first = [14, 14, 14]
    rest = (190 - sum(first)) / (n - 3)
    draw_table(pdf, rows, widths=(*first, *([rest] * (n - 3))))
    if len(s.face_ids) > MAX_TABLE_ROWS:
        para(
            pdf,
            5,
            f"First {MAX_TABLE_ROWS} of {len(s.face_ids)} faces shown; the CSV export holds all.",
        )


def calibration_words(verdict) -> str:
    """Where the threshold came from, in one sentence."""
    cal = verdict.settings.calibration
    if cal is None:
        return "none recorded: the threshold is not calibrated on real footage"
    if not verdict.calibrated:
        return "does not apply: the scoring differs from the calibrated default"
    real = cal.rates.get("real", {})
    fakes = cal.rates.get("all_fakes", {})
    return (
        f"threshold reached by at most {100 * cal.target_false_alarm:.0f} % of "
        f"{len(cal.real_scores)} real videos (measured: {real.get('flagged_count', '?')} "
        f"flagged); it flagged {fakes.get('flagged_count', '?')} of {fakes.get('n', '?')} "
        "validation fakes (optimistic: measured on the videos that set it)"
        + _other_paths(cal.paths)
    )


def _other_paths(paths: dict) -> str:
    """The other precision paths the threshold was set on, with their counts."""
    words = precision_path_words(paths, skip=("fp32",))
    if not words:
        return ""
    return (
        " (with every model in float32). It is the higher of the thresholds set on each "
        f"precision path measured, so it holds on each of these kinds of CPU ({words}); a GPU's "
        "mix of precisions is not calibrated"
    )
