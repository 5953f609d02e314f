"""Inception-ResNet-v1 (FaceNet) deepfake detector, fine-tuned from a face-recognition model.

Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning", AAAI 2017 (the v1 variant), as trained for face recognition by FaceNet (Schroff et al.,
CVPR 2015) on MS-Celeb-1M, in facenet-pytorch's ``InceptionResnetV1``. This is NOT the
Inception-ResNet-v2 of the core paper: no ImageNet Inception-ResNet-v2 weights are available
offline, and v1 with a face-trained initialisation is the closest Inception-ResNet we can train.
A fake logit sits on the 128-d face embedding; see ``weights/facenet_irv1.json``.
"""

from __future__ import annotations

from functools import partial

from detector.models.backbones import PRETRAINED, facenet_irv1
from detector.models.spec import ModelSpec

_B = PRETRAINED["inception_resnet_v1_msceleb"]

SPECS: list[ModelSpec] = []  # this family's members, read by detector.models.registry

SPECS.append(
    ModelSpec(
        name="facenet_irv1",
        family="Inception-ResNet-v1 (FaceNet)",
        factory=partial(facenet_irv1, 1),
        input_size=160,
        mean=_B.mean,
        std=_B.std,
        gradcam_layer=_B.gradcam_layer,
        description=(
            "Inception-ResNet-v1 (FaceNet, MS-Celeb-1M face-recognition init; not the paper's "
            "Inception-ResNet-v2), fine-tuned at 160 px on FaceForensics++ crops plus SBI/FWA fakes."
        ),
    )
)
