"""Turn an :class:`~detector.types.Analysis` into the documents analysts file: JSON, CSV and PDF.

The JSON document is the CLI's contract (``python -m detector analyze VIDEO --json``): ``status``,
``message``, ``verdict``, ``settings``, ``video``, ``frames``, ``tracks`` and ``models``;
``rejected`` lists the detections the quality gate kept from scoring (with ``rejected_count``);
``provenance`` holds the file's content credentials, metadata and findings
(:func:`detector.provenance.model.provenance_to_dict`; null when the step did not run).
"""

from __future__ import annotations

import csv
import io
import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from detector.audio.reporting import audio_to_dict, verdict_line
from detector.provenance.model import provenance_to_dict
from detector.types import Analysis, ScoringSettings, TrackScore, Verdict
from detector.verdict.aggregate import ensemble_per_face
from detector.verdict.verdict import VERDICT_WORDS


@dataclass(frozen=True)
class CaseInfo:
    """What the analyst records about the case (entered on the Report page, printed as given)."""

    case_id: str = ""
    analyst: str = ""
    notes: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"case_id": self.case_id, "analyst": self.analyst, "notes": self.notes}

    def in_words(self) -> str:
        """What a report carries of the case, in a phrase: "case id X, analyst Y, 2 lines of
        notes" (or "no case id", ...)."""
        lines = len(self.notes.splitlines())
        return ", ".join(
            [
                f"case id {self.case_id}" if self.case_id else "no case id",
                f"analyst {self.analyst}" if self.analyst else "no analyst",
                f"{lines} line{'s' * (lines != 1)} of notes" if lines else "no notes",
            ]
        )


