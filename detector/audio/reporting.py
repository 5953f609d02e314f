"""The voice in the reports: the ``audio`` part of ``analyze --json``, the two-part verdict line
("Faces: …; Voice: …") and the PDF's voice section. Faces and voice stay apart: each has its own
threshold, evidence and words, and neither enters the other's score.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from detector.audio.records import AudioAnalysis

if TYPE_CHECKING:
    from fpdf import FPDF

    from detector.types import Analysis, Verdict

STATUS_WORDS = {
    "ok": "analysed",
    "no_audio": "no audio track",
    "no_speech": "no speech found",
    "audio_unreadable": "the audio track could not be decoded",
    "not_analysed": "not analysed",
}


def audio_to_dict(a: AudioAnalysis | None) -> dict | None:
    """The ``audio`` part of the JSON document (null when the voice was not asked for)."""
    if a is None:
        return None
    v = a.verdict
    card = a.card
    return {
        "status": a.status,
        "message": a.message,
        "audio_only": a.audio_only,
        "member": None
        if card is None
        else {
            "name": card.name,
            "family": card.family,
            "kind": card.kind,
            "weights_sha256": card.sha256,
            "trained_on": card.trained_on,
            "licence": card.licence,
            "precision": a.precision,
        },
        "duration_s": round(a.duration_s, 3),
        "speech_s": round(a.speech_s, 3),
        "speech": [[round(s, 3), round(e, 3)] for s, e in a.speech],
        "segments": [
            {
                "start_s": s.start_s,
                "end_s": s.end_s,
                "p_fake": round(s.p_fake, 6),
                "margin": round(s.margin, 4),
                "tiled": s.tiled,
            }
            for s in a.segments
        ],
        "verdict": None
        if v is None
        else {
            "label": v.label,
            "words": v.words,
            "p_fake": round(v.p_fake, 6),
            "threshold": round(v.threshold, 6),
            "inconclusive_from": round(v.inconclusive_from, 6),
            "reduction": v.reduction,
            "calibrated": v.calibrated,
            "real_percentile": v.real_percentile,
            "rule": v.rule,
        },
        "notes": list(a.notes),
        "timings_s": {k: round(t, 4) for k, t in a.timings_s.items()},
    }


def voice_words(a: AudioAnalysis | None) -> str:
    """The voice's half of the verdict line."""
    if a is None:
        return "not analysed"
    if a.verdict is None:
        return STATUS_WORDS.get(a.status, a.status.replace("_", " "))
    v = a.verdict
    return f"{v.words} (voice score {v.p_fake:.2f}, threshold {v.threshold:.2f})"


def verdict_line(analysis: Analysis, verdict: Verdict | None = None) -> str:
    """ "Faces: …; Voice: …", each half with its own words and score (or its state)."""
    verdict = verdict if verdict is not None else analysis.verdict
    if verdict is not None:
        from detector.verdict.verdict import VERDICT_WORDS

        faces = f"{VERDICT_WORDS[verdict.label]} (manipulation score {verdict.p_fake:.2f})"
    else:
        faces = "no verdict (" + analysis.status.replace("_", " ") + ")"
    return f"Faces: {faces}; Voice: {voice_words(analysis.audio)}"


def voice_lane_png(a: AudioAnalysis) -> bytes:
    """The audio lane: each scored window's voice score over time, with the voice threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 1.8), dpi=120)
    for s, e in a.speech:
        ax.axvspan(s, e, color="#dde8f5", lw=0)
    for seg in a.segments:
        ax.plot([seg.start_s, seg.end_s], [seg.p_fake, seg.p_fake], color="#b3261e", lw=3)
    if a.verdict is not None:
        ax.axhline(a.verdict.threshold, color="k", ls="--", lw=0.8)
    ax.set_xlim(0, max(a.duration_s, 1.0))
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s); shaded: speech")
    ax.set_ylabel("voice score")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def pdf_voice_section(pdf: FPDF, a: AudioAnalysis | None) -> None:
    """The PDF's voice section (fonts as set up by :func:`detector.reporting.pdf.render_pdf`)."""
    pdf.ln(3)
    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(0, 7, "Voice", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)

    def para(text: str) -> None:
        pdf.set_x(pdf.l_margin)
        pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")

    para(
        "The audio track is judged on its own, by a speech anti-spoofing model with its own "
        "threshold; it does not enter the faces' manipulation score."
    )
    if a is None:
        para("The voice was not analysed (switched off for this analysis).")
        return
    if a.verdict is None:
        para(f"No voice verdict: {STATUS_WORDS.get(a.status, a.status)}. {a.message}")
        para("No score is given: the tool does not turn missing evidence into a number.")
        return
    v = a.verdict
    pdf.set_font("DejaVu", "B", 11)
    para(f"{v.words}: voice score {v.p_fake:.2f} (threshold {v.threshold:.2f})")
    pdf.set_font("DejaVu", "", 9)
    para(f"Rule: {v.rule}.")
    if v.real_percentile is not None:
        para(
            f"Higher than {100 * v.real_percentile:.0f} % of the real recordings the voice "
            "threshold was calibrated on."
        )
    para(
        f"Member: {a.member} ({a.card.sha256 if a.card else '—'}); "
        f"{a.speech_s:.1f} s of speech in {a.duration_s:.1f} s of audio."
    )
    pdf.image(io.BytesIO(voice_lane_png(a)), w=180)
    pdf.set_font("DejaVu", "", 7)
    with pdf.table(col_widths=(30, 30, 30, 30), text_align="LEFT", line_height=4) as table:
        for row in [["Start (s)", "End (s)", "Voice score", "Tiled"]] + [
            [f"{s.start_s:.2f}", f"{s.end_s:.2f}", f"{s.p_fake:.3f}", "yes" if s.tiled else ""]
            for s in a.segments
        ]:
            r = table.row()
            for cell in row:
                r.cell(cell)
    pdf.set_font("DejaVu", "", 9)
    for note in a.notes:
        para("Note: " + note)
    para(
        "Limits: the member knows the synthetic speech of its training data (2019-era TTS and "
        "voice conversion) and the local systems it was checked on; modern neural TTS and voice "
        "clones it never saw can pass as real. A low voice score does not certify a voice."
    )
