"""The PDF report an analyst files: the case, the verdict and who decided it, the evidence, the
settings, limitations and provenance; the models' training details and the core paper's table
layout in an appendix.

Rendered with fpdf2 and matplotlib (no browser needed), with the DejaVu font that matplotlib ships
so that any file name or language prints. A failed analysis still yields a report that records
what was tried and why there is no verdict. People keep the colours of the app
(:mod:`detector.visual`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from fpdf import FPDF

from detector.aggregate import (
    AGGREGATOR_LABELS,
    VERDICT_WORDS,
    compute_verdict,
    ensemble_per_face,
)
from detector.audio.reporting import pdf_voice_section, verdict_line
from detector.faces import FaceSettings
from detector.provenance import Provenance, credential_facts, metadata_rows
from detector.report import (
    ORDER_WORDS,
    CaseInfo,
    app_version,
    best_face,
    custom_marks,
    describe_init,
    person_role,
    software_versions,
)
from detector.tables import breakdown_table, round_half_up
from detector.types import Analysis, ScoringSettings, Verdict
from detector.visual import (
    SCALE_MAX,
    STANDS_OUT_AT,
    annotated_frame,
    colour_bar_png,
    frame_image,
    frame_record,
    framed,
    overlay_on_frame,
    person_colour,
    person_rgb,
    png_bytes,
)

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
LABEL_RGB = {"fake": (179, 38, 30), "real": (30, 120, 50), "uncertain": (200, 120, 0)}
MAX_TABLE_ROWS = 300


class _Report(FPDF):
    def header(self) -> None:
        self.set_font("DejaVu", "", 8)
        self.set_text_color(120)
        self.cell(
            0, 5, f"Deepfake video analysis report · deepfake-detector {app_version()}", align="R"
        )
        self.ln(7)
        self.set_text_color(0)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("DejaVu", "", 8)
        self.set_text_color(120)
        self.cell(0, 5, f"Page {self.page_no()}/{{nb}}", align="C")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def timeline_png(analysis: Analysis, scoring: ScoringSettings) -> bytes:
    """The per-frame timeline as a static image: models (thin), ensemble per person, threshold."""
    s = analysis.scores
    ens = ensemble_per_face(s, scoring.weights)
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    temporal = {c.name for c in analysis.models if c.kind == "track"}
    one_person = len(np.unique(s.track_ids)) == 1
    for tid in np.unique(s.track_ids):
        rows = s.track_ids == tid
        order = np.argsort(s.timestamps_s[rows])
        t = s.timestamps_s[rows][order]
        if one_person:
            for j, m in enumerate(s.models):
                if scoring.weights.get(m, 0) <= 0:
                    continue
                y = s.p_fake[rows, j][order]
                if m in temporal:  # one score per window: a band
                    ax.fill_between(t, 0, y, step="post", alpha=0.18, label=f"{m} (per window)")
                else:
                    ax.plot(t, y, lw=0.8, ls=":", marker=".", label=m)
        ax.plot(
            t,
            ens[rows][order],
            lw=2.2,
            marker="o",
            ms=3,
            color=person_colour(int(tid)),
            label=f"ensemble, person {tid + 1}",
        )
    ax.axhline(scoring.threshold, color="k", ls="--", lw=1, label="threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("manipulation score")
    ax.legend(fontsize=6, ncol=3, loc="upper right")
    ax.grid(alpha=0.3)
    return _png(fig)


def _image(arr: np.ndarray) -> io.BytesIO:
    return io.BytesIO(png_bytes(arr))


def render_pdf(
    analysis: Analysis,
    scoring: ScoringSettings | None = None,
    gradcams: Sequence[tuple[int, object]] = (),
    now: datetime | None = None,
    case: CaseInfo | None = None,
) -> bytes:
    """The report as PDF bytes. ``gradcams`` holds (face_id, CamResult) pairs to include."""
    pdf = _Report(format="A4")
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(True, margin=15)
    pdf.alias_nb_pages()
    pdf.add_page()
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    case = case or CaseInfo()

    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(0, 9, "Deepfake video analysis", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    v = analysis.video
    facts = [
        ("Case id", case.case_id or "— (not entered)"),
        ("Analyst", case.analyst or "— (not entered)"),
        ("Date", when),
        ("App version", f"deepfake-detector {app_version()}"),
        ("Status", analysis.status),
    ]
    if v is not None:
        facts[4:4] = [
            ("File", v.name),
            ("SHA-256", v.sha256),
            ("Size", f"{v.size_bytes:,} bytes"),
            (
                "Video",
                f"{v.width}x{v.height}, {v.fps:.2f} fps, {v.duration_s:.2f} s, {v.codec} in "
                f"{v.container.split(',')[0]}, rotation {v.rotation_deg}°, {v.frame_count} frames "
                f"({v.frame_count_source.replace('_', ' ')})",
            ),
        ]
    _facts(pdf, facts)
    if case.notes:
        _heading(pdf, "Analyst's notes")
        _para(pdf, 5, case.notes)

    verdict: Verdict | None = None
    if analysis.ok:
        scoring = scoring or analysis.verdict.settings
        verdict = compute_verdict(analysis.scores, scoring)
    _heading(pdf, "Verdict")
    if verdict is None:
        pdf.set_font("DejaVu", "B", 12)
        pdf.set_text_color(179, 38, 30)
        _para(pdf, 6, "NO VERDICT: " + analysis.status.replace("_", " "))
        pdf.set_text_color(0)
        pdf.set_font("DejaVu", "", 9)
        _para(pdf, 5, analysis.message)
        _para(pdf, 5, "No score is given: the tool does not turn missing evidence into a number.")
    else:
        _verdict_section(pdf, analysis, verdict)
    if analysis.audio is not None:
        _para(pdf, 5, verdict_line(analysis, verdict))

    _heading(pdf, "Settings")
    settings = [("Sampling", analysis.sampling), ("Frames sampled", str(len(analysis.frames)))]
    if verdict is not None:
        s = verdict.settings
        settings += [
            ("Frames → person", AGGREGATOR_LABELS[s.aggregation]),
            ("Order", ORDER_WORDS[s.order]),
            (
                "Threshold",
                f"{s.threshold:.2f} (inconclusive from {max(0.0, s.threshold - s.inconclusive_band):.2f})",
            ),
            (
                "People → video",
                "most suspicious person" if s.track_reduction == "max" else s.track_reduction,
            ),
            ("Calibration", _calibration_words(verdict)),
        ]
    _facts(pdf, settings)
    if analysis.models:
        total = sum(verdict.settings.weights.values()) if verdict is not None else 0.0
        rows = [["Model", "Weight", "Weights sha256"]]
        for m in analysis.models:
            w = verdict.settings.weights.get(m.name, 0) / total if verdict is not None else None
            rows.append(
                [
                    m.name + (" (temporal, per window)" if m.kind == "track" else ""),
                    "—" if w is None else f"{w:.2f}",
                    m.sha256 or "—",
                ]
            )
        _table(pdf, rows, widths=(55, 15, 120))
        _para(pdf, 4, "What each model is and what it was trained on: Appendix A.")

    if analysis.provenance is not None:
        _provenance_section(pdf, analysis.provenance)
    if analysis.audio is not None:
        pdf_voice_section(pdf, analysis.audio)

    if verdict is not None:
        pdf.add_page()
        _heading(pdf, "Timeline")
        pdf.image(io.BytesIO(timeline_png(analysis, verdict.settings)), w=180)
        _faces_section(pdf, analysis, verdict)
        _frame_section(pdf, analysis, verdict)
        if gradcams:
            _gradcam_section(pdf, analysis, gradcams)
        _frame_table(pdf, analysis, verdict)

    _heading(pdf, "Limitations")
    pdf.set_font("DejaVu", "", 9)
    lines = [
        "A score is evidence, not proof. The models learned the artefacts of the manipulation "
        "methods in their training data (Appendix A) and can miss methods, compressions or "
        "resolutions they have not seen; a low score does not certify a video as authentic.",
        "Faces and the voice are examined, each apart; manipulated backgrounds or edits without "
        "a face or speech are outside the scope of this tool.",
    ]
    lines += [f"Note: {note}" for note in analysis.notes]
    for line in lines:
        _para(pdf, 5, "• " + line)

    pdf.add_page()
    _heading(pdf, "Appendix A. The models: training data, licences, measured performance")
    _models_appendix(pdf, analysis)
    if verdict is not None:
        _breakdown_section(pdf, analysis, verdict)
    _heading(pdf, "Software")
    _facts(pdf, list(software_versions().items()))
    return bytes(pdf.output())


def _verdict_section(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
    """The verdict led by the person who decides it, every person's score, the custom mark."""
    pdf.set_font("DejaVu", "B", 13)
    pdf.set_text_color(*LABEL_RGB[verdict.label])
    pdf.cell(
        0,
        7,
        f"{VERDICT_WORDS[verdict.label].upper()}   manipulation score {verdict.p_fake:.3f}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_text_color(0)
    marks = custom_marks(analysis, verdict.settings)
    if marks:
        pdf.set_font("DejaVu", "B", 9)
        pdf.set_text_color(*LABEL_RGB["uncertain"])
        _para(pdf, 5, "Custom settings: " + "; ".join(marks) + ".")
        pdf.set_text_color(0)
    pdf.set_font("DejaVu", "", 9)
    deciding = next(t for t in verdict.tracks if t.track_id == verdict.deciding_track_id)
    n_frames = len({int(i) for i in analysis.scores.frame_indices})
    y = pdf.get_y() + 1
    face = best_face(analysis, deciding.track_id)
    pdf.image(
        _image(framed(analysis.face(face).crop, person_rgb(deciding.track_id))), x=15, y=y, w=24
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
    _para(pdf, 5, verdict.explanation)
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
        _table(pdf, rows, widths=(25, 20, 35, 110))


def _provenance_section(pdf: FPDF, p: Provenance) -> None:
    """Content credentials, metadata and findings: evidence beside the faces, not in the score."""
    _heading(pdf, "File & provenance")
    _para(
        pdf,
        4,
        "What the file says about itself: content credentials (C2PA) and container metadata. "
        "This is evidence beside the faces; it does not enter the manipulation score.",
    )
    if not p.ok:
        _para(pdf, 5, f"The file could not be read for provenance: {p.message}")
    _facts(pdf, credential_facts(p))
    if p.findings:
        rows = [["Severity", "Finding"]] + [[f.severity, f.text] for f in p.findings]
        _table(pdf, rows, widths=(18, 172))
    if p.metadata is not None:
        _table(pdf, [["Metadata", "Value"], *map(list, metadata_rows(p.metadata))], (45, 145))


def _para(pdf: FPDF, height: float, text: str) -> None:
    """A paragraph across the full text width, starting at the left margin."""
    pdf.set_x(pdf.l_margin)
    pdf.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(3)
    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)


def _facts(pdf: FPDF, facts: Sequence[tuple[str, str]]) -> None:
    for key, value in facts:
        pdf.set_font("DejaVu", "B", 9)
        pdf.cell(35, 5, key)
        pdf.set_font("DejaVu", "", 9)
        pdf.multi_cell(0, 5, str(value), new_x="LMARGIN", new_y="NEXT")


def _table(pdf: FPDF, rows: Sequence[Sequence[str]], widths: Sequence[float]) -> None:
    pdf.set_font("DejaVu", "", 7)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=4) as table:
        for row in rows:
            r = table.row()
            for cell in row:
                r.cell(str(cell))
    pdf.set_font("DejaVu", "", 9)


