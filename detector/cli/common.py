"""What the analysis subcommands share: exit codes, options, settings from arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.errors import BadSettingsError

EXIT_OK, EXIT_USAGE, EXIT_NO_VERDICT, EXIT_INTERNAL = 0, 2, 3, 4
EXIT_INTERRUPTED = 130  # as a shell reports SIGINT


def add_analysis_options(p: argparse.ArgumentParser, video: bool = True) -> None:
    """The analysis options; ``video=False`` for commands that take their own paths (scan)."""
    if video:
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
    add_trust_option(p)


def add_trust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-anchors",
        type=Path,
        default=None,
        metavar="PEM",
        help="CA certificates (PEM) whose signers count as trusted for content credentials "
        "(C2PA); without it no signer is trusted and the signer is reported as unknown",
    )


def settings_from(args: argparse.Namespace):
    """(models, extraction settings, scoring) from the analysis options; BadSettingsError if wrong."""
    from detector.io.probe import parse_sampling
    from detector.pipeline import ExtractionSettings
    from detector.verdict.scoring import parse_weights, resolve_scoring

    models = [m.strip() for m in args.models.split(",")] if args.models else None
    scoring = resolve_scoring(
        models,
        parse_weights(args.weights),
        preset=args.preset,
        aggregation=args.aggregate,
        order=args.order,
        threshold=args.threshold,
    )
    parse_sampling(args.sampling)
    extraction = ExtractionSettings(sampling=args.sampling, trust_anchors=trust_from(args))
    return list(scoring.weights), extraction, scoring


def trust_from(args: argparse.Namespace):
    from detector.provenance.model import load_trust_anchors

    return load_trust_anchors(args.trust_anchors) if args.trust_anchors else None


def run_analysis(args: argparse.Namespace):
    from detector.pipeline import Analyzer

    models, extraction, scoring = settings_from(args)
    if not args.video.exists():
        raise BadSettingsError(f"{args.video}: no such file")
    analyzer = Analyzer(models, device=args.device)
    return analyzer.analyze(args.video, extraction, scoring)
