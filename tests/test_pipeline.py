"""The pipeline end to end: synthetic clips always, the FaceForensics++ clips when ../shared exists."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from detector.paths import PROJECT_ROOT
from detector.pipeline import ExtractionSettings


def test_face_clip_gives_a_verdict_with_every_model_on_every_face(analyzer, videos):
    a = analyzer.analyze(videos["face"], ExtractionSettings())
    assert a.ok, a.message
    assert len(a.frames) == 4 and all(fr.face_ids for fr in a.frames)
    assert a.scores.p_fake.shape == (len(a.faces), len(analyzer.model_names))
    assert 0.0 <= a.verdict.p_fake <= 1.0 and a.verdict.label in ("fake", "real", "uncertain")
    assert len(a.tracks) == 1


def test_three_people_are_three_tracks(analyzer, videos):
    a = analyzer.analyze(videos["three_faces"], ExtractionSettings())
    assert a.ok and len(a.tracks) == 3
    assert all(len(t.face_ids) == len(a.frames) for t in a.tracks)


def test_no_face_is_a_status_not_a_score(analyzer, videos):
    a = analyzer.analyze(videos["blank"], ExtractionSettings())
    assert a.status == "no_faces" and a.verdict is None and a.scores is None
    assert len(a.frames) == 3


@pytest.mark.shared
def test_every_ffpp_clip_shows_faces_in_at_least_half_the_frames(analyzer, clips_dir):
    for clip in sorted((clips_dir / "ffpp_c23").rglob("*.mp4")):
        a = analyzer.analyze(clip, ExtractionSettings())
        assert a.ok, f"{clip.name}: {a.status} {a.message}"
        with_face = sum(1 for fr in a.frames if fr.face_ids)
        assert with_face >= len(a.frames) / 2, clip.name


@pytest.mark.shared
def test_the_multi_face_clip_has_more_than_one_track(analyzer, clips_dir):
    a = analyzer.analyze(clips_dir / "misc" / "short_hamilton_clip.mp4", ExtractionSettings())
    assert a.ok and len(a.tracks) > 1


@pytest.mark.shared
def test_cli_json_is_complete_for_a_faceforensics_clip(clips_dir):
    clip = clips_dir / "ffpp_c23" / "fake" / "FaceSwap_634_660.mp4"
    out = subprocess.run(
        [sys.executable, "-m", "detector", "analyze", str(clip), "--json"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == "ok" and doc["message"]
    assert doc["verdict"]["label"] in ("fake", "real", "uncertain")
    assert 0.0 <= doc["verdict"]["p_fake"] <= 1.0
    models = [m["name"] for m in doc["models"]]
    assert models and all(len(m["weights_sha256"]) == 64 for m in doc["models"])
    assert doc["settings"]["sampling"] == "1fps" and doc["video"]["sha256"]
    assert len(doc["frames"]) == 13
    for frame in doc["frames"]:
        assert {"index", "timestamp_s", "faces"} <= set(frame)
        for face in frame["faces"]:
            assert len(face["box_xyxy"]) == 4 and face["track_id"] >= 0
            assert set(face["scores"]) == set(models)
    assert doc["tracks"] and all(set(t["per_model"]) == set(models) for t in doc["tracks"])


TEMPORAL = ("lstm_efficientnet_lite0", "two_stream_frame", "two_stream_video")


def test_temporal_and_two_stream_members_score_people_in_the_pipeline(videos):
    """Temporal members give one score per window of a person; two-stream members get the
    next raw frame's crop of every face (the decoder fetches it only when they are selected)."""
    from detector.models import list_models
    from detector.pipeline import Analyzer

    shipped = set(list_models(available_only=True))
    members = [m for m in TEMPORAL if m in shipped]
    if len(members) < len(TEMPORAL):
        pytest.skip(f"not all temporal members are shipped: {sorted(set(TEMPORAL) - shipped)}")
    analyzer = Analyzer(["efficientnet_lite0", *members], device="cpu")
    _, faces = analyzer.extract_faces(videos["three_faces"], with_next=True)
    assert all(f.next_crop is not None and f.next_crop.shape == f.crop.shape for f in faces)
    a = analyzer.analyze(videos["three_faces"], ExtractionSettings())
    assert a.ok, a.message
    assert not [n for n in a.notes if "following frame" in n], a.notes
    assert all(f.next_crop is None for f in a.faces), "next-frame crops are not kept"
    table = a.scores
    for m in ("lstm_efficientnet_lite0", "two_stream_video"):
        col = table.column(m)
        for tid in set(table.track_ids.tolist()):
            assert len(set(col[table.track_ids == tid].round(8))) == 1, "one window per track"
    assert {c.kind for c in a.models} == {"frame", "track"}
    _, plain = Analyzer(["efficientnet_lite0"], device="cpu").extract_faces(videos["face"])
    assert all(f.next_crop is None for f in plain)
