"""Inception-ResNet-v2, the core paper's second network, trained here from random initialisation.

Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", AAAI 2017; paper 000 pairs it with Xception, paper 002 fine-tunes it.
No ImageNet weights for it exist offline (about 219 MB, bundled by no installable package), so
this member was trained from scratch on CPU at a reduced input side, with the trained
EfficientNet-Lite0 and Xception members as teachers (knowledge distillation) besides the labels.
``weights/inception_resnet_v2.json`` records exactly what was done and what it measured.
"""

from __future__ import annotations

from functools import partial

from detector.models.backbones import inception_resnet_v2
from detector.models.spec import ModelSpec

SPECS: list[ModelSpec] = []  # this family's members, read by detector.models.registry

SPECS.append(
    ModelSpec(
        name="inception_resnet_v2",
        family="Inception-ResNet-v2",
        factory=partial(inception_resnet_v2, 1),
        input_size=160,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        gradcam_layer="conv2d_7b",
        batch_size=16,
        description=(
            "Inception-ResNet-v2 (the core paper's pair to Xception), randomly initialised and "
            "trained here at 160 px on FaceForensics++ crops plus SBI/FWA fakes, distilled "
            "from the EfficientNet-Lite0 and Xception members. Not ImageNet-pretrained."
        ),
    )
)
