"""``provenance FILE [--json]``: content credentials (C2PA) and container metadata, no faces."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detector.cli.common import EXIT_NO_VERDICT, EXIT_OK, add_trust_option, trust_from
from detector.errors import BadSettingsError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", type=Path, help="video file to inspect")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    add_trust_option(p)


def run(args: argparse.Namespace) -> int:
    """Credentials, metadata and findings of one file; exit 3 when the file cannot be read."""
    from detector.provenance.model import C2PA_WORDS, TRUST_WORDS, provenance_to_dict
    from detector.provenance.read import inspect_file

    trust = trust_from(args)
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
