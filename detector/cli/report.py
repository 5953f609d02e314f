"""``report VIDEO -o FILE.pdf``: analyse one video and write the PDF report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.cli.common import EXIT_NO_VERDICT, EXIT_OK, add_analysis_options, run_analysis


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_analysis_options(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="PDF file to write")


def run(args: argparse.Namespace) -> int:
    from detector.reporting.pdf import render_pdf

    analysis = run_analysis(args)
    args.output.write_bytes(render_pdf(analysis))
    if not analysis.ok:
        print(
            f"{analysis.status}: {analysis.message} (report written: {args.output})",
            file=sys.stderr,
        )
        return EXIT_NO_VERDICT
    print(f"report written: {args.output}")
    return EXIT_OK
