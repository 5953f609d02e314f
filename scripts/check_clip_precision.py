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

- ``int8_smooth``: int8 where it can hold, SmoothQuant-style (Xiao et al., ICML 2023): each
  block's attention (query / key / value, output projection) and first MLP layer in int8, with
  each input channel's range moved from the activations into the weights first (``--alpha``;
  folded exactly into the LayerNorm before, or into the value rows of ``qkv`` for the output
  projection, so the float32 network is unchanged), the scales measured on 64 training crops
  (``ffpp_methods/crops/*/train``), never on the validation faces. The second MLP layer stays
  float32: its input (after GELU) reaches 28 times its 99.9th percentile, and even smoothed it
  broke the ranking (score correlation 0.976-0.977 against float32, alpha 0.5 and 0.75, in a
  throwaway probe on every fourth validation face, 404 in all). Activations use all 8
  bits where FBGEMM runs VNNI kernels and 7 on older ones (whose products saturate otherwise),
  so the row is recorded per path: ``int8_smooth_vnni`` or ``int8_smooth_avx2``. ``--speed``
  adds the frozen graph's time per crop against float32 (one thread, two crops at a time: one
  app worker's share).

ONNX Runtime's int8 kernels are not an alternative on CPUs without VNNI: their u8s8 path
saturates (``scripts/verify_clip.py``: embedding cosine 0.44 against exact int8 math).

    python -m scripts.check_clip_precision [--only int8_dynamic|int8_smooth|bf16_frozen]
                                           [--write] [--isa AVX512_CORE_BF16|AVX2] [--speed]

``--isa AVX512_CORE_BF16`` measures, on a CPU with AMX, the AVX-512 BF16 path with every kernel
switch capped (oneDNN, MKL, torch's own); a cap of oneDNN alone is refused, because MKL would
still run bf16 matrix products on AMX.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from detector.settings import WEIGHTS_DIR
from detector.types import ScoringSettings
from scripts.calibrate import aucs, clip_scorer, video_scores
from scripts.crossval import all_faces, member_scores, score_tag, size_mark

NAME = "clip_vit_b16"


def eager_scorer(net):
    """p_fake of crops by ``net`` (the member, in eager mode), eight crops at a time."""
    from detector.models import get_spec
    from detector.models.preprocess import preprocess

    spec = get_spec(NAME)

    def scorer(crops, tracks):
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), 8):
                x = preprocess(np.asarray(crops[i : i + 8]), spec, torch.device("cpu"))
                out.append(torch.sigmoid(net(x).reshape(-1)).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    return scorer


def int8_scorer():
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from detector.models import create_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that it moves to torchao
        net = quantize_dynamic(
            create_model(NAME).eval(),
            {torch.nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
        )
    return eager_scorer(net)


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


def fbgemm_vnni() -> bool:
    """Whether FBGEMM's int8 products run on VNNI kernels here (AVX-512 VNNI, not capped)."""
    from detector.scoring.device import cpu_flags

    cap = os.environ.get("FBGEMM_ENABLE_INSTRUCTIONS", "").upper()
    return "avx512_vnni" in cpu_flags() and cap in ("", "AVX512_E1", "AVX512_E1_256")


def smooth_channels(net, crops: torch.Tensor, alpha: float) -> list[str]:
    """Move each input channel's range of the attention and first MLP layers of every block of
    ``net``'s timm ViT from the activations into the weights, exactly (the float32 outputs do
    not change): ``s = max|x|^alpha / max|w|^(1 - alpha)`` per channel, measured on ``crops``;
    the LayerNorm before ``qkv`` / ``fc1`` divides by ``s``, and the value rows of ``qkv``
    before the output projection. Returns the names of the linears smoothed."""
    vit = next(m for m in net.modules() if hasattr(m, "blocks") and hasattr(m, "patch_embed"))
    prefix = next(n + "." if n else "" for n, m in net.named_modules() if m is vit)
    todo = {}
    for i, b in enumerate(vit.blocks):
        for name, lin in (
            ("attn.qkv", b.attn.qkv),
            ("attn.proj", b.attn.proj),
            ("mlp.fc1", b.mlp.fc1),
        ):
            todo[f"{prefix}blocks.{i}.{name}"] = lin
    amax: dict[str, torch.Tensor] = {}

    def hook(name):
        def h(module, inp, out):
            a = inp[0].detach().abs().reshape(-1, inp[0].shape[-1]).amax(0)
            amax[name] = torch.maximum(amax.get(name, a), a)

        return h

    hooks = [lin.register_forward_hook(hook(n)) for n, lin in todo.items()]
    with torch.inference_mode():
        for i in range(0, len(crops), 16):
            net(crops[i : i + 16])
    for h in hooks:
        h.remove()
    done = []
    with torch.no_grad():
        for i, b in enumerate(vit.blocks):
            for name, lin in (
                ("attn.qkv", b.attn.qkv),
                ("attn.proj", b.attn.proj),
                ("mlp.fc1", b.mlp.fc1),
            ):
                key = f"{prefix}blocks.{i}.{name}"
                if key not in amax:  # not reached (the last block's class-token path)
                    continue
                a = amax[key].clamp(min=1e-5)
                s = a.pow(alpha) / lin.weight.abs().amax(0).clamp(min=1e-5).pow(1 - alpha)
                if name == "attn.proj":  # softmax(QK) V is linear in V: scale V's rows
                    c = s.numel()
                    b.attn.qkv.weight[2 * c :].div_(s[:, None])
                    b.attn.qkv.bias[2 * c :].div_(s)
                else:
                    ln = b.norm1 if name == "attn.qkv" else b.norm2
                    ln.weight.div_(s)
                    ln.bias.div_(s)
                lin.weight.mul_(s)
                done.append(key)
    return done


def calibration_crops(n_real: int = 32, n_per_method: int = 8) -> np.ndarray:
    """Training crops (``ffpp_methods/crops/*/train``, 320 px as the pipeline cuts faces):
    real ones and each method's, evenly spread over the sorted folder."""
    import cv2

    from detector.settings import data_dir
    from detector.training.dataset import resize_square

    root = data_dir() / "ffpp_methods" / "crops"
    out = []
    for sub, n in (("real", n_real), *((m, n_per_method) for m in METHODS)):
        if n == 0:
            continue
        files = sorted((root / sub / "train").iterdir())
        for f in files[:: max(1, len(files) // n)][:n]:
            out.append(resize_square(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), 320))
    return np.stack(out)


METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def int8_smooth_model(alpha: float):
    """The CLIP member with smoothed attention and first MLP layers in int8 (module doc)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from detector.models import create_model, get_spec
    from detector.models.preprocess import preprocess

    net = create_model(NAME).eval()
    crops = preprocess(calibration_crops(), get_spec(NAME), torch.device("cpu"))
    names = smooth_channels(net, crops, alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that it moves to torchao
        net = quantize_dynamic(
            net, {n: per_channel_dynamic_qconfig for n in names}, dtype=torch.qint8
        )
    if fbgemm_vnni():  # all 8 bits: VNNI's products do not saturate
        full = torch.ops.quantized.linear_dynamic
        for m in net.modules():
            if isinstance(m, DynamicLinear):
                m.forward = lambda x, m=m: full(
                    x, m._packed_params._packed_params, reduce_range=False
                ).to(x.dtype)
    return net


def int8_smooth_scorer(alpha: float = 0.75):
    return eager_scorer(int8_smooth_model(alpha))


def speed(net, reps: int = 6) -> float:
    """Median ms per crop of ``net``'s frozen graph, one thread, two crops at a time."""
    from detector.models import get_spec
    from detector.models.preprocess import preprocess

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = preprocess(calibration_crops(2, 0), get_spec(NAME), torch.device("cpu"))
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = torch.jit.freeze(torch.jit.trace(net, x, check_trace=False))
            for _ in range(3):
                g(x)
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                g(x)
                times.append((time.perf_counter() - t) / len(x) * 1000)
        return round(float(np.median(times)), 1)
    finally:
        torch.set_num_threads(threads)


SCORERS = {
    "int8_dynamic": int8_scorer,
    "int8_smooth": int8_smooth_scorer,
    "bf16_frozen": bf16_scorer,
}
TAGS = {"int8_dynamic": "int8dyn", "int8_smooth": "int8sq", "bf16_frozen": "bf16"}


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
        "AVX-512 BF16 path on an AMX CPU): reruns with oneDNN, MKL, FBGEMM and torch's kernels "
        "capped",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.75,
        help="int8_smooth: how much of each channel's range moves into the weights (0-1)",
    )
    p.add_argument(
        "--speed",
        action="store_true",
        help="int8_smooth: also time its frozen graph against float32's (ms per crop)",
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
        elif label == "int8_smooth":  # activations' bits depend on FBGEMM's kernels
            bits = "vnni" if fbgemm_vnni() else "avx2"
            tag = f"{sha}_{TAGS[label]}{args.alpha:g}_{bits}{mark}"
        else:
            tag = f"{sha}_{TAGS[label]}{mark}"
        scorer = SCORERS[label](args.alpha) if label == "int8_smooth" else SCORERS[label]()
        low = member_scores(NAME, faces, scorer, tag=tag)
        row = compare(faces, fp32, low, label)
        if label == "int8_smooth":
            row["alpha"] = args.alpha
            row["activation_bits"] = 8 if fbgemm_vnni() else 7
            row["int8_layers"] = "attn.qkv, attn.proj, mlp.fc1 of each block (smoothed)"
            if args.speed:
                from detector.models import create_model

                row["ms_per_crop_frozen_1thread"] = {
                    "fp32": speed(create_model(NAME).eval()),
                    "int8_smooth": speed(int8_smooth_model(args.alpha)),
                }
        row["seconds_this_run"] = round(time.perf_counter() - t0, 1)
        row["cpu_flags"] = list(cpu_flags())
        row["bf16_kernels"] = bf16_kernels() if label == "bf16_frozen" else None
        row["command"] = f"python -m scripts.check_clip_precision --only {label} --write" + (
            f" --isa {isa_cap()}" if isa_cap() else ""
        )
        if label == "int8_smooth":
            row["command"] += f" --alpha {args.alpha:g}" + (" --speed" if args.speed else "")
            label += "_vnni" if fbgemm_vnni() else "_avx2"
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
