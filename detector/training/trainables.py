"""The frame members that `python -m detector train` can train: their backbone, initialisation and input, and how a network is built and put in train mode."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch, timm and facenet-pytorch load lazily: `--help` stays fast
    from torch import nn


@dataclass(frozen=True)
class Trainable:
    """An architecture the trainer can fine-tune.

    Attributes:
        name: output name (``<out>/<name>.safetensors``), also the registry name of the
            shipped members (``resnext50_32x4d`` is not one: it becomes a temporal trunk).
        architecture: plain description for the manifest.
        factory: builds the bare single-logit network.
        pretrained: key of :data:`detector.models.backbones.PRETRAINED` to initialise from, or None.
        input_size, mean, std: the input the network was pretrained with (RGB in [0, 1]); the
            trained member's own input is on its ``ModelSpec``.
        head: state-dict prefix of the logit head (dropped when the trained network becomes
            the frozen trunk of a temporal or two-stream member).
    """

    name: str
    architecture: str
    factory: Callable[[], nn.Module]
    pretrained: str | None
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    head: str


def trainables() -> dict[str, Trainable]:
    """The architectures ``python -m detector train --model`` knows, by output name."""
    from functools import partial

    from detector.models.backbones import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        PRETRAINED,
        efficientnet_lite0,
        facenet_irv1,
        inception_resnet_v2,
        keras_xception,
        resnext50_32x4d,
    )

    def from_backbone(name: str, architecture: str, key: str, factory) -> Trainable:
        b = PRETRAINED[key]
        return Trainable(
            name, architecture, partial(factory, 1), key, b.input_size, b.mean, b.std, b.head[0]
        )

    out = [
        from_backbone(
            "efficientnet_lite0",
            "EfficientNet-Lite0 (timm tf_efficientnet_lite0), single fake logit",
            "efficientnet_lite0_imagenet",
            efficientnet_lite0,
        ),
        from_backbone(
            "xception",
            "Xception (Chollet 2017; timm legacy_xception made Keras-exact), single fake logit",
            "xception_imagenet",
            keras_xception,
        ),
        from_backbone(
            "facenet_irv1",
            "Inception-ResNet-v1 (FaceNet, facenet-pytorch), 128-d bottleneck + fake logit",
            "inception_resnet_v1_msceleb",
            facenet_irv1,
        ),
        Trainable(
            "inception_resnet_v2",
            "Inception-ResNet-v2 (Szegedy et al. 2017; timm inception_resnet_v2), single fake "
            "logit, randomly initialised (no ImageNet weights exist offline)",
            partial(inception_resnet_v2, 1),
            None,
            299,
            (0.5, 0.5, 0.5),  # Inception scaling, x / 127.5 - 1, as the member is trained
            (0.5, 0.5, 0.5),
            "classif.",
        ),
        # paper 001's backbone, trained per frame (not shipped as a member: it becomes the frozen
        # trunk of ``resnext50_lstm``, see detector.training.temporal)
        Trainable(
            "resnext50_32x4d",
            "ResNeXt50_32x4d (Xie et al. 2017; timm resnext50_32x4d), single fake logit, randomly "
            "initialised (no ImageNet weights exist offline)",
            partial(resnext50_32x4d, 1),
            None,
            112,
            IMAGENET_MEAN,
            IMAGENET_STD,
            "fc.",
        ),
    ]
    return {t.name: t for t in out}


def trainable_names() -> tuple[str, ...]:
    """What ``python -m detector train --model`` accepts."""
    return tuple(trainables())


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def build_model(t: Trainable, freeze: Sequence[str] = (), pretrained_root: Path | None = None):
    """The network with its initialisation loaded and the ``freeze`` prefixes frozen."""
    from torch import nn

    from detector.models.backbones import PRETRAINED, load_pretrained

    net = t.factory()
    if t.pretrained:
        load_pretrained(net, t.pretrained, directory=pretrained_root)
        # a fresh, small head: timm's "goog" init draws a 1-output head from U(-1, 1), which
        # gives logits of +-10 on pretrained features and a first epoch spent undoing them
        for n, p in net.named_parameters():
            if n.startswith(PRETRAINED[t.pretrained].head):
                nn.init.normal_(p, std=0.01) if p.ndim > 1 else nn.init.zeros_(p)
    names = {n for n, _ in net.named_modules()}
    unknown = [p for p in freeze if p not in names]
    if unknown:
        raise ValueError(f"--freeze: no module {unknown} in {t.name}")
    for n, p in net.named_parameters():
        if _matches(n, freeze):
            p.requires_grad_(False)
    return net


def set_train_mode(net: nn.Module, freeze: Sequence[str], bn_eval: bool) -> None:
    """Train mode, except frozen modules (and, with ``bn_eval``, every BatchNorm) in eval mode."""
    from torch import nn

    net.train()
    for n, m in net.named_modules():
        if _matches(n, freeze) or (bn_eval and isinstance(m, nn.modules.batchnorm._BatchNorm)):
            m.eval()


def init_provenance(t: Trainable, root: Path | None) -> tuple[dict | str, str]:
    from detector.models.backbones import pretrained_dir

    if not t.pretrained:
        return "random initialisation", "n/a (random initialisation)"
    man = json.loads(((root or pretrained_dir()) / f"{t.pretrained}.json").read_text("utf-8"))
    info = {
        "file": f".cache/pretrained/{t.pretrained}.safetensors",
        "sha256": man.get("sha256"),
        "source": man.get("source", man.get("source_package", "")),
    }
    for key in ("package", "source_package", "original_file", "url"):
        if key in man:
            info[key] = man[key]
    return info, str(man.get("licence", man.get("license", "see the pretrained manifest")))


def load_trunk(name: str, folder: Path) -> tuple[dict, dict]:
    """A trained per-frame network's weights without its logit head (sha256-checked), and its
    manifest: the frozen trunk of a temporal or two-stream member."""
    from detector.models.weights import load_state_dict

    manifest = json.loads((folder / f"{name}.json").read_text("utf-8"))
    state = load_state_dict(folder / f"{name}.safetensors", manifest["sha256"])
    head = trainables()[name].head
    return {k: v for k, v in state.items() if not k.startswith(head)}, manifest
