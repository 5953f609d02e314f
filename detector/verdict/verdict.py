"""Pure reducers keyed by name, and the verdict computed from raw scores.

Frames -> track reducers: ``mean`` (MesoNet, paper 000), ``median`` (paper 000's better setting),
``max``, ``vote`` (share of frames at or above the threshold, paper 004), ``confident`` (the DFDC
winner's strategy: when many frames are confidently fake, average those; when nearly all are
confidently real, average those; else the mean) and ``trimmed_mean``.

Models are combined by normalised weights in one of two orders (paper 000 reduced each model over
frames first, then weighted the models; the other order weights the models per face, then reduces).
Tracks (people) are combined into the video verdict by ``max``: one manipulated person is enough.
Everything here is numpy on the raw score table: re-weighting never runs a network."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from detector.errors import BadSettingsError
from detector.types import (
    Calibration,
    Label,
    ScoreTable,
    ScoringSettings,
    TrackScore,
    Verdict,
    normalised_weights,
)
from detector.verdict.aggregate import (
    AGGREGATOR_LABELS,
    AGGREGATORS,
    ORDERS,
    Reducer,
    combine,
    normalise_weights,
)

VERDICT_WORDS: dict[str, str] = {
    "fake": "Manipulation likely",
    "uncertain": "Inconclusive",
    "real": "No manipulation found by these models",
}


def label_for(p: float, threshold: float, band: float) -> Label:
    """ "fake" at or above the threshold, "uncertain" in the band below it, else "real"."""
    if p >= threshold:
        return "fake"
    if p >= threshold - band:
        return "uncertain"
    return "real"


def check_scoring(settings: ScoringSettings) -> Reducer:
    """The frame reducer of ``settings``, after checking every setting (BadSettingsError)."""
    try:
        reduce = AGGREGATORS[settings.aggregation]
    except KeyError:
        raise BadSettingsError(
            f"unknown aggregation {settings.aggregation!r}; use one of {', '.join(AGGREGATORS)}"
        ) from None
    if settings.order not in ORDERS:
        raise BadSettingsError(f"unknown order {settings.order!r}; use one of {', '.join(ORDERS)}")
    if not 0.0 < settings.threshold < 1.0:
        raise BadSettingsError("threshold must be between 0 and 1")
    if not 0.0 <= settings.inconclusive_band < 1.0:
        raise BadSettingsError("the inconclusive band must be between 0 and 1")
    normalise_weights(settings.weights, tuple(settings.weights))  # finite, >= 0, positive sum
    return reduce


def compute_verdict(table: ScoreTable, settings: ScoringSettings) -> Verdict:
    """The video verdict from raw scores; pure and fast (no inference).

    Every person (track) is scored. Who decides: among the people the analyst did not exclude,
    the most suspicious one seen in at least ``min_track_share`` of the frames with faces; a
    person seen less often ("brief": a passer-by, a mis-detection that got through) decides only
    with a score of at least ``settings.brief_level`` in two frames or more (one frame is never
    enough). The person seen most always counts, so a
    clip with only brief people still gets a verdict.
    """
    if len(table.face_ids) == 0:
        raise BadSettingsError("no faces to aggregate")
    reduce = check_scoring(settings)
    w = normalise_weights(settings.weights, table.models)
    active = [m for m, wm in zip(table.models, w, strict=True) if wm > 0]
    thr = settings.threshold
    n_frames = len(np.unique(table.frame_indices))
    known = {int(t) for t in np.unique(table.track_ids)}
    if unknown := sorted(set(settings.exclusions) - known):
        raise BadSettingsError(f"excluded people {[u + 1 for u in unknown]} are not in this video")
    if known <= set(settings.exclusions):
        raise BadSettingsError(
            "every person was excluded: there is nothing left to judge (include one again)"
        )
    tracks: list[TrackScore] = []
    for tid in sorted(known):
        rows = table.track_ids == tid
        scores = table.p_fake[rows]
        per_model = {m: reduce(scores[:, j], thr) for j, m in enumerate(table.models)}
        p = combine(scores, w, settings.aggregation, settings.order, thr)
        ts = table.timestamps_s[rows]
        tracks.append(
            TrackScore(
                track_id=tid,
                n_faces=int(rows.sum()),
                first_timestamp_s=float(ts.min()),
                last_timestamp_s=float(ts.max()),
                per_model=per_model,
                p_fake=float(np.clip(p, 0.0, 1.0)),
                decisive=False,
                n_frames=len(np.unique(table.frame_indices[rows])),
                brief=False,
                excluded=tid in settings.exclusions,
                exclusion_reason=settings.exclusions.get(tid, ""),
            )
        )
    included = [t for t in tracks if not t.excluded]
    main = max(included, key=lambda t: (t.n_frames, t.n_faces))
    level = settings.brief_level
    for i, t in enumerate(tracks):
        brief = t.n_frames < settings.min_track_share * n_frames
        strong = t.n_frames >= 2 and t.p_fake >= level
        decisive = not t.excluded and (t is main or not brief or strong)
        tracks[i] = replace(t, brief=brief, decisive=decisive)
    main = next(t for t in tracks if t.track_id == main.track_id)
    candidates = [t for t in tracks if t.decisive]
    deciding = max(candidates, key=lambda t: t.p_fake)  # one manipulated person is enough
    label = label_for(deciding.p_fake, thr, settings.inconclusive_band)
    agreement = {m: label_for(deciding.per_model[m], thr, 0.0) for m in active}
    cal = settings.calibration
    scale_ok = cal is not None and cal.applies_to(
        settings.weights, settings.aggregation, settings.order
    )
    # placed against the real videos scored as this analysis scored (its precision path); a
    # calibration without paths has one set of real scores
    path = cal.path_for(table.precisions) if scale_ok and cal.paths else None
    placed = scale_ok and cal.path_reals(path) is not None
    note = "" if placed or not scale_ok else not_placed_words(table.precisions, cal, path)
    verdict = Verdict(
        label=label,
        p_fake=deciding.p_fake,
        threshold=thr,
        deciding_track_id=deciding.track_id,
        per_model={m: deciding.per_model[m] for m in table.models},
        tracks=tuple(tracks),
        settings=settings,
        model_agreement=agreement,
        real_percentile=cal.real_percentile(deciding.p_fake, path) if placed else None,
        calibrated=scale_ok,
        rule=_rule(settings, n_frames),
        placed_on=path or "",
        placement_note=note,
    )
    return _with_explanation(verdict, n_frames)


def not_placed_words(precisions: dict[str, str], cal: Calibration, path: str | None) -> str:
    """Why a score on the calibrated scoring is not placed against the real videos, in words:
    its precision path was not measured, or its real videos' scores were not recorded."""
    head = "That score is not placed against the real calibration videos: "
    if path is not None:
        return head + f"the calibration recorded no real-video scores on the {path} precision path."
    members = normalised_weights(cal.weights)
    ran = ", ".join(f"{m} in {precisions[m]}" for m in members if m in precisions)
    if not ran:
        return head + "this analysis did not record the precision its models ran in."
    return head + (
        f"the models ran as {ran}, a mix of precisions the calibration did not measure, so the "
        "real videos' scores there are not known."
    )


