"""Scanning many clips with one set of loaded models (``python -m detector scan``).

:mod:`detector.batch.scan` finds the clips, writes ``results.jsonl`` / ``summary.csv`` /
``manifest.json`` so that a killed scan resumes without losing or redoing a clip, and runs the
local engine; :mod:`detector.batch.ray_engine` runs the same per-clip analysis on Ray Data.
"""

from detector.batch.discover import Discovery, discover
from detector.batch.records import ScanSettings, read_records, summary_csv
from detector.batch.scan import ScanResult, run_scan

__all__ = [
    "Discovery",
    "ScanResult",
    "ScanSettings",
    "discover",
    "read_records",
    "run_scan",
    "summary_csv",
]
