"""facenet-pytorch's Inception-ResNet-v1 with a 128-d bottleneck (imports facenet-pytorch, so it is
built only when a FaceNet network is: see :func:`detector.models.backbones.facenet_irv1`)."""

from __future__ import annotations

from facenet_pytorch import InceptionResnetV1
from torch import nn


class FaceNetIRv1(InceptionResnetV1):
    """facenet-pytorch's Inception-ResNet-v1 with a 128-d bottleneck and an optional logit head.

    The head (``logits``) sits on the batch-normalised embedding; with ``num_classes=0`` the
    forward pass returns the L2-normalised embedding, which is what the face-recognition checkpoint
    was trained to produce.
    """

    def __init__(
        self, num_classes: int = 1, embedding_size: int = 128, bn_eps: float = 1e-3
    ) -> None:
        super().__init__(pretrained=None, classify=False, num_classes=None)
        self.last_linear = nn.Linear(1792, embedding_size, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding_size, eps=bn_eps, momentum=0.1, affine=True)
        if num_classes > 0:
            self.classify = True
            self.num_classes = num_classes
            self.logits = nn.Linear(embedding_size, num_classes)
