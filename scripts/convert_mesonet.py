"""Convert the original MesoNet Keras weights (.h5) into safetensors + manifests under ``weights/``.

Reads each Keras 2.1.5 weight file with h5py (no TensorFlow), maps it into the PyTorch port in
:mod:`detector.models.families.mesonet`, checks the result on the four reference crops shipped beside the
weights, and writes ``<out>/<name>.safetensors`` and ``<out>/<name>.json``.

Mapping: Keras names layers ``conv2d_<k>`` in creation order, while the file lists them in
topological order (the MesoInception files list the 1x1 reductions before the 1x1 branch), so the
layers of each kind are sorted by their numeric suffix and zipped with the PyTorch modules of that
kind in definition order, which follows the Keras code. Every shape is checked. Conv kernels go from
(kh, kw, in, out) to (out, in, kh, kw); dense kernels are transposed, and the first dense kernel's
rows are permuted from Keras' NHWC flatten order to PyTorch's NCHW.

Run from the project root::

    python -m scripts.convert_mesonet [--src DIR] [--out DIR] [--eval-ffpp]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from detector.io.files import sha256_file
from detector.models.families.mesonet import Meso4, MesoInception4
from detector.settings import WEIGHTS_DIR, data_dir, shared_dir

# name -> (Keras file, factory, architecture, training data in the authors' words)
_DF_DATA = (
    "the MesoNet authors' own Deepfake dataset (aligned faces from deepfake videos collected "
    "online; about 5,100 forged and 7,250 real training images, per the MesoNet README/paper)"
)
_F2F_DATA = (
    "FaceForensics (Rössler et al. 2018) Face2Face videos, as used in the MesoNet paper; the "
    "shipped LICENSE/NOTICE state only the Apache-2.0 licence and copyright, not the training data"
)
MODELS: dict[str, tuple[str, type[nn.Module], str, str]] = {
    "meso4_df": ("Meso4_DF.h5", Meso4, "Meso4", _DF_DATA),
    "meso4_f2f": ("Meso4_F2F.h5", Meso4, "Meso4", _F2F_DATA),
    "mesoinception4_df": ("MesoInception_DF.h5", MesoInception4, "MesoInception4", _DF_DATA),
    "mesoinception4_f2f": ("MesoInception_F2F.h5", MesoInception4, "MesoInception4", _F2F_DATA),
}
DATA_TERMS = {
    "df": (
        "Weights are Apache-2.0. The authors' Deepfake dataset (faces from deepfake and real videos "
        "found online) has no terms in the shipped LICENSE/NOTICE; treat it as research use."
    ),
    "f2f": (
        "Weights are Apache-2.0, but they were trained on FaceForensics data, which its owners "
        "release for non-commercial research use only; the weights inherit that caveat."
    ),
}
KERAS_KIND = {nn.Conv2d: "conv2d", nn.BatchNorm2d: "batch_normalization", nn.Linear: "dense"}
FLATTEN_CHW = (16, 8, 8)  # shape entering the first dense layer of both networks


def read_keras_weights(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{layer_name: {weight_name: array}}`` for every layer with weights, from a Keras .h5."""
    layers: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as h5:
        root = h5.get("model_weights", h5)
        for raw in root.attrs["layer_names"]:
            layer = raw.decode() if isinstance(raw, bytes) else str(raw)
            group = root[layer]
            names = [
                n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]
            ]
            if names:
                # "conv2d_5/kernel:0" -> "kernel"
                layers[layer] = {
                    n.split("/")[-1].split(":")[0]: np.asarray(group[n]) for n in names
                }
    return layers


def _suffix(layer: str) -> int:
    match = re.fullmatch(r"[a-z0-9_]+?_(\d+)", layer)
    if match is None:
        raise ValueError(f"Keras layer name without a numeric suffix: {layer!r}")
    return int(match.group(1))