def _r(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def verdict_to_dict(v: Verdict) -> dict:
    return {
        "label": v.label,
        "p_fake": _r(v.p_fake),
        "threshold": v.threshold,
        "deciding_track_id": v.deciding_track_id,
        "per_model": {m: _r(p) for m, p in v.per_model.items()},
        "model_agreement": v.model_agreement,
        "explanation": v.explanation,
        "words": VERDICT_WORDS[v.label],
        "real_percentile": None if v.real_percentile is None else _r(v.real_percentile, 4),
        "calibrated": v.calibrated,
        "placed_on": v.placed_on or None,
        "placement_note": v.placement_note or None,
        "rule": v.rule,
    }


def scoring_to_dict(s: ScoringSettings) -> dict:
    """The scoring settings; the calibration is summarised (its pool, target, rates and the
    counts on each precision path it was set on)."""
    d = asdict(s)
    d["exclusions"] = {str(k + 1): why for k, why in s.exclusions.items()}  # people, 1-based
    if s.calibration is not None:
        d["calibration"] = {
            "pool": s.calibration.pool,
            "n_real_videos": len(s.calibration.real_scores),
            "target_false_alarm": s.calibration.target_false_alarm,
            "rates": s.calibration.rates,
            "paths": s.calibration.paths,
        }
    return d


def precision_path_words(paths: dict, skip: tuple[str, ...] = ()) -> str:
    """Each precision path the threshold was set on (``Calibration.paths``) with its counts at
    it, in the words the app and the report use; paths in ``skip`` are left out."""
    parts = []
    for name, p in paths.items():
        if name in skip:
            continue
        if "not_measured" in p:  # calibrate --partial: the threshold does not cover it
            parts.append(f"{p.get('what', name)}: not measured ({p['not_measured']})")
            continue
        f = p.get("flagged", {})
        real, fakes = f.get("real", ("?", "?")), f.get("all_fakes", ("?", "?"))
        parts.append(
            f"{p.get('what', name)}: {real[0]} of {real[1]} real videos and "
            f"{fakes[0]} of {fakes[1]} fakes flagged"
        )
    return "; ".join(parts)


ORDER_WORDS = {
    "aggregate_then_combine": "each model over the frames first, then the models weighted "
    "(the core paper's order)",
    "combine_then_aggregate": "the models weighted in each frame first, then over the frames",
}
"""The two orders of ``detector.verdict.aggregate.ORDERS`` in the words the app and the report use."""


def person_role(track: TrackScore, verdict: Verdict) -> str:
    """A person's part in the verdict, in words."""
    if track.excluded:
        return f"excluded by the analyst ({track.exclusion_reason})"
    if track.track_id == verdict.deciding_track_id:
        return "decides the verdict"
    if track.brief and not track.decisive:
        return "seen briefly: listed, does not decide"
    return "listed: less suspicious than the person who decides"


def best_face(a: Analysis, track_id: int) -> int:
    """The scored face of a person found with the highest detection confidence (their picture)."""
    s = a.scores
    faces = [int(f) for f in s.face_ids[s.track_ids == track_id]]
    return max(faces, key=lambda f: a.face(f).confidence)


def describe_init(init) -> str:
    """A manifest's ``init_from`` in words (it may be a string or a record)."""
    if not init:
        return "—"
    if isinstance(init, str):
        return init
    source = init.get("source") if isinstance(init.get("source"), dict) else {}
    if source.get("package"):
        return f"{source['package']} {source.get('version', '')} (PyPI), {source.get('file', '')}"
    return str(init.get("file") or init)


CROSSVAL_LABELS = {
    "celebdf_vs_all_reals": "Celeb-DF fakes",
    "ffpp_clips_vs_all_reals": "FF++ DF/FS/NT clips",
    "all": "all validation fakes",
}


def auc_with_ci(m: dict, ci_words: str = "") -> str:
    """``{"auc": .., "ci95": [lo, hi]}`` as "0.88 (0.81–0.94)" (``ci_words`` after the range)."""
    ci = m.get("ci95") or []
    return f"{m['auc']:.2f}" + (f" ({ci[0]:.2f}–{ci[1]:.2f}{ci_words})" if len(ci) == 2 else "")


def crossval_metrics(metrics: dict) -> dict[str, str]:
    """Cross-dataset video AUCs (with 95 % CIs) against all real validation videos, from the
    manifest's ``metrics.crossval`` (``python -m scripts.calibrate``); "part of the set" where
    some videos were left out for that member (``pool`` says which). For the Models page's
    cards; the report's appendix reads the same figures (:func:`crossval_words`)."""
    crossval = metrics.get("crossval") or {}
    table = crossval.get("video_auc") or {}
    what = "cross-dataset AUC (part of the set)" if crossval.get("pool") else "cross-dataset AUC"
    return {
        f"{what}: {label}": auc_with_ci(table[key])
        for key, label in CROSSVAL_LABELS.items()
        if table.get(key)
    }


def crossval_absence(metrics: dict) -> str:
    """Why a model shows no cross-dataset figure, in words ("" when it has one)."""
    if (metrics.get("crossval") or {}).get("video_auc"):
        return ""
    return (
        "Not measured on the cross-dataset validation (python -m scripts.calibrate --measure "
        "NAME records it). Read its other figures as in-distribution only."
    )


def crossval_words(metrics: dict) -> str:
    """A member's cross-dataset video AUC on all validation fakes (with its 95 % CI) in a
    sentence, for the report; "" when it was not measured."""
    crossval = metrics.get("crossval") or {}
    m = (crossval.get("video_auc") or {}).get("all")
    if not m:
        return ""
    part = ", on part of the set" if crossval.get("pool") else ""
    return (
        f"video AUC {auc_with_ci(m, ', 95 % CI')}: fakes from other datasets and generators "
        f"against real footage, clips no model trained on{part}"
    )


def retraining_spread_words(metrics: dict) -> str:
    """In words, how far a member's cross-dataset figure moved when its recipe was retrained on
    other draws of its training data (``metrics.retraining_spread``); "" when not measured."""
    auc = (metrics.get("retraining_spread") or {}).get("video_auc_all") or {}
    again = auc.get("retrained") or []
    if not again or auc.get("shipped") is None:
        return ""
    return (
        f"Retrained with the same recipe on {len(again)} other draws of its training data, this "
        f"model's cross-dataset AUC (all validation fakes) was {min(again):.2f}–{max(again):.2f}, "
        f"against {auc['shipped']:.2f} for the weights shipped: it was chosen as the best of "
        "several on the same validation videos, so read its figure as the top of that spread."
    )


def custom_marks(a: Analysis, scoring: ScoringSettings | None = None) -> list[str]:
    """Everything that differs from the shipped defaults, in plain words ("custom settings: …").

    Models and sampling (which needed their own analysis) as well as the scoring settings
    (weights, aggregation, order, threshold, the analyst's exclusions).
    """
    from detector.pipeline import ExtractionSettings
    from detector.verdict.scoring import default_scoring
    from detector.verdict.verdict import custom_settings

    default = default_scoring()
    marks = []
    models = [m.name for m in a.models]
    if models and set(models) != set(default.weights):
        marks.append(f"models {', '.join(models)} (default: {', '.join(default.weights)})")
    if a.sampling != ExtractionSettings().sampling:
        marks.append(f"frame sampling {a.sampling} (default {ExtractionSettings().sampling})")
    scoring = scoring or (a.verdict.settings if a.verdict is not None else None)
    if scoring is not None:
        marks += custom_settings(scoring, default)
    return marks


def analysis_to_dict(
    a: Analysis, scoring: ScoringSettings | None = None, case: CaseInfo | None = None
) -> dict:
    """The JSON document for one analysis. ``verdict`` is null whenever ``status != "ok"``.

    ``case`` (case id, analyst, notes) is recorded as given; ``null`` when none was entered.
    """
    verdict = a.verdict
    if scoring is not None and a.ok:
        from detector.verdict.verdict import compute_verdict

        verdict = compute_verdict(a.scores, scoring)
    doc: dict = {
        "app_version": app_version(),
        "case": case.as_dict() if case is not None else None,
        "custom_settings": custom_marks(a, verdict.settings if verdict else None),
        "status": a.status,
        "message": a.message if verdict is None else verdict.explanation,
        "verdict": verdict_to_dict(verdict) if verdict else None,
        "settings": {
            "sampling": a.sampling,
            "models": [m.name for m in a.models],
            "scoring": scoring_to_dict(verdict.settings) if verdict else None,
        },
        "video": asdict(a.video) if a.video else None,
        "frames": [],
        "tracks": [],
        "models": [
            {
                "name": m.name,
                "family": m.family,
                "kind": m.kind,
                "weights_sha256": m.sha256,
                "precision": m.precision or None,
                "trained_on": m.trained_on,
                "licence": m.licence,
                "metrics": m.metrics,
            }
            for m in a.models
        ],
        "gaps": [asdict(g) for g in a.gaps],
        "notes": list(a.notes),
        "rejected_count": len(a.rejected),
        "rejected": [
            {
                "frame_index": r.frame_index,
                "timestamp_s": _r(r.timestamp_s, 3),
                "box_xyxy": [_r(c, 1) for c in r.box_xyxy],
                "confidence": _r(r.confidence, 4),
                "check": r.check,
                "reason": r.reason,
            }
            for r in a.rejected
        ],
        "timings_s": {k: _r(v, 4) for k, v in a.timings_s.items()},
        "provenance": provenance_to_dict(a.provenance) if a.provenance is not None else None,
        "audio": audio_to_dict(a.audio),
        "summary": verdict_line(a, verdict),
    }
    scores = a.scores
    row_of = {int(fid): i for i, fid in enumerate(scores.face_ids)} if scores is not None else {}
    ens = (
        ensemble_per_face(scores, verdict.settings.weights)
        if (scores is not None and verdict)
        else None
    )
    for fr in a.frames:
        faces = []
        for fid in fr.face_ids:
            f = a.faces[fid]
            entry = {
                "face_id": fid,
                "track_id": f.track_id,
                "box_xyxy": [_r(c, 1) for c in f.box_xyxy],
                "confidence": _r(f.confidence, 4),
            }
            if fid in row_of:
                i = row_of[fid]
                entry["scores"] = {m: _r(scores.p_fake[i, j]) for j, m in enumerate(scores.models)}
                if ens is not None:
                    entry["ensemble_p_fake"] = _r(ens[i])
            faces.append(entry)
        doc["frames"].append(
            {"index": fr.index, "timestamp_s": _r(fr.timestamp_s, 3), "faces": faces}
        )
    if verdict is not None:
        for t in verdict.tracks:
            doc["tracks"].append(
                {
                    "track_id": t.track_id,
                    "n_faces": t.n_faces,
                    "first_timestamp_s": _r(t.first_timestamp_s, 3),
                    "last_timestamp_s": _r(t.last_timestamp_s, 3),
                    "per_model": {m: _r(p) for m, p in t.per_model.items()},
                    "p_fake": _r(t.p_fake),
                    "decisive": t.decisive,
                    "n_frames": t.n_frames,
                    "brief": t.brief,
                    "excluded": t.excluded,
                    "exclusion_reason": t.exclusion_reason,
                }
            )
    else:
        for t in a.tracks:
            doc["tracks"].append({"track_id": t.track_id, "n_faces": len(t.face_ids)})
    doc["software"] = software_versions()
    return doc


def frame_scores_csv(a: Analysis, scoring: ScoringSettings | None = None) -> str:
    """One row per face: frame index, time, track, box and every model's p_fake plus the ensemble."""
    out = io.StringIO()
    writer = csv.writer(out)
    if not a.ok or a.scores is None:
        writer.writerow(["status", "message"])
        writer.writerow([a.status, a.message])
        return out.getvalue()
    s = a.scores
    weights = (scoring or a.verdict.settings).weights
    ens = ensemble_per_face(s, weights)
    writer.writerow(
        [
            "frame_index",
            "timestamp_s",
            "track_id",
            "face_id",
            "x1",
            "y1",
            "x2",
            "y2",
            *s.models,
            "ensemble",
        ]
    )
    for i, fid in enumerate(s.face_ids):
        f = a.faces[int(fid)]
        writer.writerow(
            [f.frame_index, f"{f.timestamp_s:.3f}", f.track_id, int(fid)]
            + [f"{c:.1f}" for c in f.box_xyxy]
            + [f"{s.p_fake[i, j]:.6f}" for j in range(len(s.models))]
            + [f"{ens[i]:.6f}"]
        )
    return out.getvalue()


def app_version() -> str:
    """This tool's version: the installed package's, else the checkout's ``pyproject.toml``."""
    try:
        return metadata.version("deepfake-detector")
    except metadata.PackageNotFoundError:
        import tomllib

        from detector.settings import PROJECT_ROOT

        with open(PROJECT_ROOT / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])


def software_versions() -> dict[str, str]:
    versions = {"deepfake-detector": app_version(), "python": platform.python_version()}
    for pkg in ("torch", "timm", "facenet-pytorch", "grad-cam", "av", "numpy", "c2pa-python"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    from detector.allocator import in_use

    versions["allocator"] = in_use()  # tcmalloc or the system's: memory and speed, not results
    return versions


def json_default(obj):
    """``json.dumps(..., default=json_default)``: numpy scalars and paths as plain JSON."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