def _scored_faces(analysis: Analysis, track_id: int) -> list[int]:
    s = analysis.scores
    return [int(f) for f in s.face_ids[s.track_ids == track_id]]


def _faces_section(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
    _heading(pdf, "Faces per person")
    for ts in verdict.tracks:
        faces = _scored_faces(analysis, ts.track_id)
        pdf.set_font("DejaVu", "B", 9)
        pdf.set_text_color(*person_rgb(ts.track_id))
        pdf.cell(
            0,
            5,
            f"Person {ts.track_id + 1}: {ts.n_frames} frames, manipulation score "
            f"{ts.p_fake:.3f}; {person_role(ts, verdict)}",
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
            pdf.image(_image(img), x=15 + k * 22.5, y=y, w=21)
        pdf.set_y(y + 23)


def _frame_section(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
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
    _heading(pdf, "The deciding person's most suspicious frame")
    pdf.image(_image(image), w=120)
    _para(
        pdf,
        4,
        f"Frame {face.frame_index} at {face.timestamp_s:.2f} s: every face found in it, boxed in "
        f"its person's colour; person {face.track_id + 1} (thick box) scored {ens[top]:.3f} here.",
    )


def _gradcam_section(pdf: FPDF, analysis: Analysis, gradcams) -> None:
    pdf.add_page()
    _heading(pdf, "Grad-CAM explanations")
    pdf.set_font("DejaVu", "", 8)
    _para(
        pdf,
        4,
        "Where a model found evidence for 'fake' (Grad-CAM on its last convolutional layer), on "
        f"one fixed scale from 0 to {SCALE_MAX:.0f} for every face and model. A map whose "
        f"strongest region is below {STANDS_OUT_AT:g}, or from a model that does not lean "
        "towards 'fake' on that face, is reported as 'nothing stands out' and not coloured.",
    )
    pdf.image(io.BytesIO(colour_bar_png(SCALE_MAX, STANDS_OUT_AT)), w=90)
    for fid, cam in gradcams:
        face = analysis.face(fid)
        if pdf.get_y() > 235:
            pdf.add_page()
        y = pdf.get_y() + 2
        colour = person_rgb(face.track_id)
        pdf.image(_image(framed(face.crop, colour)), x=15, y=y, w=38)
        text = (
            f"Person {face.track_id + 1}, t = {face.timestamp_s:.2f} s, frame {face.frame_index}\n"
            f"Model {cam.model}: score {cam.p_fake:.3f}, strongest region {cam.peak:.2f}"
        )
        if cam.stands_out:
            pdf.image(_image(framed(cam.overlay, colour)), x=57, y=y, w=38)
            fr = frame_record(analysis, face.frame_index)
            base = frame_image(fr)
            if base is not None:
                whole = overlay_on_frame(
                    base, fr.preview_scale, face.box_xyxy, cam.heatmap, FaceSettings().crop_margin
                )
                whole = annotated_frame(
                    analysis, face.frame_index, image=whole, highlight_face_id=fid
                )
                pdf.image(_image(whole), x=99, y=y, w=60)
        else:
            text += f"\nNothing stands out: {cam.why_nothing}."
        pdf.set_xy(162 if cam.stands_out else 57, y)
        pdf.multi_cell(0 if not cam.stands_out else 33, 4, text)
        pdf.set_y(y + 42)


def _models_appendix(pdf: FPDF, analysis: Analysis) -> None:
    if not analysis.models:
        _para(pdf, 5, "No model was loaded for this analysis.")
        return
    for m in analysis.models:
        pdf.set_font("DejaVu", "B", 9)
        _para(pdf, 5, f"{m.name} ({m.family})")
        pdf.set_font("DejaVu", "", 8)
        _para(pdf, 4, m.description)
        metrics = m.metrics or {}
        measured = []
        for split in ("val", "test"):
            part = metrics.get(split) or {}
            for key in ("frame_auc", "video_auc"):
                if part.get(key) is not None:
                    measured.append(f"{split} {key.replace('_', ' ').upper()} {part[key]:.3f}")
        _facts(
            pdf,
            [
                ("Trained on", m.trained_on or "—"),
                ("Initialised from", describe_init(m.init_from)),
                ("Licence", m.licence or "—"),
                ("Data terms", m.data_terms or "—"),
                ("Measured", "; ".join(measured) or "no measured metrics recorded"),
                ("Weights sha256", m.sha256 or "—"),
            ],
        )
        pdf.ln(2)


def _breakdown_section(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
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
    _heading(
        pdf,
        "Appendix B. The deciding person in the core paper's layout "
        f"(Latipova & Yadryshnikova, Tables 3-4; person {verdict.deciding_track_id + 1})",
    )
    pdf.set_font("DejaVu", "", 8)
    _para(
        pdf,
        4,
        f"Ensemble Average and Median: {ORDER_WORDS[verdict.settings.order]}. {table.frame_count} "
        "frames; per-frame values in the per-frame table.",
    )
    rows = [["Output", "Average", "Median"]]
    rows += [[r.label, round_half_up(r.average), round_half_up(r.median)] for r in table.rows]
    _table(pdf, rows, widths=(110, 35, 35))


def _frame_table(pdf: FPDF, analysis: Analysis, verdict: Verdict) -> None:
    s = analysis.scores
    ens = ensemble_per_face(s, verdict.settings.weights)
    _heading(pdf, "Per-frame manipulation scores")
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
    _table(pdf, rows, widths=(*first, *([rest] * (n - 3))))
    if len(s.face_ids) > MAX_TABLE_ROWS:
        _para(
            pdf,
            5,
            f"First {MAX_TABLE_ROWS} of {len(s.face_ids)} faces shown; the CSV export holds all.",
        )


def _calibration_words(verdict) -> str:
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
    )
