"""``evaluate --real DIR --fake DIR``: measure models on labelled folders."""

from __future__ import annotations

import json
from pathlib import Path

from detector.errors import BadSettingsError
from detector.evaluation.evaluate import (
    EvaluationResult,
    evaluate_scores,
    result_to_dict,
    score_folders,
    split_ids_of,
)


def add_arguments(p) -> None:
    p.add_argument("--real", type=Path, action="append", default=[], help="folder of real items")
    p.add_argument("--fake", type=Path, action="append", default=[], help="folder of fake items")
    p.add_argument("--models", default=None, help="comma-separated (default: the ensemble's)")
    p.add_argument("--weights", default=None, help="ensemble weights, e.g. a=0.6,b=0.4")
    p.add_argument("--aggregate", default=None, choices=["mean", "median"])
    p.add_argument(
        "--order", default=None, choices=["aggregate_then_combine", "combine_then_aggregate"]
    )
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--sampling", default="1fps", help="frame sampling for clip folders")
    p.add_argument("--device", default="auto")
    p.add_argument("--weights-dir", type=Path, default=None, help="default: the shipped weights/")
    p.add_argument("--split", type=Path, default=None, help="id split file (image folders only)")
    p.add_argument("--part", default="test", help="part of --split to evaluate (default test)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--items", action="store_true", help="also list per-video scores (text mode)")


def run(args) -> int:
    from detector.reporting.tables import Table5Row, format_table5
    from detector.verdict.scoring import parse_weights, resolve_scoring

    if not args.real and not args.fake:
        raise BadSettingsError("give at least one --real or --fake folder")
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    scoring = resolve_scoring(
        models,
        parse_weights(args.weights),
        aggregation=args.aggregate,
        order=args.order,
        threshold=args.threshold,
    )
    models, weights = list(scoring.weights), dict(scoring.weights)
    log = (lambda m: print(m, file=__import__("sys").stderr)) if args.json else print
    extra = {"keep_ids": split_ids_of(args.split, args.part)} if args.split else {}
    scored = score_folders(
        args.real,
        args.fake,
        models,
        device=args.device,
        weights_dir=args.weights_dir,
        sampling=args.sampling,
        log=log,
        **extra,
    )
    if not scored.labels:
        raise BadSettingsError("nothing could be scored: " + "; ".join(scored.skipped))
    res = evaluate_scores(
        scored.videos,
        scored.labels,
        scored.scores,
        models,
        weights=weights,
        aggregation=scoring.aggregation,
        order=scoring.order,
        threshold=scoring.threshold,
        names=scored.names,
    )
    res = EvaluationResult(**{**res.__dict__, "skipped": scored.skipped})
    if args.json:
        print(json.dumps(result_to_dict(res), indent=2))
        return 0
    print(f"{len(scored.labels)} frames, {len(res.video_scores)} videos; threshold {res.threshold}")
    print(
        f"{'model':24s} {'frame AUC (95% CI)':>22s} {'video AUC (95% CI)':>22s} "
        f"{'video acc':>9s}  confusion (video)"
    )

    def with_ci(d: dict) -> str:
        ci = d.get("auc_ci95") or []
        return f"{d['auc']:.4f}" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if len(ci) == 2 else " " * 12)

    for m in [*models, "ensemble"]:
        f, v = res.frame[m], res.video[m]
        c = v["confusion"]
        print(
            f"{m:24s} {with_ci(f):>22s} {with_ci(v):>22s} {v['accuracy']:9.4f}  "
            f"tp {c['tp']} fp {c['fp']} tn {c['tn']} fn {c['fn']}"
        )
    print("95% CI: bootstrap over videos (frames of one video are resampled together)")
    print()
    print(format_table5([Table5Row(**r) for r in res.table5], res.threshold))
    if args.items:
        for k, v in res.video_scores.items():
            print(f"{k:32s} label {v['label']} ensemble {v['ensemble']:.4f}")
    for s in scored.skipped:
        print(f"skipped: {s}")
    return 0
