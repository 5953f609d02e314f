"""Pretrained backbones for the trained ensemble: bare factories and an offline, checked loader.

Three architectures whose published pretrained weights are converted (``scripts/convert_pretrained.py``)
into safetensors under ``<cache>/pretrained/``. They are *initialisations* for training detectors,
not detectors themselves, and they are never committed:

- Xception (Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017),
  the Keras ImageNet weights, in timm's ``legacy_xception`` made to compute exactly what Keras does.
- EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
  Networks", ICML 2019), the ImageNet weights of the TF-Lite variant, in timm's
  ``tf_efficientnet_lite0``.
- Inception-ResNet-v1 as used by FaceNet (Schroff et al., "FaceNet: A Unified Embedding for Face
  Recognition and Clustering", CVPR 2015), a 128-d face-embedding checkpoint, in facenet-pytorch's
  ``InceptionResnetV1``.

Every factory takes ``num_classes``: ``1`` (the default) gives the ensemble's single fake logit,
``0`` gives the pooled features (the L2-normalised embedding for FaceNet), as timm does. Factories
build randomly initialised networks and never download anything; :func:`load_pretrained` fills in
the converted weights after checking their sha256.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from detector import settings
from detector.errors import WeightsIntegrityError, WeightsMissingError
from detector.models.weights import load_state_dict

__all__ = [
    "PRETRAINED",
    "PretrainedBackbone",
    "efficientnet_lite0",
    "facenet_irv1",
    "inception_resnet_v2",
    "keras_xception",
    "load_pretrained",
    "pretrained_dir",
]

KERAS_BN_EPS = 1e-3
# torchvision's ImageNet normalisation (RGB in [0, 1]), for the networks trained here from scratch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def keras_xception(num_classes: int = 1) -> nn.Module:
    """timm's ``legacy_xception``, changed to match Keras' ``Xception`` to float precision.

    Keras pads its stride-2 max pools "same", which for an even input side adds the extra row and
    column at the bottom/right only (299 px input: the 74 -> 37 pool); torch's symmetric padding
    shifts the grid by one pixel there. Keras' BatchNormalization epsilon is 1e-3, not 1e-5.
    Input: RGB at 299 px scaled as ``x / 127.5 - 1``.
    """
    from timm.layers.pool2d_same import MaxPool2dSame
    from timm.models.xception import Xception

    net = Xception(num_classes=num_classes)
    for block in (net.block1, net.block2, net.block3, net.block12):
        if not isinstance(block.rep[-1], nn.MaxPool2d):
            raise RuntimeError("timm's Xception changed: a strided block no longer ends in a pool")
        block.rep[-1] = MaxPool2dSame(3, 2)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = KERAS_BN_EPS
    return net


def efficientnet_lite0(num_classes: int = 1) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` (TF "same" padding, BN eps 1e-3, ReLU6, no SE).

    Input: RGB at 224 px scaled as ``(255 x - 127) / 128``.
    """
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)


def inception_resnet_v2(num_classes: int = 1) -> nn.Module:
    """timm's ``inception_resnet_v2`` (Szegedy et al., "Inception-v4, Inception-ResNet and the
    Impact of Residual Connections on Learning", AAAI 2017), the core paper's second network.

    No ImageNet weights for it exist offline, so it is always built randomly initialised and
    trained here (see ``weights/inception_resnet_v2.json``). Inception input scaling:
    ``x / 127.5 - 1``. Works at any side >= 75 px; trained at a reduced side on CPU.
    """
    import timm

    return timm.create_model("inception_resnet_v2", pretrained=False, num_classes=num_classes)


def resnext50_32x4d(num_classes: int = 1) -> nn.Module:
    """timm's ``resnext50_32x4d`` (Xie et al., "Aggregated Residual Transformations", CVPR 2017),
    paper 001's backbone. No ImageNet weights for it exist offline: randomly initialised, trained
    here per frame (distilled from the trained members) and then frozen under the LSTM head of
    ``resnext50_lstm``. ``num_classes=0`` gives the 2048-d pooled features.
    """
    import timm

    return timm.create_model("resnext50_32x4d", pretrained=False, num_classes=num_classes)


