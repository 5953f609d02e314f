"""EfficientNet-Lite0 deepfake detector, fine-tuned from ImageNet by :mod:`detector.training.train`.

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019;
the Lite variant (no squeeze-excitation, ReLU6) of the TF-Lite release, in timm's
``tf_efficientnet_lite0``. EfficientNets were the backbone of the DFDC winners. The whole network
is fine-tuned on face crops with a single fake logit; see ``weights/efficientnet_lite0.json``.
"""

from __future__ import annotations

from functools import partial

from detector.models.backbones import PRETRAINED, efficientnet_lite0
from detector.models.spec import ModelSpec

_B = PRETRAINED["efficientnet_lite0_imagenet"]

SPECS: list[ModelSpec] = []  # this family's members, read by detector.models.registry

SPECS.append(
    ModelSpec(
        name="efficientnet_lite0",
        family="EfficientNet",
        factory=partial(efficientnet_lite0, 1),
        input_size=224,
        mean=_B.mean,
        std=_B.std,
        gradcam_layer=_B.gradcam_layer,
        batch_size=8,
        description=(
            "EfficientNet-Lite0 (ImageNet init), fully fine-tuned at 224 px on FaceForensics++ "
            "crops plus self-blended (SBI) and face-warping (FWA) fakes of real faces."
        ),
    )
)
