"""``train --model NAME ...``: train a frame member on face crops."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from detector.settings import PROJECT_ROOT
from detector.training.config import TrainConfig
from detector.training.splits import FFPP_SPLIT_FILE
from detector.training.train import train
from detector.training.trainables import trainable_names


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help=f"one of {', '.join(trainable_names())}")
    p.add_argument("--real", type=Path, action="append", default=[], help="folder of real crops")
    p.add_argument("--fake", type=Path, action="append", default=[], help="folder of fake crops")
    p.add_argument("--sbi", action="store_true", help="add self-blended fakes of the real crops")
    p.add_argument("--fwa", action="store_true", help="add face-warping fakes of the real crops")
    p.add_argument("--swap", action="store_true", help="add identity-swap fakes of two real crops")
    p.add_argument(
        "--aligned",
        action="store_true",
        help="train on the CLIP pool's sources as the pipeline cuts them (every FF++ method, "
        "originals, real photos) instead of --real/--fake folders",
    )
    p.add_argument(
        "--mix", default=None, help="sampling shares, e.g. real=0.5,fake=0.2,sbi=0.15,fwa=0.15"
    )
    p.add_argument(
        "--codec",
        type=float,
        default=0.0,
        help="share of crops re-encoded as one small H.264 frame (heavily compressed video)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--epoch-size", type=int, default=1024, help="training crops per epoch")
    p.add_argument("--img-size", type=int, default=None, help="input side (default: pretraining)")
    p.add_argument("--freeze", default="", help="comma-separated module prefixes to freeze")
    p.add_argument(
        "--bn-eval", action="store_true", help="keep every BatchNorm's statistics frozen"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=3, help="epochs without val AUC gain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", type=Path, default=FFPP_SPLIT_FILE)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-budget-min", type=float, default=None)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "weights")
    p.add_argument(
        "--work-dir", type=Path, default=None, help="checkpoints (default .cache/train/NAME)"
    )
    p.add_argument(
        "--teacher",
        action="append",
        default=[],
        help="distil from this trained member (repeatable; its weights/ manifest is used)",
    )
    p.add_argument(
        "--distill-alpha", type=float, default=0.5, help="share of the loss on teacher targets"
    )
    p.add_argument(
        "--distill-features",
        type=float,
        default=0.0,
        metavar="BETA",
        help="also match the teachers' pooled features (cosine loss with this weight)",
    )
    p.add_argument(
        "--int8-storage",
        action="store_true",
        help="store int8 weights when validation AUC holds (large models; see weights.py)",
    )


def run(args) -> int:
    mix = {}
    if args.mix:
        for part in args.mix.split(","):
            k, _, v = part.partition("=")
            mix[k.strip()] = float(v)
    from detector.errors import BadSettingsError

    if args.model not in trainable_names():
        raise BadSettingsError(f"--model must be one of {', '.join(trainable_names())}")
    if args.aligned and (args.real or args.fake):
        raise BadSettingsError("--aligned reads its own sources: give no --real or --fake")
    if not args.aligned and not args.real:
        raise BadSettingsError("give --real folders (and --fake), or --aligned")
    cfg = TrainConfig(
        model=args.model,
        real=tuple(args.real),
        fake=tuple(args.fake),
        sbi=args.sbi,
        fwa=args.fwa,
        swap=args.swap,
        aligned=args.aligned,
        codec=args.codec,
        epochs=args.epochs,
        epoch_size=args.epoch_size,
        img_size=args.img_size,
        freeze=tuple(x for x in args.freeze.split(",") if x),
        bn_eval=args.bn_eval,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        patience=args.patience,
        seed=args.seed,
        split_file=args.split,
        device=args.device,
        amp=args.amp,
        threads=args.threads,
        time_budget_min=args.time_budget_min,
        out=args.out,
        work_dir=args.work_dir,
        mix=mix,
        teachers=tuple(args.teacher),
        distill_alpha=args.distill_alpha,
        int8_storage=args.int8_storage,
        feature_beta=args.distill_features,
    )
    command = "python -m detector " + shlex.join(sys.argv[1:])
    train(cfg, command=command, log=lambda m: print(m, flush=True))
    return 0
