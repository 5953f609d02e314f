"""Does the fast CPU path give the same answers? Validation AUC of each member, three ways.

For each named per-frame member, the FaceForensics++ validation ids of the split file
(``weights/splits/ffpp_split.json``: 15 real + 15 fake videos, 300 crops of
``../shared/data/ffpp_frames``) are scored through :class:`detector.scoring.ensemble.Ensemble`:

- ``fp32_eager``: float32, the eager network (the reference);
- ``fp32_frozen``: float32, frozen TorchScript graph (BatchNorm folded);
- ``bf16_frozen``: bf16 weights, frozen graph (what the app runs on a CPU with native bf16).

All three resize the crops as the app does (uint8 resize on a CPU); ``training_val_auc`` is the
manifest's validation AUC as the training measured it (float resize), for comparison.

The frame AUCs and the largest and mean change of a crop's p_fake are written to the member's manifest
as ``metrics.precision_check``; the app runs a member in bf16 only where ``bf16_frozen`` is within
0.005 of ``fp32_eager`` (:func:`detector.scoring.ensemble.bf16_holds`). Run on a CPU with AMX, the
check is recorded beside that one (``amx``, ``bf16_holds_amx``): AMX rounds bf16 otherwise.

    python -m scripts.check_precision efficientnet_lite0 xception inception_resnet_v2 \\
        mesoinception4_f2f [--write] [--isa AVX512_CORE_BF16]

``--isa AVX512_CORE_BF16`` measures, on a CPU with AMX, the AVX-512 BF16 path with every kernel
library capped (:func:`detector.scoring.device.rerun_capped_if_asked`).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

from detector.evaluation.evaluate import score_image_folders
from detector.scoring.device import ISA_CAPS, bf16_kernels, isa_cap, rerun_capped_if_asked
from detector.settings import data_dir, weights_dir
from detector.training.splits import FFPP_SPLIT_FILE

PATHS = {
    "fp32_eager": {"precision": "fp32", "optimize": False},
    "fp32_frozen": {"precision": "fp32", "optimize": True},
    "bf16_frozen": {"precision": "bf16", "optimize": True},
}


def check(names: list[str]) -> dict[str, dict]:
    split = json.loads(FFPP_SPLIT_FILE.read_text("utf-8"))
    root = data_dir() / "ffpp_frames"
    folders = [(root / "real", 0), (root / "fake", 1)]
    scored = {
        path: score_image_folders(folders, names, keep_ids=set(split["val"]), device="cpu", **kw)
        for path, kw in PATHS.items()
    }
    y = np.array(scored["fp32_eager"].labels)
    out = {}
    for j, name in enumerate(names):
        ref = scored["fp32_eager"].scores[:, j]
        row = {"n_frames": len(y), "n_videos": len(set(scored["fp32_eager"].videos))}
        man = json.loads((weights_dir() / f"{name}.json").read_text("utf-8"))
        val = (man.get("metrics") or {}).get("val") or {}
        if "frame_auc" in val:  # as measured at training time (float resize, eager float32)
            row["training_val_auc"] = val["frame_auc"]
        for path, s in scored.items():
            row[f"{path}_auc"] = round(float(roc_auc_score(y, s.scores[:, j])), 4)
            if path != "fp32_eager":
                dp = np.abs(s.scores[:, j] - ref)
                row[f"{path}_max_abs_dp"] = round(float(dp.max()), 5)
                row[f"{path}_mean_abs_dp"] = round(float(dp.mean()), 5)
        row["command"] = "python -m scripts.check_precision " + " ".join(names)
        if cap := isa_cap():
            row["command"] += f" --isa {cap}"
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--write", action="store_true", help="record the result in the manifests")
    ap.add_argument(
        "--isa",
        choices=sorted(ISA_CAPS),
        default=None,
        help="measure as on a CPU without the newer instructions (e.g. AVX512_CORE_BF16 on an "
        "AMX CPU): reruns with oneDNN, MKL and torch's kernels capped",
    )
    args = ap.parse_args(argv)
    rest = sys.argv[1:] if argv is None else argv
    if (code := rerun_capped_if_asked("scripts.check_precision", args.isa, rest)) is not None:
        return code
    if not (data_dir() / "ffpp_frames").is_dir():
        print(f"no {data_dir() / 'ffpp_frames'}: set DEEPFAKE_DATA_DIR", file=sys.stderr)
        return 2
    result = check(args.names)
    print(json.dumps(result, indent=2))
    if args.write:
        for name, row in result.items():
            path = weights_dir() / f"{name}.json"
            man = json.loads(path.read_text("utf-8"))
            record(man.setdefault("metrics", {}), row, bf16_kernels())
            path.write_text(json.dumps(man, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return 0


def record(metrics: dict, row: dict, kernels: str | None) -> None:
    """Write a member's check into its manifest's ``metrics``. Measured on AMX (which rounds bf16
    otherwise than AVX-512 BF16), it goes beside the AVX-512 BF16 check, as ``amx`` and
    ``bf16_holds_amx`` (which admits bf16 on AMX CPUs), and replaces nothing else; either may
    be measured first (``--isa`` measures both on one AMX CPU)."""
    if kernels != "AMX":
        old = metrics.get("precision_check") or {}
        kept = {k: old[k] for k in ("amx", "bf16_holds_amx") if k in old}
        metrics["precision_check"] = {**row, "bf16_kernels": kernels, **kept}
        return
    check = metrics.setdefault("precision_check", {})
    check["amx"] = row
    check["bf16_holds_amx"] = abs(row["bf16_frozen_auc"] - row["fp32_eager_auc"]) <= 0.005


if __name__ == "__main__":
    raise SystemExit(main())
