"""Reducers and the verdict: pure functions on raw scores."""

from __future__ import annotations

import numpy as np
import pytest

from detector.aggregate import AGGREGATORS, compute_verdict, confident, ensemble_per_face, vote
from detector.errors import BadSettingsError
from detector.types import ScoreTable, ScoringSettings


def table(p, tracks=None, models=("a", "b")):
    p = np.asarray(p, dtype=float)
    n = len(p)
    tracks = np.zeros(n, int) if tracks is None else np.asarray(tracks)
    return ScoreTable(models, np.arange(n), tracks, np.arange(n), np.arange(n, dtype=float), p)


def test_every_reducer_maps_scores_into_unit_interval():
    x = np.array([0.1, 0.9, 0.4, 0.7, 0.95])
    for name, f in AGGREGATORS.items():
        assert 0.0 <= f(x, 0.5) <= 1.0, name


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


def test_labels_use_threshold_and_uncertain_band():
    def lab(p):
        return compute_verdict(table([[p, p]] * 2), ScoringSettings(weights={"a": 1, "b": 1})).label

    assert lab(0.9) == "fake"
    assert lab(0.1) == "real"
    assert lab(0.55) == "uncertain"


def test_most_suspicious_person_decides_and_stray_tracks_do_not():
    p = [[0.1, 0.1]] * 5 + [[0.9, 0.9]] * 5 + [[1.0, 1.0]]
    t = table(p, tracks=[0] * 5 + [1] * 5 + [2])
    v = compute_verdict(t, ScoringSettings(weights={"a": 1, "b": 1}, min_track_share=0.2))
    assert v.deciding_track_id == 1
    assert v.label == "fake"
    assert [tr.decisive for tr in v.tracks] == [True, True, False]


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
