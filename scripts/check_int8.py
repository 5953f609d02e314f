"""Does int8 hold for the CLIP member? Cross-dataset and FaceForensics++ validation AUC, fp32
against PyTorch's dynamic int8 (per-channel weights, activations quantised per batch at run time,
every ``nn.Linear``: 98 % of the member's work), on the CPU it runs on.

The CLIP member is the ensemble's costliest (about 35 GFLOP per crop, multiply-adds counted
twice); int8 would be the way to make it faster on CPUs with VNNI / AMX. The issue asks that a
precision be admitted only where validation AUC stays within 0.005 of fp32. This measures it on
the cross-dataset validation set of :mod:`scripts.crossval` (video AUC, the member alone, frames
combined by median as in the default) and the FF++ validation ids (frame AUC), and with ``--write``
records it in the member's manifest as ``metrics.precision_check.int8_dynamic``.

ONNX Runtime's int8 kernels are not an alternative on this machine: on a CPU without VNNI its
u8s8 path saturates (``scripts/verify_clip.py``: embedding cosine 0.44 against exact int8 math).

    python -m scripts.check_int8 [--write]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Sequence

import numpy as np

from detector.settings import WEIGHTS_DIR
from detector.types import ScoringSettings
from scripts.calibrate import aucs, clip_scorer, video_scores
from scripts.crossval import all_faces, member_scores

NAME = "clip_vit_b16"


def int8_scorer():
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from detector.models import create_model, get_spec
    from detector.models.preprocess import preprocess

    spec = get_spec(NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that it moves to torchao
        net = quantize_dynamic(
            create_model(NAME).eval(),
            {torch.nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
        )

    def scorer(crops, tracks):
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), 8):
                x = preprocess(np.asarray(crops[i : i + 8]), spec, torch.device("cpu"))
                out.append(torch.sigmoid(net(x).reshape(-1)).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    return scorer


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--write", action="store_true", help="record the result in the manifest")
    args = p.parse_args(argv)
    faces = all_faces(log=lambda *_: None)
    sha = json.loads((WEIGHTS_DIR / f"{NAME}.json").read_text("utf-8"))["sha256"][:12]
    fp32 = member_scores(NAME, faces, clip_scorer(), tag=f"fp32_{sha}")
    t0 = time.perf_counter()
    int8 = member_scores(NAME, faces, int8_scorer(), tag=f"int8dyn_{sha}")
    seconds = time.perf_counter() - t0
    settings = ScoringSettings(weights={NAME: 1.0}, aggregation="median")
    row = {"n_faces": int(sum(len(v) for v in fp32.values()))}
    for label, scores in (("fp32", fp32), ("int8_dynamic", int8)):
        table = aucs(video_scores(faces, {NAME: scores}, settings), faces, boot=200)
        row[label] = {k: v["auc"] for k, v in table.items()}
    a = np.concatenate([fp32[k] for k in fp32])
    b = np.concatenate([int8[k] for k in fp32])
    row["max_abs_p_change"] = round(float(np.abs(a - b).max()), 4)
    row["mean_abs_p_change"] = round(float(np.abs(a - b).mean()), 4)
    row["p_correlation"] = round(float(np.corrcoef(a, b)[0, 1]), 4)
    row["auc_change_all"] = round(row["int8_dynamic"]["all"] - row["fp32"]["all"], 4)
    row["holds"] = all(abs(row["int8_dynamic"][k] - row["fp32"][k]) <= 0.005 for k in row["fp32"])
    row["int8_seconds_if_not_cached"] = round(seconds, 1)
    row["command"] = "python -m scripts.check_int8 --write"
    print(json.dumps(row, indent=2))
    if args.write:
        path = WEIGHTS_DIR / f"{NAME}.json"
        man = json.loads(path.read_text("utf-8"))
        man.setdefault("metrics", {}).setdefault("precision_check", {})["int8_dynamic"] = row
        path.write_text(json.dumps(man, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
