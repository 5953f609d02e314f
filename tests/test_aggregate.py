"""Reducers and the verdict: pure functions on raw scores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from detector.errors import BadSettingsError
from detector.types import Calibration, ScoreTable, ScoringSettings
from detector.verdict.aggregate import AGGREGATORS, confident, ensemble_per_face, vote
from detector.verdict.verdict import VERDICT_WORDS, compute_verdict, custom_settings


def table(p, tracks=None, models=("a", "b")):
    p = np.asarray(p, dtype=float)
    n = len(p)
    tracks = np.zeros(n, int) if tracks is None else np.asarray(tracks)
    return ScoreTable(models, np.arange(n), tracks, np.arange(n), np.arange(n, dtype=float), p)


def test_every_reducer_gives_its_known_value():
    x = np.array([0.1, 0.9, 0.4, 0.7, 0.95])
    known = {"mean": 0.61, "median": 0.7, "max": 0.95, "vote": 0.6, "trimmed_mean": 0.61}
    known["confident"] = 0.61  # 2 of 5 above 0.8, 1 below 0.2: neither side dominates: the mean
    assert {name: round(f(x, 0.5), 6) for name, f in AGGREGATORS.items()} == known
    ten = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0])
    assert AGGREGATORS["trimmed_mean"](ten, 0.5) == pytest.approx(0.45)  # 0.0 and 1.0 cut


def test_vote_is_share_over_threshold():
    assert vote(np.array([0.2, 0.6, 0.7, 0.5]), 0.5) == 0.75


def test_confident_strategy_matches_the_published_rules():
    many_fake = np.array([0.9] * 12 + [0.1] * 8)
    assert confident(many_fake) == pytest.approx(0.9)
    all_real = np.array([0.05] * 19 + [0.6])
    assert confident(all_real) == pytest.approx(0.05)
    mixed = np.array([0.3, 0.6, 0.5])
    assert confident(mixed) == pytest.approx(np.mean(mixed))


def test_orders_differ_for_median_like_the_paper():
    t = table([[0.1, 0.9], [0.2, 0.1], [0.9, 0.2]])
    s = ScoringSettings(weights={"a": 1, "b": 1}, aggregation="median")
    paper = compute_verdict(t, s).p_fake
    other = compute_verdict(
        t, ScoringSettings(**{**s.__dict__, "order": "combine_then_aggregate"})
    ).p_fake
    assert paper == pytest.approx(0.5 * 0.2 + 0.5 * 0.2)
    assert other == pytest.approx(np.median([0.5, 0.15, 0.55]))


def test_weights_are_normalised_and_zero_weight_ignored():
    t = table([[0.9, 0.1]] * 3)
    v = compute_verdict(t, ScoringSettings(weights={"a": 3, "b": 1}))
    assert v.p_fake == pytest.approx(0.75 * 0.9 + 0.25 * 0.1)
    only_a = compute_verdict(t, ScoringSettings(weights={"a": 2, "b": 0}))
    assert only_a.p_fake == pytest.approx(0.9)
    assert set(only_a.model_agreement) == {"a"}


def test_labels_use_threshold_and_inconclusive_band_below_it():
    def lab(p, **kw):
        s = ScoringSettings(weights={"a": 1, "b": 1}, **kw)
        return compute_verdict(table([[p, p]] * 2), s).label

    assert lab(0.9) == "fake"
    assert lab(0.5) == "fake"  # at the threshold: flagged
    assert lab(0.45) == "uncertain"
    assert lab(0.39) == "real"
    assert lab(0.3, threshold=0.32, inconclusive_band=0.05) == "uncertain"
    assert lab(0.26, threshold=0.32, inconclusive_band=0.05) == "real"
    assert {k: VERDICT_WORDS[k] for k in ("fake", "uncertain")} == {
        "fake": "Manipulation likely",
        "uncertain": "Inconclusive",
    }
    assert "real" not in VERDICT_WORDS["real"].lower().split()


def test_most_suspicious_person_decides_and_stray_tracks_do_not():
    p = [[0.1, 0.1]] * 5 + [[0.9, 0.9]] * 5 + [[1.0, 1.0]]
    t = table(p, tracks=[0] * 5 + [1] * 5 + [2])
    v = compute_verdict(t, ScoringSettings(weights={"a": 1, "b": 1}, min_track_share=0.2))
    assert v.deciding_track_id == 1
    assert v.label == "fake"
    assert [tr.decisive for tr in v.tracks] == [True, True, False]  # one frame is never enough
    assert [tr.brief for tr in v.tracks] == [False, False, True]
    assert "seen in at least 3 of the 11 sampled frames with faces decides" in v.rule


def test_a_brief_person_decides_only_with_strong_evidence():
    # person 0 (main) in 10 frames at 0.3; person 1 in 2 of 12 frames
    def verdict(p_brief):
        p = [[0.3, 0.3]] * 10 + [[p_brief, p_brief]] * 2
        t = table(p, tracks=[0] * 10 + [1] * 2)
        return compute_verdict(t, ScoringSettings(weights={"a": 1, "b": 1}, threshold=0.4))

    weak = verdict(0.6)  # over the threshold but under the brief level 0.7
    assert weak.deciding_track_id == 0 and weak.label == "real"
    strong = verdict(0.9)
    assert strong.deciding_track_id == 1 and strong.label == "fake"


def test_excluded_people_are_listed_but_never_decide():
    p = [[0.1, 0.1]] * 5 + [[0.9, 0.9]] * 5
    t = table(p, tracks=[0] * 5 + [1] * 5)
    s = ScoringSettings(weights={"a": 1, "b": 1}, exclusions={1: "not a face"})
    v = compute_verdict(t, s)
    assert v.deciding_track_id == 0 and v.label == "real"
    excluded = next(tr for tr in v.tracks if tr.track_id == 1)
    assert excluded.excluded and excluded.exclusion_reason == "not a face" and not excluded.decisive
    assert custom_settings(s, ScoringSettings(weights={"a": 1, "b": 1})) == [
        "person 2 excluded (not a face)"
    ]
    with pytest.raises(BadSettingsError, match="every person"):
        compute_verdict(t, ScoringSettings(weights={"a": 1}, exclusions={0: "x", 1: "y"}))
    with pytest.raises(BadSettingsError, match="not in this video"):
        compute_verdict(t, ScoringSettings(weights={"a": 1}, exclusions={7: "x"}))


def calibration(paths: dict | None = None) -> Calibration:
    """A calibration of models a and b (mean, equal weights) on 100 real videos 0 to 0.3."""
    return Calibration(
        real_scores=tuple(np.linspace(0.0, 0.3, 100)),
        pool="test pool",
        weights={"a": 1, "b": 1},
        aggregation="mean",
        order="aggregate_then_combine",
        target_false_alarm=0.05,
        paths=paths or {},
    )


def test_calibrated_score_is_placed_against_real_footage():
    cal = calibration()
    s = ScoringSettings(weights={"a": 2, "b": 2}, threshold=0.29, calibration=cal)
    v = compute_verdict(table([[0.32, 0.32]] * 3), s)
    assert v.calibrated and v.real_percentile == 1.0 and v.label == "fake"
    assert "higher than 100 % of the real videos" in v.explanation
    other = compute_verdict(table([[0.32, 0.32]] * 3), replace(s, weights={"a": 1, "b": 2}))
    assert other.real_percentile is None and not other.calibrated
    # the explanation (CLI, report) says the threshold is not calibrated for these settings
    assert "with these settings it is not calibrated" in other.explanation
    assert "not calibrated" not in v.explanation
    bare = compute_verdict(table([[0.32, 0.32]] * 3), replace(s, calibration=None))
    assert "No calibration on real footage is recorded" in bare.explanation


def test_custom_settings_name_every_change_in_words():
    default = ScoringSettings(weights={"a": 0.5, "b": 0.5}, threshold=0.3)
    assert custom_settings(replace(default, weights={"a": 1, "b": 1}), default) == []
    changed = replace(default, weights={"a": 0.6, "b": 0.4}, aggregation="median", threshold=0.4)
    words = custom_settings(changed, default)
    assert words[0] == "model weights a 0.60, b 0.40"
    assert any("median" in w for w in words) and any("threshold 0.40" in w for w in words)


@pytest.mark.parametrize(
    "bad",
    [
        {"weights": {"a": -1, "b": 1}},
        {"weights": {"a": 0, "b": 0}},
        {"weights": {"zzz": 1}},
        {"weights": {"a": 1}, "aggregation": "nope"},
        {"weights": {"a": 1}, "threshold": 1.5},
    ],
)
def test_bad_settings_raise(bad):
    with pytest.raises(BadSettingsError):
        compute_verdict(table([[0.5, 0.5]]), ScoringSettings(**bad))


def test_ensemble_per_face_is_weighted_sum():
    t = table([[1.0, 0.0], [0.5, 0.5]])
    assert ensemble_per_face(t, {"a": 1, "b": 3}).tolist() == pytest.approx([0.25, 0.5])


def test_the_report_names_every_precision_path_the_threshold_was_set_on():
    from detector.reporting.pdf_sections import calibration_words
    from detector.verdict.scoring import default_scoring

    paths = {
        "fp32": {"what": "all float32", "flagged": {"real": (2, 57), "all_fakes": (26, 41)}},
        "bf16cpu": {"what": "members in bf16", "flagged": {"real": (2, 57), "all_fakes": (27, 41)}},
    }
    s = default_scoring()
    s = replace(s, calibration=replace(s.calibration, paths=paths))
    t = table([[0.9] * len(s.weights)] * 3, models=tuple(s.weights))
    v = compute_verdict(t, s)
    words = calibration_words(v)
    assert "higher of the thresholds set on each precision path" in words
    assert "members in bf16: 2 of 57 real videos and 27 of 41 fakes" in words
    # one path: nothing to add
    one = replace(s, calibration=replace(s.calibration, paths={"fp32": paths["fp32"]}))
    assert "precision path" not in calibration_words(compute_verdict(t, one))


def test_an_ensemble_file_without_precision_paths_still_loads(tmp_path):
    """ensemble.json written before the per-path calibration: no paths, no words about them."""
    import json

    from detector.reporting.pdf_sections import calibration_words
    from detector.settings import weights_dir
    from detector.verdict.scoring import default_scoring

    conf = json.loads((weights_dir() / "ensemble.json").read_text("utf-8"))
    conf["calibration"].pop("paths")
    (tmp_path / "ensemble.json").write_text(json.dumps(conf), "utf-8")
    s = default_scoring(tmp_path)
    assert s.calibration is not None and s.calibration.paths == {}
    t = table([[0.9] * len(s.weights)] * 3, models=tuple(s.weights))
    assert "precision path" not in calibration_words(compute_verdict(t, s))


def test_a_score_is_placed_against_the_reals_of_its_own_precision_path():
    paths = {
        "fp32": {
            "precisions": {"a": "fp32", "b": "fp32"},
            "real_video_scores": list(np.linspace(0.0, 0.3, 100)),
        },
        "bf16cpu": {
            "precisions": {"a": "bf16", "b": "fp32"},
            "real_video_scores": list(np.linspace(0.0, 0.6, 100)),
        },
    }
    cal = calibration(paths)
    s = ScoringSettings(weights={"a": 1, "b": 1}, threshold=0.29, calibration=cal)

    def verdict(precisions):
        return compute_verdict(replace(table([[0.32, 0.32]] * 3), precisions=precisions), s)

    fp32 = verdict({"a": "fp32", "b": "fp32"})
    assert fp32.real_percentile == 1.0 and fp32.placed_on == "fp32"
    bf16 = verdict({"a": "bf16", "b": "fp32"})
    assert bf16.real_percentile == pytest.approx(0.53) and bf16.placed_on == "bf16cpu"
    assert "scored in the precisions this analysis ran in" in bf16.explanation
    gpu = verdict({"a": "bf16 on GPU", "b": "bf16 on GPU"})  # a mix no path measured
    assert gpu.real_percentile is None and gpu.calibrated and gpu.placed_on == ""
    assert gpu.label == "fake" and "not placed against the real calibration" in gpu.explanation
    assert "ran as a in bf16 on GPU, b in bf16 on GPU" in gpu.placement_note
    unknown = verdict({})  # an analysis that recorded no precisions
    assert unknown.real_percentile is None and "did not record" in unknown.placement_note
    # a path found, but its real scores not recorded: not placed against another path's
    bare = {**paths, "bf16cpu": {"precisions": {"a": "bf16", "b": "fp32"}}}
    s = replace(s, calibration=replace(cal, paths=bare))
    old = verdict({"a": "bf16", "b": "fp32"})
    assert old.real_percentile is None and "no real-video scores on the bf16cpu" in old.explanation
