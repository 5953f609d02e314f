"""``models [--json]``: registered models (the face members, then the voice members), their
weights and what they were trained on."""

from __future__ import annotations

import argparse
import json

from detector.cli.common import EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from detector.models import list_models, model_card

    names = list_models() + list_models(kinds=("audio",))
    cards = [model_card(n) for n in names]
    if args.json:
        print(json.dumps([asdict(c) for c in cards], indent=2))
    else:
        for c in cards:
            state = "ready" if c.available else "no weights"
            size = f"{c.input_size} samples" if c.kind == "audio" else f"{c.input_size}px"
            print(f"{c.name:24s} {c.family:22s} {size:>13s}  {state:10s} {c.trained_on}")
    return EXIT_OK
