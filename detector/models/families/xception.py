"""Xception deepfake detector, fine-tuned from the Keras ImageNet weights by :mod:`detector.training.train`.

Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017; the network
of FaceForensics++ (Rössler et al., ICCV 2019) and of the core paper's ensemble. Built as timm's
``legacy_xception`` made Keras-exact (:func:`detector.models.backbones.keras_xception`). On CPU
the entry flow stays frozen at its ImageNet weights and the rest is trained at a reduced
resolution (see ``weights/xception.json`` for what exactly was done).
"""

from __future__ import annotations

from functools import partial

from detector.models.backbones import PRETRAINED, keras_xception
from detector.models.spec import ModelSpec

_B = PRETRAINED["xception_imagenet"]

SPECS: list[ModelSpec] = []  # this family's members, read by detector.models.registry

SPECS.append(
    ModelSpec(
        name="xception",
        family="Xception",
        factory=partial(keras_xception, 1),
        input_size=224,
        mean=_B.mean,
        std=_B.std,
        gradcam_layer=_B.gradcam_layer,
        batch_size=8,
        description=(
            "Xception (Keras ImageNet init), entry flow frozen, middle and exit flows fine-tuned "
            "at 224 px (not the original 299 px) on FaceForensics++ crops plus SBI/FWA fakes."
        ),
    )
)
