"""Which precisions hold for the CLIP member? Cross-dataset validation AUC, fp32 against
PyTorch's dynamic int8 and against the frozen bf16 graph, on the CPU it runs on.

The CLIP member is the ensemble's costliest (about 31 GFLOP per crop, multiply-adds counted
twice). The issue asks that a precision be admitted only where validation AUC stays within 0.005
of fp32. This measures it on the cross-dataset validation set of :mod:`scripts.crossval` (video
AUC, the member alone, frames combined by median as in the default; every subset must hold), and
with ``--write`` records it in the member's manifest under ``metrics.precision_check``:

- ``int8_dynamic``: every ``nn.Linear`` (98 % of the member's work) with per-channel int8
  weights and activations quantised per batch at run time;
- ``bf16_frozen``: the frozen TorchScript graph with bf16 weights, as the app runs it on a CPU
  with native bf16 (AVX-512 BF16 or AMX; measure it on such a CPU, emulated bf16 is slow);
  ``fp32_eager_auc`` / ``bf16_frozen_auc`` / ``bf16_holds`` are what
  :func:`detector.scoring.ensemble.bf16_holds` reads. Run on a CPU with AMX, the row is
  ``bf16_frozen_amx`` and ``bf16_holds_amx`` admits bf16 on AMX (which rounds otherwise).

ONNX Runtime's int8 kernels are not an alternative on CPUs without VNNI: their u8s8 path
saturates (``scripts/verify_clip.py``: embedding cosine 0.44 against exact int8 math).

    python -m scripts.check_clip_precision [--only int8_dynamic|bf16_frozen] [--write]
                                           [--isa AVX512_CORE_BF16]

``--isa AVX512_CORE_BF16`` measures, on a CPU with AMX, the AVX-512 BF16 path with every kernel
switch capped (oneDNN, MKL, torch's own); a cap of oneDNN alone is refused, because MKL would
still run bf16 matrix products on AMX.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np

from detector.settings import WEIGHTS_DIR
from detector.types import ScoringSettings
from scripts.calibrate import aucs, clip_scorer, video_scores
from scripts.crossval import all_faces, member_scores, score_tag, size_mark

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


def bf16_scorer():
    from detector.scoring.device import native_bf16
    from detector.scoring.ensemble import Ensemble

    if not native_bf16():
        raise SystemExit("this CPU has no native bf16 (AVX-512 BF16 or AMX): measure it on one")
    import functools

    # loaded at the first crop to score: callers whose scores are all cached never load it
    ens = functools.cache(lambda: Ensemble([NAME], device="cpu", precision="bf16"))

    def scorer(crops, tracks):
        return ens().score(crops, tracks)[:, 0]

    return scorer


SCORERS = {"int8_dynamic": int8_scorer, "bf16_frozen": bf16_scorer}
TAGS = {"int8_dynamic": "int8dyn", "bf16_frozen": "bf16"}


def compare(faces, fp32, low, label: str) -> dict:
    settings = ScoringSettings(weights={NAME: 1.0}, aggregation="median")
    row = {"n_faces": int(sum(len(v) for v in fp32.values()))}
    for name, scores in (("fp32", fp32), (label, low)):
        table = aucs(video_scores(faces, {NAME: scores}, settings), faces, boot=200)
        row[name] = {k: v["auc"] for k, v in table.items()}
    a = np.concatenate([fp32[k] for k in fp32])
    b = np.concatenate([low[k] for k in fp32])
    row["max_abs_p_change"] = round(float(np.abs(a - b).max()), 4)
    row["mean_abs_p_change"] = round(float(np.abs(a - b).mean()), 4)
    row["p_correlation"] = round(float(np.corrcoef(a, b)[0, 1]), 4)
    row["auc_change_all"] = round(row[label]["all"] - row["fp32"]["all"], 4)
    row["holds"] = all(abs(row[label][k] - row["fp32"][k]) <= 0.005 for k in row["fp32"])
    return row


def main(argv: Sequence[str] | None = None) -> int:
    from detector.scoring.device import (
        ISA_CAPS,
        bf16_kernels,
        cpu_flags,
        isa_cap,
        rerun_capped_if_asked,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=sorted(SCORERS), action="append", default=None)
    p.add_argument("--write", action="store_true", help="record the result in the manifest")
    p.add_argument(
        "--isa",
        choices=sorted(ISA_CAPS),
        default=None,
        help="measure as on a CPU without the newer instructions (e.g. AVX512_CORE_BF16: the "
        "AVX-512 BF16 path on an AMX CPU): reruns with oneDNN, MKL and torch's kernels capped",
    )
    args = p.parse_args(argv)
    from detector.models import get_spec

    rest = sys.argv[1:] if argv is None else argv
    if (code := rerun_capped_if_asked("scripts.check_clip_precision", args.isa, rest)) is not None:
        return code
    from detector.scoring.graphs import bf16_graph_revision

    faces = all_faces(log=lambda *_: None)
    sha = json.loads((WEIGHTS_DIR / f"{NAME}.json").read_text("utf-8"))["sha256"][:12]
    mark = size_mark(NAME)  # another input size than the head was trained at: other caches
    # the same score caches as calibrate's precision paths (scripts.crossval.member_scores)
    fp32 = member_scores(NAME, faces, clip_scorer(), tag=f"{sha}_fp32{mark}")
    rows = {}
    for label in args.only or sorted(SCORERS):
        t0 = time.perf_counter()
        # bf16 on AMX rounds otherwise than on AVX-512 BF16: its own cache, as calibrate's paths
        amx = label == "bf16_frozen" and bf16_kernels() == "AMX"
        if label == "bf16_frozen":  # the frozen bf16 graph of this revision, on these kernels
            tag = score_tag(sha, "bf16", bf16_kernels(), bf16_graph_revision(get_spec(NAME)))
            tag += mark
        else:
            tag = f"{sha}_{TAGS[label]}{mark}"
        low = member_scores(NAME, faces, SCORERS[label](), tag=tag)
        row = compare(faces, fp32, low, label)
        row["seconds_this_run"] = round(time.perf_counter() - t0, 1)
        row["cpu_flags"] = list(cpu_flags())
        row["bf16_kernels"] = bf16_kernels() if label == "bf16_frozen" else None
        row["command"] = f"python -m scripts.check_clip_precision --only {label} --write" + (
            f" --isa {isa_cap()}" if isa_cap() else ""
        )
        rows[label + ("_amx" if amx else "")] = row  # AMX's check beside AVX-512 BF16's
        print(json.dumps(row, indent=2))
    if args.write:
        path = WEIGHTS_DIR / f"{NAME}.json"
        man = json.loads(path.read_text("utf-8"))
        check = man.setdefault("metrics", {}).setdefault("precision_check", {})
        check.update(rows)
        if "bf16_frozen" in rows:
            r = rows["bf16_frozen"]
            check["fp32_eager_auc"] = r["fp32"]["all"]
            check["bf16_frozen_auc"] = r["bf16_frozen"]["all"]
            check["bf16_holds"] = r["holds"]
        if "bf16_frozen_amx" in rows:  # admits bf16 on AMX CPUs (ensemble.bf16_holds)
            check["bf16_holds_amx"] = rows["bf16_frozen_amx"]["holds"]
        path.write_text(json.dumps(man, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
