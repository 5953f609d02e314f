"""Temporal members: one score per window of a tracked person's face crops (papers 001, 003, 004).

- ``resnext50_lstm``: paper 001's network. ResNeXt50_32x4d features (2048) of each 112 px crop,
  an LSTM with 2048 hidden units over the sequence, dropout 0.4, a 2-way linear layer (REAL/FAKE)
  on the time-averaged LSTM output. No ImageNet ResNeXt weights exist offline, so the backbone is
  trained here from random initialisation: per frame, distilled from the trained members, then
  frozen under the LSTM head (``detector.training.temporal``).
- ``lstm_efficientnet_lite0`` (and the ``lstm_xception`` variant measured beside it): the same
  LSTM head over an ImageNet-initialised backbone, the "CNN+LSTM" / "CNN-RNN" of papers 003 and
  004. The backbone is the trained per-frame member's trunk, frozen; only the head is trained.

Every temporal network takes ``(B, T, 3, S, S)`` and returns one fake logit per sequence,
``z_fake - z_real`` of its 2-way layer, so ``sigmoid`` of it is the softmax's P(fake) and it
plugs into :class:`detector.models.registry.FakeLogit` like every other member. The windowing of
a track into sequences lives in :mod:`detector.scoring.ensemble`. They declare no Grad-CAM layer: a
window's score is not a heatmap on one crop, and the Faces page says so.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from detector.models.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRETRAINED,
    efficientnet_lite0,
    keras_xception,
    resnext50_32x4d,
)
from detector.models.spec import SEQUENCE_LENGTH, ModelSpec


class LSTMHead(nn.Module):
    """Paper 001's head: LSTM over per-frame features, mean over time, dropout, 2-way linear."""

    def __init__(self, in_features: int, hidden: int = 2048, dropout: float = 0.4) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_features, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, F) features -> (B, 2) REAL/FAKE logits."""
        out, _ = self.lstm(features)
        return self.fc(self.dropout(out.mean(dim=1)))


class SequenceClassifier(nn.Module):
    """A per-frame backbone (pooled features) followed by :class:`LSTMHead`."""

    def __init__(self, backbone: nn.Module, in_features: int, hidden: int = 2048) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = LSTMHead(in_features, hidden)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) -> (B, T, F) per-frame features."""
        b, t = x.shape[:2]
        f = self.backbone(x.flatten(0, 1).contiguous(memory_format=torch.channels_last))
        return f.reshape(b, t, -1).float()

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.class_logits(x)
        return (z[:, 1] - z[:, 0]).unsqueeze(1)


def resnext50_lstm(hidden: int = 2048) -> SequenceClassifier:
    backbone = resnext50_32x4d(0)
    return SequenceClassifier(backbone, backbone.num_features, hidden)


def lstm_efficientnet_lite0(hidden: int = 2048) -> SequenceClassifier:
    return SequenceClassifier(efficientnet_lite0(0), 1280, hidden)


def lstm_xception(hidden: int = 2048) -> SequenceClassifier:
    return SequenceClassifier(keras_xception(0), 2048, hidden)


TEMPORAL_SPECS = {
    "resnext50_lstm": ModelSpec(
        name="resnext50_lstm",
        family="ResNeXt50 + LSTM (temporal)",
        factory=partial(resnext50_lstm),
        input_size=112,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        description=(
            "Paper 001: ResNeXt50_32x4d features of 112 px crops -> LSTM (2048) -> REAL/FAKE, "
            "over windows of one person's crops. Backbone trained here per frame from random "
            "initialisation (no ImageNet ResNeXt weights exist offline), distilled from "
            "EfficientNet-Lite0, then frozen under the LSTM head."
        ),
        kind="track",
        sequence_length=SEQUENCE_LENGTH,
        trunk="resnext50_32x4d",
    ),
    "lstm_efficientnet_lite0": ModelSpec(
        name="lstm_efficientnet_lite0",
        family="EfficientNet-Lite0 + LSTM (temporal)",
        factory=partial(lstm_efficientnet_lite0),
        input_size=224,
        mean=PRETRAINED["efficientnet_lite0_imagenet"].mean,
        std=PRETRAINED["efficientnet_lite0_imagenet"].std,
        description=(
            "CNN+LSTM (papers 003/004; paper 001's head): the trained EfficientNet-Lite0 "
            "member's trunk, frozen, -> LSTM (2048) -> REAL/FAKE over windows of one person's "
            "crops."
        ),
        kind="track",
        sequence_length=SEQUENCE_LENGTH,
        trunk="efficientnet_lite0",
    ),
    "lstm_xception": ModelSpec(
        name="lstm_xception",
        family="Xception + LSTM (temporal)",
        factory=partial(lstm_xception),
        input_size=224,
        mean=PRETRAINED["xception_imagenet"].mean,
        std=PRETRAINED["xception_imagenet"].std,
        description=(
            "CNN+LSTM: the trained Xception member's trunk, frozen, -> LSTM (2048) -> "
            "REAL/FAKE over windows of one person's crops."
        ),
        kind="track",
        sequence_length=SEQUENCE_LENGTH,
        trunk="xception",
    ),
}

SPECS: list[ModelSpec] = []  # this family's members, read by detector.models.registry

for _spec in TEMPORAL_SPECS.values():
    SPECS.append(_spec)
