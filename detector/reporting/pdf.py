"""The PDF report an analyst files: the case, the verdict and who decided it, the evidence, the
settings, limitations and provenance; the models' training details and the core paper's table
layout in an appendix.

Rendered with fpdf2 and matplotlib (no browser needed), with the DejaVu font that matplotlib ships
so that any file name or language prints. A failed analysis still yields a report that records
what was tried and why there is no verdict. People keep the colours of the app
(:mod:`detector.reporting.visual`)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

from detector.reporting.pdf_sections import frame_table

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from fpdf import FPDF

from detector.audio.reporting import pdf_voice_section, verdict_line
from detector.reporting.pdf_sections import (
    breakdown_section,
    calibration_words,
    draw_facts,
    draw_table,
    faces_section,
    frame_section,
    gradcam_section,
    heading,
    models_appendix,
    para,
    provenance_section,
    verdict_section,
)
from detector.reporting.record import (
    ORDER_WORDS,
    CaseInfo,
    app_version,
    software_versions,
)
from detector.reporting.visual import (
    person_colour,
)
from detector.types import Analysis, ScoringSettings, Verdict
from detector.verdict.aggregate import AGGREGATOR_LABELS, ensemble_per_face
from detector.verdict.verdict import compute_verdict

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


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
    draw_facts(pdf, facts)
    if case.notes:
        heading(pdf, "Analyst's notes")
        para(pdf, 5, case.notes)

    verdict: Verdict | None = None
    if analysis.ok:
        scoring = scoring or analysis.verdict.settings
        verdict = compute_verdict(analysis.scores, scoring)
    heading(pdf, "Verdict")
    if verdict is None:
        pdf.set_font("DejaVu", "B", 12)
        pdf.set_text_color(179, 38, 30)
        para(pdf, 6, "NO VERDICT: " + analysis.status.replace("_", " "))
        pdf.set_text_color(0)
        pdf.set_font("DejaVu", "", 9)
        para(pdf, 5, analysis.message)
        para(pdf, 5, "No score is given: the tool does not turn missing evidence into a number.")
    else:
        verdict_section(pdf, analysis, verdict)
    if analysis.audio is not None:
        para(pdf, 5, verdict_line(analysis, verdict))

    heading(pdf, "Settings")
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
            ("People → video", "the most suspicious person who decides"),
            ("Calibration", calibration_words(verdict)),
        ]
    draw_facts(pdf, settings)
    if analysis.models:
        total = sum(verdict.settings.weights.values()) if verdict is not None else 0.0
        rows = [["Model, precision", "Weight", "Weights sha256"]]
        for m in analysis.models:
            w = verdict.settings.weights.get(m.name, 0) / total if verdict is not None else None
            rows.append(
                [
                    m.name
                    + (" (temporal, per window)" if m.kind == "track" else "")
                    + (f", {m.precision}" if m.precision else ""),
                    "—" if w is None else f"{w:.2f}",
                    m.sha256 or "—",
                ]
            )
        draw_table(pdf, rows, widths=(55, 15, 120))
        para(pdf, 4, "What each model is and what it was trained on: Appendix A.")

    if analysis.provenance is not None:
        provenance_section(pdf, analysis.provenance)
    if analysis.audio is not None:
        pdf_voice_section(pdf, analysis.audio)

    if verdict is not None:
        pdf.add_page()
        heading(pdf, "Timeline")
        pdf.image(io.BytesIO(timeline_png(analysis, verdict.settings)), w=180)
        faces_section(pdf, analysis, verdict)
        frame_section(pdf, analysis, verdict)
        if gradcams:
            gradcam_section(pdf, analysis, gradcams)
        frame_table(pdf, analysis, verdict)

    heading(pdf, "Limitations")
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
        para(pdf, 5, "• " + line)

    pdf.add_page()
    heading(pdf, "Appendix A. The models: training data, licences, measured performance")
    models_appendix(pdf, analysis)
    if verdict is not None:
        breakdown_section(pdf, analysis, verdict)
    heading(pdf, "Software")
    draw_facts(pdf, list(software_versions().items()))
    return bytes(pdf.output())