def keras_to_state_dict(
    net: nn.Module, keras: dict[str, dict[str, np.ndarray]]
) -> dict[str, torch.Tensor]:
    """Map Keras layer weights onto ``net``'s state dict (shape-checked, float32)."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    used: set[str] = set()
    for module_type, kind in KERAS_KIND.items():
        targets = [(n, m) for n, m in net.named_modules() if type(m) is module_type]
        sources = sorted(
            (layer for layer in keras if re.fullmatch(rf"{kind}_\d+", layer)), key=_suffix
        )
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} Keras {kind} layers for {len(targets)} {module_type}")
        for (prefix, module), layer in zip(targets, sources, strict=True):
            w = keras[layer]
            if isinstance(module, nn.Conv2d):
                pairs = {
                    "weight": w["kernel"].transpose(3, 2, 0, 1),
                    "bias": w["bias"],
                }
            elif isinstance(module, nn.BatchNorm2d):
                pairs = {
                    "weight": w["gamma"],
                    "bias": w["beta"],
                    "running_mean": w["moving_mean"],
                    "running_var": w["moving_variance"],
                }
            else:
                kernel = w["kernel"]  # (in, out), rows in flatten order of the input
                if kernel.shape[0] == int(np.prod(FLATTEN_CHW)):
                    c, h, wd = FLATTEN_CHW
                    kernel = (
                        kernel.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1)
                    )
                pairs = {"weight": kernel.T, "bias": w["bias"]}
            for key, value in pairs.items():
                name = f"{prefix}.{key}"
                tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
                if tensor.shape != state[name].shape:
                    raise ValueError(
                        f"{layer}/{key}: shape {tuple(tensor.shape)} != {name} {tuple(state[name].shape)}"
                    )
                state[name] = tensor
                used.add(name)
    missing = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"parameters not filled from the Keras file: {missing}")
    return state


def load_crops(paths: Iterable[Path]) -> torch.Tensor:
    """RGB crops resized to 256x256 with PIL bicubic, scaled to [0, 1], as N x 3 x 256 x 256.

    The shipped reference crops are 208-342 px square, so the resize matters: PIL's default
    (bicubic) reproduces the published reference outputs; Keras' ``nearest`` moves them by ~0.01.
    """
    arrays = []
    for p in paths:
        with Image.open(p) as im:
            rgb = im.convert("RGB").resize((256, 256), Image.Resampling.BICUBIC)
            arrays.append(np.asarray(rgb, dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


@torch.inference_mode()
def p_real(net: nn.Module, x: torch.Tensor, batch_size: int = 16) -> np.ndarray:
    """The original model's output, sigmoid of the P(real) logit."""
    out = [torch.sigmoid(net(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return torch.cat(out).reshape(-1).numpy()


def reference_crops(src: Path) -> dict[str, Path]:
    """The four crops shipped with the weights: ``{"df/df00204.jpg": path, ...}``."""
    root = src / "test_images"
    return {f"{p.parent.name}/{p.name}": p for p in sorted(root.glob("*/*.jpg"))}


def ffpp_video_auc(nets: dict[str, nn.Module], frames_dir: Path) -> dict[str, dict[str, float]]:
    """Frame- and video-level ROC AUC (fake positive) on the shared FaceForensics++ c23 crops."""
    from sklearn.metrics import roc_auc_score

    files = sorted((frames_dir / "real").glob("*.jpg")) + sorted(
        (frames_dir / "fake").glob("*.jpg")
    )
    labels = np.array([int(p.parent.name == "fake") for p in files])
    videos = np.array([f"{p.parent.name}/{p.stem.rsplit('_', 1)[0]}" for p in files])
    scores = {name: [] for name in nets}
    for i in range(0, len(files), 50):
        x = load_crops(files[i : i + 50])
        for name, net in nets.items():
            scores[name].append(1.0 - p_real(net, x))
    result = {}
    for name in nets:
        p_fake = np.concatenate(scores[name])
        vids = sorted(set(videos))
        v_score = [p_fake[videos == v].mean() for v in vids]
        v_label = [labels[videos == v][0] for v in vids]
        result[name] = {
            "frame_auc": round(float(roc_auc_score(labels, p_fake)), 3),
            "video_auc_mean_p_fake": round(float(roc_auc_score(v_label, v_score)), 3),
            "n_frames": len(files),
            "n_videos": len(vids),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=shared_dir() / "models/mesonet")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument(
        "--eval-ffpp",
        action="store_true",
        help="also measure AUC on <data>/ffpp_frames and record it in the manifests",
    )
    args = parser.parse_args(argv)
    missing = [f for f, *_ in MODELS.values() if not (args.src / f).is_file()]
    if missing:
        parser.error(f"Keras weights not found in {args.src}: {', '.join(missing)}")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    crops = reference_crops(args.src)
    x_ref = load_crops(crops.values()) if crops else None
    nets: dict[str, nn.Module] = {}
    for name, (h5_name, factory, _, _) in MODELS.items():
        net = factory().eval()
        net.load_state_dict(keras_to_state_dict(net, read_keras_weights(args.src / h5_name)))
        nets[name] = net

    auc = {}
    if args.eval_ffpp:
        auc = ffpp_video_auc(nets, data_dir() / "ffpp_frames")

    command = " ".join(["python -m scripts.convert_mesonet", *argv])
    for name, (h5_name, _, architecture, trained_on) in MODELS.items():
        net = nets[name]
        st_path = args.out / f"{name}.safetensors"
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        # one metadata key only: safetensors writes several in random order, changing the sha256
        save_file(state, str(st_path), metadata={"format": "pt"})
        metrics: dict = {}
        if x_ref is not None:
            metrics["reference_crops_p_real"] = {
                k: round(float(v), 4) for k, v in zip(crops, p_real(net, x_ref), strict=True)
            }
        if name in auc:
            metrics["ffpp_c23_shared_frames"] = {
                **auc[name],
                "note": (
                    "ROC AUC for p_fake on ../shared/data/ffpp_frames (100 real + 100 fake "
                    "FaceForensics++ c23 videos, 10 crops each; video score = mean p_fake); "
                    "fakes are probably Face2Face, whose FaceForensics sources may overlap the "
                    "F2F models' training videos"
                ),
            }
        manifest = {
            "name": name,
            "architecture": f"{architecture} (Afchar et al. 2018, MesoNet), PyTorch port",
            "input_size": 256,
            "normalisation": "RGB in [0,1]",
            "output": "logit of P(real); p_fake = 1 - sigmoid",
            "sha256": sha256_file(st_path),
            "init_from": {"file": h5_name, "sha256": sha256_file(args.src / h5_name)},
            "source": "github DariusAf/MesoNet original weights, via ../shared/models/mesonet",
            "licence": "Apache-2.0 (MesoNet authors); see NOTICE",
            "trained_on": trained_on,
            "data_terms": DATA_TERMS[name.rsplit("_", 1)[1]],
            "conversion_command": command,
            "metrics": metrics,
        }
        if metrics.get("reference_crops_p_real"):
            manifest["notes"] = (
                "reference_crops_p_real: the four crops in ../shared/models/mesonet/test_images, "
                "resized to 256x256 with PIL bicubic, RGB/255."
            )
        if architecture == "Meso4":
            manifest["notes"] = (
                manifest.get("notes", "") + " Head follows the published classifiers.py "
                "(LeakyReLU(0.1) after Dense(16)), although the Meso4 .h5 layer list has no "
                "leaky_re_lu layer; in a one-off check, dropping it changed the FF++ AUCs "
                "by at most 0.003 but moved the reference crops away from the published values."
            ).strip()
        (args.out / f"{name}.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"{name}: {st_path} sha256={manifest['sha256'][:12]} {json.dumps(metrics)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
