"""What the app and the report show: frame previews, person colours, playable copies, the PDF
and JSON records (case, app version, custom settings, exclusions, plain words, appendix)."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from pypdf import PdfReader

from detector.errors import VideoReadError
from detector.io import synthetic
from detector.io.playback import browser_can_play, playable_copy
from detector.io.probe import probe
from detector.pipeline import ExtractionSettings
from detector.reporting.pdf import render_pdf
from detector.reporting.record import (
    CaseInfo,
    analysis_to_dict,
    app_version,
    custom_marks,
    frame_scores_csv,
)
from detector.reporting.visual import annotated_frame, frame_image, person_rgb
from detector.types import Analysis
from detector.verdict.scoring import default_scoring


@pytest.fixture(scope="module")
def crowd(analyzer, videos):
    """Three people, default models and sampling."""
    return analyzer.analyze(videos["three_faces"], ExtractionSettings(sampling="1fps"))


def test_every_sampled_frame_keeps_a_small_preview(crowd):
    assert crowd.ok and len(crowd.tracks) >= 2
    for fr in crowd.frames:
        img = frame_image(fr)
        assert img is not None and max(img.shape[:2]) <= 640
        assert fr.preview_scale == pytest.approx(img.shape[1] / crowd.video.display_size[0])


def test_whole_frame_boxes_each_person_in_their_colour(crowd):
    fr = next(f for f in crowd.frames if len(f.face_ids) >= 2)
    image = annotated_frame(crowd, fr.index)
    plain = frame_image(fr)
    for fid in fr.face_ids:
        face = crowd.face(fid)
        x1, y1 = (round(c * fr.preview_scale) for c in face.box_xyxy[:2])
        x2 = round(face.box_xyxy[2] * fr.preview_scale)
        y = (y1 + round(face.box_xyxy[3] * fr.preview_scale)) // 2
        left_edge = image[y, max(0, x1 - 1) : x1 + 2].astype(int)
        assert np.abs(left_edge - person_rgb(face.track_id)).sum(axis=1).min() < 40
        assert not np.array_equal(image[y, x1 : x2 + 1], plain[y, x1 : x2 + 1])


def test_browsers_play_h264_and_get_a_copy_of_anything_else(tmp_path):
    h264 = synthetic.astronaut_clip(tmp_path / "a.mp4", seconds=1)
    old = synthetic.write_video(
        tmp_path / "b.avi", synthetic.face_frames(320, 240, 20), codec="mpeg4"
    )
    assert browser_can_play(probe(h264, name="a.mp4"))
    assert not browser_can_play(probe(old, name="b.avi"))
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(playable_copy(old.read_bytes()))
    info = probe(copy, name="copy.mp4")
    assert info.codec == "h264" and browser_can_play(info)
    with pytest.raises(VideoReadError):
        playable_copy(b"not a video" * 50)


def _pdf_text(pdf: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)


def test_report_records_the_case_version_and_exclusions(crowd):
    default = default_scoring()
    person = int(crowd.verdict.deciding_track_id)
    scoring = replace(default, exclusions={person: "not relevant"})
    case = CaseInfo("CASE-7", "R. Checker", "From a tip line; see ticket 12.")
    doc = json.loads(json.dumps(analysis_to_dict(crowd, scoring, case=case)))
    assert doc["case"] == case.as_dict() and doc["app_version"] == app_version()
    assert doc["custom_settings"] == [f"person {person + 1} excluded (not relevant)"]
    assert doc["settings"]["scoring"]["exclusions"] == {str(person + 1): "not relevant"}
    assert doc["verdict"]["deciding_track_id"] != person  # another person decides now
    excluded = [t for t in doc["tracks"] if t["excluded"]]
    assert [t["track_id"] for t in excluded] == [person]

    text = _pdf_text(render_pdf(crowd, scoring, case=case))
    flat = " ".join(text.split())
    for expected in (
        "CASE-7",
        "R. Checker",
        "From a tip line; see ticket 12.",
        f"deepfake-detector {app_version()}",
        f"Custom settings: person {person + 1} excluded (not relevant).",
        "excluded by the analyst (not relevant)",
        "Who decides:",
        "Appendix A. The models",
        "Appendix B.",
    ):
        assert expected in flat, expected
    assert "p_fake" not in text and "paper 000" not in text
    main_body = flat.split("Appendix A.")[0]
    assert "Trained on" not in main_body and "Licence" not in main_body  # in the appendix
    # each model's cross-dataset figure beside its in-distribution one, and the CLIP member's
    # retraining spread, as on the Models page
    from detector.models import model_card
    from detector.reporting.record import crossval_words, retraining_spread_words

    clip = model_card("clip_vit_b16").metrics
    appendix = flat.split("Appendix A. The models")[-1].split("Appendix B.")[0]
    for words in (crossval_words(clip), retraining_spread_words(clip)):
        assert words and " ".join(words.split()) in appendix, words
    assert appendix.count("Cross-dataset") == len(crowd.models)
    assert "in-distribution, not a promise on other manipulations" in appendix
    own = clip["val_ffpp_methods_test_crops"]["frame_auc"]  # the CLIP member's own check
    assert f"held-out FF++ crops FRAME AUC {own:.3f}" in appendix


def test_default_settings_carry_no_custom_mark(crowd):
    assert custom_marks(crowd, default_scoring()) == []
    text = " ".join(_pdf_text(render_pdf(crowd)).split())
    assert "Custom settings" not in text and "Case id — (not entered)" in text


def test_uploaded_labelled_clips_score_like_folders(crowd):
    """The app's Table 5 on uploaded clips uses the deciding person's faces, as the CLI does."""
    from detector.evaluation.evaluate import scores_from_analyses
    from detector.types import Analysis

    bad = Analysis(status="no_faces", message="x.mp4: no face", video=None, sampling="1fps")
    models = crowd.scores.models
    scored = scores_from_analyses(
        [("a.mp4", 0, crowd), ("b.mp4", 1, crowd), ("x.mp4", 1, bad)], models, log=lambda *_: None
    )
    per_clip = int((crowd.scores.track_ids == crowd.verdict.deciding_track_id).sum())
    assert scored.scores.shape == (2 * per_clip, len(models))
    assert set(scored.videos) == {"real/a", "fake/b"}
    assert scored.skipped == ("x.mp4: no_faces: x.mp4: no face",)


def test_a_heading_longer_than_the_page_wraps_instead_of_running_off_it():
    from fpdf import FPDF

    from detector.reporting.pdf import FONT_DIR
    from detector.reporting.pdf_sections import heading

    pdf = FPDF()
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    text = "Appendix B. The deciding person in the core paper's layout (Latipova & Yadryshnikova)"
    pdf.set_font("DejaVu", "B", 12)
    assert pdf.get_string_width(text) > pdf.epw, "the example must be wider than the page"
    y = pdf.get_y()
    heading(pdf, text)
    assert pdf.get_y() - y >= 3 + 2 * 7, "the heading took one line: it ran off the page"


def test_the_case_in_words():
    assert CaseInfo().in_words() == "no case id, no analyst, no notes"
    case = CaseInfo(case_id="C-1", analyst="A. B", notes="one")
    assert case.in_words() == "case id C-1, analyst A. B, 1 line of notes"


@pytest.mark.parametrize("status", ["no_faces", "unreadable", "too_short"])
def test_the_exports_of_a_clip_without_a_verdict_say_why_and_give_no_score(status):
    """The Report page makes these only on click now, so no page test renders them."""
    failed = Analysis(
        status=status, message=f"clip.mp4: {status} here", video=None, sampling="1fps"
    )
    text = " ".join(_pdf_text(render_pdf(failed, None, case=CaseInfo("C-1"))).split())
    assert f"NO VERDICT: {status.replace('_', ' ')}" in text and f"clip.mp4: {status} here" in text
    assert "Manipulation score" not in text and "No score is given" in text
    doc = analysis_to_dict(failed, None, case=CaseInfo("C-1"))
    assert doc["status"] == status and doc["verdict"] is None
    assert frame_scores_csv(failed, None).splitlines() == [
        "status,message",
        f"{status},clip.mp4: {status} here",
    ]
