"""``paper-tables [--json]``: paper 000's Tables 3 and 4, reproduced from its published scores."""

from __future__ import annotations

import argparse
import json

from detector.cli.common import EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--order",
        default="aggregate_then_combine",
        choices=["aggregate_then_combine", "combine_then_aggregate"],
    )


def run(args: argparse.Namespace) -> int:
    from detector.reporting.paper000 import reproduce_tables
    from detector.reporting.tables import format_table, table_to_dict

    tables = reproduce_tables(order=args.order)
    if args.json:
        print(json.dumps([table_to_dict(t) for t in tables], indent=2))
    else:
        print("\n\n".join(format_table(t) for t in tables))
    return EXIT_OK
