"""Choose the default ensemble on the validation split and write ``weights/ensemble.json``.

Candidates are scored on the FaceForensics++ validation ids of ``weights/splits/ffpp_split.json``.
Two ways of combining them are compared on validation only:

- fixed weights: a grid over the weight simplex (step 0.1), ranked by validation frame AUC, then
  video AUC, then fewer members; the frame -> video aggregation (mean or median) is chosen after;
- a learned combiner (paper 003's "higher assessing net", here a logistic regression on the
  members' per-video scores), measured by leave-one-video-out cross-validation on validation.

The learned combiner's coefficients are stored only if it beats the fixed weighting on validation.
The chosen ensemble is then scored once on the test ids and the numbers are recorded beside it.

Run from the project root::

    python -m scripts.fit_ensemble [--candidates a,b,...] [--dry-run]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np

from detector.evaluation.evaluate import evaluate_scores, score_image_folders, split_ids_of
from detector.models import list_models
from detector.settings import PROJECT_ROOT, WEIGHTS_DIR, data_dir
from detector.training.splits import FFPP_SPLIT_FILE
from detector.verdict.aggregate import reduce_frames

TRAINED = ("efficientnet_lite0", "xception", "inception_resnet_v2", "facenet_irv1")
MESONET_F2F = ("meso4_f2f", "mesoinception4_f2f")


def simplex(n: int, step: float):
    k = round(1 / step)
    for cut in itertools.combinations(range(k + n - 1), n - 1):
        parts = np.diff([-1, *cut, k + n - 1]) - 1
        yield parts / k


def _auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def video_matrix(videos, labels, scores, aggregation: str):
    keys = sorted(set(videos))
    idx = {k: [i for i, v in enumerate(videos) if v == k] for k in keys}
    mat = np.array([reduce_frames(scores[idx[k]], aggregation, axis=0) for k in keys])
    lab = np.array([labels[idx[k][0]] for k in keys])
    return mat, lab


def learned_combiner_loo(mat: np.ndarray, lab: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Leave-one-video-out AUC of a logistic regression on per-video logits; full-fit coefs."""
    from sklearn.linear_model import LogisticRegression

    x = np.log(np.clip(mat, 1e-4, 1 - 1e-4) / (1 - np.clip(mat, 1e-4, 1 - 1e-4)))
    pred = np.zeros(len(lab))
    for i in range(len(lab)):
        keep = np.arange(len(lab)) != i
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(x[keep], lab[keep])
        pred[i] = clf.predict_proba(x[i : i + 1])[0, 1]
    full = LogisticRegression(C=1.0, max_iter=1000).fit(x, lab)
    return _auc(lab, pred), full.coef_[0], float(full.intercept_[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", default=",".join((*TRAINED, *MESONET_F2F)))
    ap.add_argument("--split", type=Path, default=FFPP_SPLIT_FILE)
    ap.add_argument("--step", type=float, default=0.1)
    ap.add_argument(
        "--require",
        default="xception,inception_resnet_v2",
        help="members that must keep a weight of at least --min-weight (the paper's pair)",
    )
    ap.add_argument("--min-weight", type=float, default=0.1)
    ap.add_argument("--dry-run", action="store_true", help="print, do not write ensemble.json")
    args = ap.parse_args(argv)

    avail = set(list_models(available_only=True))
    models = [m for m in args.candidates.split(",") if m in avail]
    print("candidates:", models, flush=True)
    folders = [(data_dir() / "ffpp_frames" / "real", 0), (data_dir() / "ffpp_frames" / "fake", 1)]
    parts = {}
    for part in ("val", "test"):
        parts[part] = score_image_folders(
            folders, models, device="cpu", keep_ids=split_ids_of(args.split, part)
        )
        print(f"scored {part}: {len(parts[part].labels)} frames", flush=True)
    val = parts["val"]
    y = np.array(val.labels)

    per_model = {}
    for j, m in enumerate(models):
        r = evaluate_scores(val.videos, val.labels, val.scores[:, [j]], [m])
        per_model[m] = {"val_frame_auc": r.frame_auc, "val_video_auc": r.video_auc}
        print(f"{m:22s} val frame AUC {r.frame_auc:.4f} video AUC {r.video_auc:.4f}")

    mats = {a: video_matrix(val.videos, val.labels, val.scores, a) for a in ("mean", "median")}
    required = [m for m in args.require.split(",") if m]
    missing = [m for m in required if m not in models]
    if missing:
        raise SystemExit(f"required members {missing} are not available candidates")
    req_idx = [models.index(m) for m in required]
    best = free = None
    for w in simplex(len(models), args.step):
        f_auc = _auc(y, val.scores @ w)
        v_auc = max(_auc(mats[a][1], mats[a][0] @ w) for a in mats)
        key = (round(f_auc, 4), round(v_auc, 4), -int(np.count_nonzero(w)))
        if free is None or key > free[0]:
            free = (key, w)
        if any(w[j] < args.min_weight - 1e-9 for j in req_idx):
            continue
        if best is None or key > best[0]:
            best = (key, w)
    w = best[1]
    unconstrained = {
        "members": {m: round(float(x), 2) for m, x in zip(models, free[1], strict=True) if x > 0},
        "val_frame_auc": free[0][0],
        "val_video_auc": free[0][1],
    }
    print(f"best without the required members: {unconstrained}")
    weights = {m: round(float(x), 2) for m, x in zip(models, w, strict=True) if x > 0}
    results = {
        a: evaluate_scores(
            val.videos, val.labels, val.scores, models, weights=weights, aggregation=a
        )
        for a in ("mean", "median")
    }
    agg = max(
        ("mean", "median"),
        key=lambda a: (
            round(results[a].video_auc, 4),
            results[a].video["ensemble"]["accuracy"],
            a == "mean",
        ),
    )
    fixed = results[agg]
    print(
        f"fixed weights {weights} agg {agg}: val frame AUC {fixed.frame_auc:.4f} "
        f"video AUC {fixed.video_auc:.4f} acc {fixed.video['ensemble']['accuracy']:.4f}"
    )

    lr_auc, coef, intercept = learned_combiner_loo(*mats[agg])
    print(f"logistic regression (leave-one-video-out on val): video AUC {lr_auc:.4f}")
    lr_wins = lr_auc > fixed.video_auc + 1e-9

    test = parts["test"]
    test_res = evaluate_scores(
        test.videos, test.labels, test.scores, models, weights=weights, aggregation=agg
    )
    per_test = {}
    for j, m in enumerate(models):
        r = evaluate_scores(test.videos, test.labels, test.scores[:, [j]], [m])
        per_test[m] = {"test_frame_auc": r.frame_auc, "test_video_auc": r.video_auc}
    print(
        f"TEST (once): frame AUC {test_res.frame_auc:.4f} video AUC {test_res.video_auc:.4f} "
        f"acc {test_res.video['ensemble']['accuracy']:.4f}"
    )

    def summary(r):
        return {
            "frame_auc": round(r.frame_auc, 4),
            "video_auc": round(r.video_auc, 4),
            "frame_accuracy": round(r.frame["ensemble"]["accuracy"], 4),
            "video_accuracy": round(r.video["ensemble"]["accuracy"], 4),
            "video_confusion": r.video["ensemble"]["confusion"],
            "n_frames": r.frame["ensemble"]["n"],
            "n_videos": r.video["ensemble"]["n"],
        }

    doc = {
        "members": weights,
        "aggregation": agg,
        "order": "aggregate_then_combine",
        "threshold": 0.5,
        "chosen_by": (
            f"Chosen on the FaceForensics++ validation ids of weights/splits/ffpp_split.json "
            f"({len(set(val.videos))} videos, {len(val.labels)} frames) by "
            f"scripts/fit_ensemble.py: grid over weights of {', '.join(models)} "
            f"(step {args.step}"
            + (
                f"; {' and '.join(required)} kept at {args.min_weight:g} or more, the core "
                "paper's pair"
                if required
                else ""
            )
            + "), ranked by validation frame AUC, then video AUC, then fewer "
            f"members; aggregation ({agg}) by validation video AUC then accuracy. A logistic "
            f"regression on per-video logits (paper 003's learned combiner) reached a "
            f"leave-one-video-out validation video AUC of {lr_auc:.4f} against "
            f"{fixed.video_auc:.4f} for the fixed weights"
            + (
                ", so its coefficients are stored below."
                if lr_wins
                else ", so fixed weights are used."
            )
            + " Test ids were scored once, after the choice."
        ),
        "best_without_required_members": unconstrained,
        "validation": summary(fixed),
        "test": summary(test_res),
        "members_validation": {
            m: {k: round(v, 4) for k, v in d.items()} for m, d in per_model.items()
        },
        "members_test": {m: {k: round(v, 4) for k, v in d.items()} for m, d in per_test.items()},
        "learned_combiner": {
            "kind": "logistic regression on per-video logit(p_fake), " + agg + " over frames",
            "loo_val_video_auc": round(lr_auc, 4),
            "stored": lr_wins,
            **(
                {
                    "coef": dict(zip(models, np.round(coef, 4).tolist(), strict=True)),
                    "intercept": round(intercept, 4),
                }
                if lr_wins
                else {}
            ),
        },
    }
    text = json.dumps(doc, indent=2) + "\n"
    if args.dry_run:
        print(text)
    else:
        (WEIGHTS_DIR / "ensemble.json").write_text(text, encoding="utf-8")
        print(f"wrote {(WEIGHTS_DIR / 'ensemble.json').relative_to(PROJECT_ROOT)}")
    return 0 if not math.isnan(test_res.frame_auc) else 1


if __name__ == "__main__":
    raise SystemExit(main())
