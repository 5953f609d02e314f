"""``train-clip ...``: train the CLIP ViT-B/16 member from the cached pool."""

from __future__ import annotations

import json
from pathlib import Path

from detector.training.clip import ClipTrainConfig, train_and_save


def add_arguments(p) -> None:
    p.add_argument("--recipe", choices=("probe", "ln"), default="ln")
    p.add_argument(
        "--layers", default="4,6,8,10,12", help="1-based blocks whose class token is read"
    )
    p.add_argument("--tune-from", type=int, default=9, help="ln: tune LayerNorms of blocks >= this")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ln-lr", type=float, default=2e-4)
    p.add_argument("--time-budget-min", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for the weights and manifest")


def config_from_args(args) -> ClipTrainConfig:
    return ClipTrainConfig(
        recipe=args.recipe,
        layers=tuple(int(x) for x in args.layers.split(",")),
        tune_from=args.tune_from,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        ln_lr=args.ln_lr,
        time_budget_min=args.time_budget_min,
        seed=args.seed,
    )


def run(args) -> int:
    import sys

    cfg = config_from_args(args)
    command = "python -m detector train-clip " + " ".join(sys.argv[2:])
    _, manifest = train_and_save(cfg, args.out, command)
    print(json.dumps(manifest["metrics"], indent=2))
    return 0
