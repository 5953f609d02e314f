"""``train-two-stream ...``: train the two-stream members on clips."""

from __future__ import annotations

from pathlib import Path

from detector.settings import PROJECT_ROOT
from detector.training.two_stream import TWO_STREAM_NAMES


def add_arguments(p) -> None:
    p.add_argument("--real", type=Path, action="append", required=True, help="folder of real clips")
    p.add_argument("--fake", type=Path, action="append", default=[], help="folder of fake clips")
    p.add_argument("--models", default=",".join(TWO_STREAM_NAMES))
    p.add_argument("--samples", type=int, default=40, help="evenly spaced frames per clip")
    p.add_argument("--views", type=int, default=3)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights-dir", type=Path, default=PROJECT_ROOT / "weights")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "weights")
    p.add_argument("--no-int8", dest="int8", action="store_false")


def run(args) -> int:
    from detector.errors import BadSettingsError

    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not set(args.models) <= set(TWO_STREAM_NAMES):
        raise BadSettingsError(f"--models must be among {', '.join(TWO_STREAM_NAMES)}")
    run(args, log=lambda m: print(m, flush=True))
    return 0