def facenet_irv1(num_classes: int = 1) -> nn.Module:
    """Inception-ResNet-v1 (FaceNet) with a 128-d embedding; see :class:`FaceNetIRv1`.

    Input: RGB face crop at 160 px, standardised per image (``(x - mean) / std`` over all pixels)
    in the original; the spec's fixed mean/std approximate that.
    """
    from detector.models.facenet_net import FaceNetIRv1

    return FaceNetIRv1(num_classes=num_classes, bn_eps=KERAS_BN_EPS)


@dataclass(frozen=True)
class PretrainedBackbone:
    """A converted pretrained backbone: how to build it, feed it and load it.

    Attributes:
        name: stem of ``<cache>/pretrained/<name>.safetensors`` and ``<name>.json``.
        factory: builds the bare network; takes ``num_classes``.
        input_size: square side in pixels used in pretraining.
        mean: per-channel mean subtracted from RGB in [0, 1].
        std: per-channel std dividing RGB in [0, 1].
        gradcam_layer: dotted path of the last spatial feature layer inside the factory's network.
        head: state-dict key prefixes of the task head; these are the only keys that may be absent
            from, or skipped when loading, the pretrained file.
    """

    name: str
    factory: Callable[..., nn.Module]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    gradcam_layer: str
    head: tuple[str, ...]


PRETRAINED: dict[str, PretrainedBackbone] = {
    b.name: b
    for b in (
        PretrainedBackbone(
            name="xception_imagenet",
            factory=keras_xception,
            input_size=299,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            gradcam_layer="act4",
            head=("fc.",),
        ),
        PretrainedBackbone(
            name="efficientnet_lite0_imagenet",
            factory=efficientnet_lite0,
            input_size=224,
            mean=(127 / 255, 127 / 255, 127 / 255),
            std=(128 / 255, 128 / 255, 128 / 255),
            gradcam_layer="bn2",
            head=("classifier.",),
        ),
        PretrainedBackbone(
            name="inception_resnet_v1_msceleb",
            factory=facenet_irv1,
            input_size=160,
            # The original standardises each image; face crops average mean 0.5, std 0.19 (FF++
            # crops with margin) to 0.25 (tight crops).
            mean=(0.5, 0.5, 0.5),
            std=(0.22, 0.22, 0.22),
            gradcam_layer="block8",
            head=("logits.",),
        ),
    )
}


def pretrained_dir(root: Path | None = None) -> Path:
    """Where converted backbones live: ``<root>/pretrained``, by default
    :func:`detector.settings.pretrained_dir` (git-ignored)."""
    return root / "pretrained" if root else settings.pretrained_dir()


def load_pretrained(net: nn.Module, name: str, *, directory: Path | None = None) -> nn.Module:
    """Load a converted backbone into ``net`` in place, after its sha256 check.

    Every parameter and buffer outside the backbone's head must come from the file; head keys
    missing from it, or of another shape (e.g. a 1000-class ImageNet classifier loaded into a
    1-logit net), keep their random initialisation.

    Args:
        net: a network built by the backbone's factory (any ``num_classes``).
        name: a key of :data:`PRETRAINED`.
        directory: folder of the safetensors and manifest; default :func:`pretrained_dir`.

    Returns:
        ``net``, for chaining.
    """
    if name not in PRETRAINED:
        raise WeightsMissingError(f"no pretrained backbone {name!r}; known: {sorted(PRETRAINED)}")
    head = PRETRAINED[name].head
    folder = directory or pretrained_dir()
    manifest = folder / f"{name}.json"
    if not manifest.is_file():
        raise WeightsMissingError(
            f"pretrained backbone {name!r} is not in {folder}: run "
            f"`python scripts/convert_pretrained.py --only {name}` to download and convert it"
        )
    sha256 = json.loads(manifest.read_text(encoding="utf-8"))["sha256"]
    state = load_state_dict(folder / f"{name}.safetensors", sha256)

    own = net.state_dict()

    def is_head(key: str) -> bool:
        return key.startswith(head)

    state = {
        k: v for k, v in state.items() if not (is_head(k) and k in own and own[k].shape != v.shape)
    }
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not is_head(k)]
    unexpected = [k for k in result.unexpected_keys if not is_head(k)]
    if missing or unexpected:
        raise WeightsIntegrityError(
            f"{name}: the file does not fit this network (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}); build it with the backbone's factory"
        )
    return net
