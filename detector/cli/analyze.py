"""``analyze VIDEO [--json] [--csv FILE]``: one video's verdict, per person and per face."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detector.cli.common import (
    EXIT_NO_VERDICT,
    EXIT_OK,
    EXIT_USAGE,
    add_analysis_options,
    run_analysis,
)
from detector.errors import BadSettingsError
from detector.reporting.record import json_default


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_analysis_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--csv", type=Path, default=None, help="also write per-face scores as CSV")


def run(args: argparse.Namespace) -> int:
    from detector.reporting.record import analysis_to_dict, frame_scores_csv
    from detector.verdict.verdict import VERDICT_WORDS

    analysis = run_analysis(args)
    doc = analysis_to_dict(analysis)
    if args.json:
        print(json.dumps(doc, indent=2, default=json_default))
    if args.csv:
        args.csv.write_text(frame_scores_csv(analysis), encoding="utf-8")
    if not analysis.ok:
        print(f"{analysis.status}: {analysis.message}", file=sys.stderr)
        if analysis.audio is not None and analysis.audio.verdict is not None:
            print(doc["summary"], file=sys.stderr)
        return EXIT_USAGE if analysis.status == BadSettingsError.status else EXIT_NO_VERDICT
    if not args.json:
        v = analysis.verdict
        # the verdict in the analyst's words, never a bare "REAL" (the JSON keeps the label)
        print(
            f"{analysis.video.name}: {VERDICT_WORDS[v.label]} "
            f"(manipulation score {v.p_fake:.3f}, alarm threshold {v.threshold:.2f})"
        )
        print(v.explanation)
        print(doc["summary"])
    return EXIT_OK
