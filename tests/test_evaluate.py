"""Evaluation: metrics on hand-made scores, and the CLI on a tiny folder of generated faces."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from detector.evaluation.evaluate import evaluate_scores
from detector.evaluation.metrics import binary_metrics


def test_binary_metrics_on_hand_made_scores():
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert m["auc"] == pytest.approx(0.75)
    assert m["confusion"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["tpr"] == 0.5
    assert math.isnan(binary_metrics([1, 1], [0.2, 0.9])["auc"])


def test_evaluate_scores_video_level_and_table5():
    videos = ["a", "a", "a", "b", "b", "b", "c", "c", "c"]
    labels = [0, 0, 0, 1, 1, 1, 1, 1, 1]
    scores = np.array(
        [
            [0.1, 0.2],
            [0.2, 0.3],
            [0.9, 0.1],
            [0.6, 0.7],
            [0.7, 0.9],
            [0.1, 0.2],
            [0.8, 0.2],
            [0.9, 0.4],
            [0.7, 0.3],
        ]
    )
    res = evaluate_scores(videos, labels, scores, ["m1", "m2"], aggregation="median")
    assert res.video_scores["a"]["p_fake"] == {"m1": pytest.approx(0.2), "m2": pytest.approx(0.2)}
    assert res.video_scores["a"]["ensemble"] == pytest.approx(0.2)
    assert res.video["m1"]["auc"] == 1.0 and res.video_auc == 1.0
    assert res.video["ensemble"]["confusion"] == {"tp": 2, "fp": 0, "tn": 1, "fn": 0}
    assert res.frame["ensemble"]["n"] == 9
    settings = {
        (tuple(sorted(r["weights"].items())), r["aggregation"], r["order"]) for r in res.table5
    }
    assert len(settings) == len(res.table5) == 8  # equal and 0.6/0.4, x mean/median, x 2 orders
    assert all(r["n"] == 3 for r in res.table5)


def test_evaluate_scores_refuses_videos_with_mixed_labels():
    from detector.errors import BadSettingsError

    with pytest.raises(BadSettingsError):
        evaluate_scores(["a", "a"], [0, 1], np.array([[0.1], [0.2]]), ["m"])


def _faces(folder, names, seed):
    from tests.test_train import _face

    folder.mkdir(parents=True)
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / name), cv2.resize(_face(128, seed + k), (256, 256))[..., ::-1])


def test_evaluate_cli_on_generated_faces_with_mesonet(tmp_path, capsys):
    from detector.cli import main

    _faces(tmp_path / "real", [f"{i:03d}_{k}.jpg" for i in range(3) for k in range(2)], 0)
    _faces(
        tmp_path / "fake", [f"{i:03d}_{i + 5:03d}_{k}.jpg" for i in range(3) for k in range(2)], 50
    )
    code = main(
        [
            "evaluate",
            "--real",
            str(tmp_path / "real"),
            "--fake",
            str(tmp_path / "fake"),
            "--models",
            "meso4_df,meso4_f2f",
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    for key in ("video_auc", "frame_auc", "accuracy", "confusion", "table5", "items"):
        assert key in doc
    assert len(doc["items"]) == 12 and len(doc["video_scores"]) == 6
    assert sum(doc["confusion"].values()) == 6
    assert all(0.0 <= v["ensemble"] <= 1.0 for v in doc["video_scores"].values())


def test_evaluate_clip_folders_through_the_pipeline(tmp_path):
    from detector.evaluation.evaluate import evaluate_scores, score_folders
    from detector.io import synthetic

    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    synthetic.astronaut_clip(tmp_path / "real" / "a.mp4", seconds=2)
    synthetic.astronaut_clip(tmp_path / "fake" / "b.mp4", seconds=2)
    models = ["meso4_df", "meso4_f2f"]
    scored = score_folders(
        [tmp_path / "real"], [tmp_path / "fake"], models, device="cpu", log=lambda m: None
    )
    assert set(scored.videos) == {"real/a", "fake/b"} and not scored.skipped
    res = evaluate_scores(scored.videos, scored.labels, scored.scores, models)
    assert res.video["ensemble"]["n"] == 2 and set(res.video_scores) == {"real/a", "fake/b"}
    # FaceForensics++ names a clip alike in every method's folder: two videos, not one
    (tmp_path / "FaceSwap").mkdir()
    synthetic.astronaut_clip(tmp_path / "FaceSwap" / "b.mp4", seconds=2, face_size=90)
    scored = score_folders(
        [tmp_path / "real"],
        [tmp_path / "fake", tmp_path / "FaceSwap"],
        models,
        device="cpu",
        log=lambda m: None,
    )
    assert set(scored.videos) == {"real/a", "fake/fake/b", "fake/FaceSwap/b"}
    res = evaluate_scores(scored.videos, scored.labels, scored.scores, models)
    assert res.video["ensemble"]["n"] == 3


def test_videos_of_different_folders_or_uploads_never_merge():
    from detector.evaluation.evaluate import _folder_prefixes

    a, b, c = Path("x/real"), Path("y/real"), Path("x/Deepfakes")
    assert _folder_prefixes([(a, 0), (c, 1)]) == ["", ""]
    assert _folder_prefixes([(a, 0), (b, 0), (c, 0)]) == ["1:real/", "2:real/", "Deepfakes/"]
    # two uploads of one name (a phone's "video.mp4" twice): two videos
    from detector.evaluation.evaluate import scores_from_analyses

    table = SimpleNamespace(
        track_ids=np.array([0, 0]),
        models=("m",),
        p_fake=np.array([[0.2], [0.4]]),
        timestamps_s=np.array([0.0, 1.0]),
    )
    done = SimpleNamespace(ok=True, scores=table, verdict=SimpleNamespace(deciding_track_id=0))
    analysed = [("video.mp4", 1, done), ("video.mp4", 1, done), ("video.mp4", 0, done)]
    scored = scores_from_analyses(analysed, ["m"], log=lambda m: None)
    assert scored.videos == ("fake/video",) * 2 + ("fake/video (2)",) * 2 + ("real/video",) * 2


def test_bootstrap_interval_resamples_whole_videos():
    from detector.evaluation.metrics import bootstrap_auc_ci

    y = np.repeat([0, 1], 20)
    assert bootstrap_auc_ci(y, y.astype(float)) == [1.0, 1.0]
    rng = np.random.default_rng(0)
    lo, hi = bootstrap_auc_ci(y, rng.random(40))
    assert lo < 0.5 < hi
    # 4 videos of 10 identical frames: the interval reflects 4 videos, not 40 frames
    videos = np.repeat(["a", "b", "c", "d"], 10)
    labels = np.repeat([0, 0, 1, 1], 10)
    scores = np.repeat([0.2, 0.6, 0.5, 0.9], 10)
    lo_v, hi_v = bootstrap_auc_ci(labels, scores, groups=videos)
    lo_f, hi_f = bootstrap_auc_ci(labels, scores)
    assert hi_v - lo_v > hi_f - lo_f
    assert bootstrap_auc_ci(np.zeros(5), np.zeros(5)) == []
