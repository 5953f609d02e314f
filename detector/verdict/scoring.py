"""Scoring settings: the shipped default and named presets (``weights/ensemble.json``), and the one
place where a selection of models and asked-for weights become :class:`ScoringSettings`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from detector.errors import BadSettingsError, WeightsMissingError
from detector.settings import weights_dir as default_weights_dir
from detector.types import Calibration, ScoringSettings
from detector.verdict.verdict import check_scoring

ENSEMBLE_FILE = "ensemble.json"


def _ensemble_conf(weights_dir: Path | None) -> dict | None:
    path = (weights_dir or default_weights_dir()) / ENSEMBLE_FILE
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def _scoring_from(conf: dict, calibrated: bool) -> ScoringSettings:
    """A scoring from its ``ensemble.json`` entry (the default or a preset); the dataclass's own
    defaults fill what the entry leaves out."""
    base = ScoringSettings(weights=dict(conf["members"]))
    s = replace(
        base,
        aggregation=conf.get("aggregation", base.aggregation),
        order=conf.get("order", base.order),
        threshold=float(conf.get("threshold", base.threshold)),
        inconclusive_band=float(conf.get("inconclusive_band", base.inconclusive_band)),
    )
    cal = conf.get("calibration") if calibrated else None
    if not cal:
        return s
    return replace(
        s,
        calibration=Calibration(
            real_scores=tuple(sorted(float(x) for x in cal["real_video_scores"])),
            pool=cal["pool"],
            weights=s.weights,
            aggregation=s.aggregation,
            order=s.order,
            target_false_alarm=float(cal["target_false_alarm"]),
            rates=cal.get("rates", {}),
            paths={
                **cal.get("paths", {}),
                **{
                    p: {"not_measured": why} for p, why in cal.get("paths_not_measured", {}).items()
                },
            },
        ),
    )


def default_scoring(weights_dir: Path | None = None) -> ScoringSettings:
    """The shipped default ensemble, aggregation and calibrated threshold (``ensemble.json``)."""
    conf = _ensemble_conf(weights_dir)
    if conf is None:
        raise WeightsMissingError(f"no ensemble configuration {ENSEMBLE_FILE} in the weights")
    return _scoring_from(conf, calibrated=True)


def presets(weights_dir: Path | None = None) -> dict[str, dict]:
    """Named scorings beside the default (e.g. ``paper000``: the core paper's pair), from
    ``ensemble.json``: name -> {"label", "members", "aggregation", "order", "threshold"}."""
    return dict((_ensemble_conf(weights_dir) or {}).get("presets", {}))


def preset_scoring(name: str, weights_dir: Path | None = None) -> ScoringSettings:
    """The scoring of a named preset. Presets are not calibrated: their threshold is their own
    (the paper's 0.5), and no score is placed against real footage."""
    known = presets(weights_dir)
    if name not in known:
        raise BadSettingsError(f"unknown preset {name!r}; presets: {', '.join(known) or 'none'}")
    return _scoring_from(known[name], calibrated=False)


def default_models(weights_dir: Path | None = None) -> tuple[str, ...]:
    return tuple(default_scoring(weights_dir).weights)


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"a=0.6,b=0.4"`` -> ``{"a": 0.6, "b": 0.4}``; None or "" -> None."""
    if not text:
        return None
    weights = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            raise BadSettingsError(f"--weights expects name=value pairs, got {part!r}")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise BadSettingsError(f"--weights: {value!r} is not a number") from None
    return weights


def resolve_scoring(
    models: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    *,
    preset: str | None = None,
    aggregation: str | None = None,
    order: str | None = None,
    threshold: float | None = None,
    weights_dir: Path | None = None,
) -> ScoringSettings:
    """The scoring for a selection of models; raises :class:`BadSettingsError`, never guesses.

    - The base is the shipped default, or the named ``preset``.
    - Without ``weights``: the base's weights when ``models`` is the base's selection (or None);
      equal weights for any other selection (the calibrated weights belong to the shipped set).
    - With ``weights``: they may name only selected models (``models`` defaults to the ones they
      name); selected models they do not name get weight 0. At least one weight must be > 0.
    - ``aggregation``, ``order`` and ``threshold`` replace the base's and are checked.
    """
    base = preset_scoring(preset, weights_dir) if preset else default_scoring(weights_dir)
    chosen = list(models) if models else list(weights or base.weights)
    if len(set(chosen)) != len(chosen):
        raise BadSettingsError(f"a model is selected twice: {chosen}")
    if weights:
        extra = sorted(set(weights) - set(chosen))
        if extra:
            raise BadSettingsError(f"--weights names models not selected: {extra}")
        w = {m: float(weights.get(m, 0.0)) for m in chosen}
    elif set(chosen) == set(base.weights):
        w = dict(base.weights)
    else:
        w = dict.fromkeys(chosen, 1.0)
    s = replace(base, weights=w)
    if aggregation is not None:
        s = replace(s, aggregation=aggregation)
    if order is not None:
        s = replace(s, order=order)
    if threshold is not None:
        s = replace(s, threshold=float(threshold))
    check_scoring(s)
    return s