NO_CALIBRATION = "No calibration on real footage is recorded for this threshold."


def uncalibrated_words(v: Verdict) -> str:
    """Why the alarm threshold carries no calibration for the scoring ``v`` was computed with, in
    words ("" when it does): the analyst's models, weights or frame rule differ from those the
    threshold was calibrated for, or no calibration is recorded for it (a preset)."""
    if v.calibrated:
        return ""
    if v.settings.calibration is None:
        return NO_CALIBRATION
    return (
        "The alarm threshold was calibrated on real footage for another scoring (the default "
        "models, weights and frame rule); with these settings it is not calibrated, so the "
        "verdict's words are indicative only and the score is not placed against real videos."
    )


def _rule(s: ScoringSettings, n_frames: int) -> str:
    need = max(1, int(np.ceil(s.min_track_share * n_frames)))
    return (
        f"The most suspicious person seen in at least {need} of the {n_frames} sampled frames "
        f"with faces decides; a person seen less often decides only with a manipulation score "
        f"of {s.brief_level:.2f} or more over at least 2 frames; people the analyst excluded "
        "never decide."
    )


def custom_settings(scoring: ScoringSettings, default: ScoringSettings) -> list[str]:
    """Plain-words differences from the shipped default (the "custom settings" mark)."""
    out = []
    if normalised_weights(scoring.weights, 4) != normalised_weights(default.weights, 4):
        shown = ", ".join(f"{m} {w:.2f}" for m, w in normalised_weights(scoring.weights, 4).items())
        out.append(f"model weights {shown}")
    if scoring.aggregation != default.aggregation:
        out.append(f"frames combined by {AGGREGATOR_LABELS[scoring.aggregation].lower()}")
    if scoring.order != default.order:
        out.append(f"order: {ORDERS[scoring.order]}")
    if not np.isclose(scoring.threshold, default.threshold):
        out.append(f"threshold {scoring.threshold:.2f} (default {default.threshold:.2f})")
    if not np.isclose(scoring.inconclusive_band, default.inconclusive_band):
        out.append(f"inconclusive band {scoring.inconclusive_band:.2f}")
    for tid, why in sorted(scoring.exclusions.items()):
        out.append(f"person {tid + 1} excluded ({why})")
    return out


def _with_explanation(v: Verdict, n_frames: int) -> Verdict:
    s = v.settings
    deciding = next(t for t in v.tracks if t.track_id == v.deciding_track_id)
    said = {
        "fake": "looks manipulated",
        "real": "shows no manipulation these models can see",
        "uncertain": "is inconclusive: above most real footage, below the alarm threshold",
    }[v.label]
    parts = [
        f"Person {deciding.track_id + 1} {said}: manipulation score {v.p_fake:.2f} against an "
        f"alarm threshold of {v.threshold:.2f} (inconclusive from "
        f"{max(0.0, v.threshold - s.inconclusive_band):.2f}), from {deciding.n_faces} face "
        f"crops in {deciding.n_frames} of {n_frames} frames with faces, between "
        f"{deciding.first_timestamp_s:.1f} s and {deciding.last_timestamp_s:.1f} s."
    ]
    if v.real_percentile is not None:
        parts.append(
            f"That score is higher than {100 * v.real_percentile:.0f} % of the real videos this "
            "tool was calibrated on"
            + (", scored in the precisions this analysis ran in." if v.placed_on else ".")
        )
    elif v.placement_note:
        parts.append(v.placement_note)
    elif not v.calibrated:
        parts.append(uncalibrated_words(v))
    fake_models = [m for m, lab in v.model_agreement.items() if lab == "fake"]
    real_models = [m for m, lab in v.model_agreement.items() if lab != "fake"]
    if fake_models:
        parts.append(f"Models at or over the threshold: {', '.join(fake_models)}.")
    if real_models:
        parts.append(f"Models under it: {', '.join(real_models)}.")
    people = len(v.tracks)
    if people > 1:
        excluded = sum(t.excluded for t in v.tracks)
        extra = f" ({excluded} excluded by the analyst)" if excluded else ""
        parts.append(f"{people} people were tracked{extra}. {v.rule}")
    return replace(v, explanation=" ".join(parts))
