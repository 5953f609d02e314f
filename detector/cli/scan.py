"""``scan PATH ... --out DIR``: many clips with the models loaded once, resumable
(:mod:`detector.batch.scan`; ``--engine ray`` runs it on Ray Data)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.batch.discover import discover
from detector.batch.records import MANIFEST, RESULTS, ScanSettings
from detector.batch.scan import run_scan
from detector.batch.work import ENGINES, EngineOptions
from detector.cli.common import EXIT_INTERNAL, EXIT_OK, add_analysis_options, settings_from
from detector.errors import BadSettingsError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The scan's own options, then the analysis options of ``analyze``."""
    p.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="video files, folders, or text files listing one path per line",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for results.jsonl and the rest")
    p.add_argument("--recursive", action="store_true", help="also scan the folders' sub-folders")
    p.add_argument("--resume", action="store_true", help="continue the scan already in --out")
    p.add_argument("--engine", choices=ENGINES, default="local", help="local (default) or ray")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local: threads sharing one set of models; ray: actors, each with its own",
    )
    p.add_argument(
        "--address", default=None, help="ray: a running cluster to join (e.g. auto, host:6379)"
    )
    p.add_argument(
        "--cpus-per-worker",
        type=float,
        default=None,
        help="ray: CPUs each actor reserves (its torch threads); default: this machine's cores "
        "shared by the workers on a local instance, 1 on a cluster",
    )
    p.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="ray: GPUs each actor reserves"
    )
    add_analysis_options(p, video=False)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every clip has its line (4 when some of them are internal errors)."""
    models, extraction, scoring = settings_from(args)
    engine = EngineOptions(
        args.engine, args.workers, args.address, args.cpus_per_worker, args.gpus_per_worker
    )
    settings = ScanSettings(tuple(models or scoring.weights), extraction, scoring, args.device)
    discovery = discover(args.paths, recursive=args.recursive, exclude=args.out)
    if not discovery.clips:
        raise BadSettingsError(
            "no clip to scan"
            + (
                f" ({len(discovery.skipped)} file(s) found are not videos)"
                if discovery.skipped
                else ""
            )
        )
    result = run_scan(discovery, settings, args.out, resume=args.resume, engine=engine)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_status.items())) or "nothing new"
    print(
        f"{result.clips} clip(s): {result.already_done} already done, {result.analysed} analysed, "
        f"{result.copied} same content as another; lines written: {counts}; "
        f"results in {Path(args.out) / RESULTS}",
        file=sys.stderr,
    )
    if discovery.skipped:
        print(
            f"{len(discovery.skipped)} file(s) in the folders are not videos and were not scanned "
            f"(listed in {Path(args.out) / MANIFEST})",
            file=sys.stderr,
        )
    return EXIT_INTERNAL if result.internal_errors else EXIT_OK
