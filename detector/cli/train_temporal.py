"""``train-temporal --model NAME ...``: train a temporal member on face sequences."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from detector.settings import PROJECT_ROOT
from detector.training.splits import FFPP_SPLIT_FILE
from detector.training.temporal import TEMPORAL_NAMES, TemporalConfig, train_temporal


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help=f"one of {', '.join(TEMPORAL_NAMES)}")
    p.add_argument("--real", type=Path, action="append", required=True)
    p.add_argument("--fake", type=Path, action="append", default=[])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views", default=None, help="e.g. real=6,fake=4,sbi_track=3,sbi_flicker=3")
    p.add_argument("--split", type=Path, default=FFPP_SPLIT_FILE)
    p.add_argument("--amp", default="bf16", choices=["none", "bf16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-budget-min", type=float, default=None)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "weights")
    p.add_argument("--no-int8-storage", action="store_true")
    p.add_argument(
        "--trunk-dir",
        type=Path,
        default=None,
        help="folder of the frozen trunk's per-frame weights + manifest (default: weights/); "
        "resnext50_lstm's trunk is a `train --model resnext50_32x4d` run's --out",
    )


def run(args) -> int:
    from detector.errors import BadSettingsError

    if args.model not in TEMPORAL_NAMES:
        raise BadSettingsError(f"--model must be one of {', '.join(TEMPORAL_NAMES)}")
    views = TemporalConfig.__dataclass_fields__["views"].default_factory()
    if args.views:
        views = {k: int(v) for k, v in (x.split("=") for x in args.views.split(","))}
    cfg = TemporalConfig(
        model=args.model,
        real=tuple(args.real),
        fake=tuple(args.fake),
        views=views,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        patience=args.patience,
        seed=args.seed,
        split_file=args.split,
        amp=args.amp,
        threads=args.threads,
        time_budget_min=args.time_budget_min,
        out=args.out,
        int8_storage=not args.no_int8_storage,
        trunk_dir=args.trunk_dir,
    )
    command = "python -m detector " + shlex.join(sys.argv[1:])
    train_temporal(cfg, command=command, log=lambda m: print(m, flush=True))
    return 0
