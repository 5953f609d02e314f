"""Two-stream members (paper 004): an RGB stream and an optical-flow stream, features concatenated.

The flow stream sees the dense optical flow (OpenCV Farneback) between a face crop and the same
box in the *next raw frame* of the video (not the next sampled frame a second later): the
pipeline decodes that frame when a two-stream member is selected. The RGB stream is the trained
EfficientNet-Lite0 member's trunk, frozen; the flow CNN and the classifier are trained here.

- ``two_stream_frame``: per-frame, one (crop, flow) pair -> REAL/FAKE (paper 004's "Two-Stream
  per Frame").
- ``two_stream_video``: per-window, the stacked features of up to 10 pairs of one person are
  averaged -> REAL/FAKE (paper 004's "Two-Stream per Video"; mean instead of concatenation so
  that any window length works).

Inputs are packed as 5 channels: the 3 normalised RGB channels and the 2 flow channels (pixels
of motion at the input size, divided by :data:`FLOW_SCALE`), ``(B, 5, S, S)`` per frame or
``(B, T, 5, S, S)`` per window. Output: one fake logit, ``z_fake - z_real`` of the 2-way layer.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import torch
from torch import nn

from detector.models.backbones import PRETRAINED, efficientnet_lite0
from detector.models.spec import SEQUENCE_LENGTH, ModelSpec

FLOW_SCALE = 4.0  # flow (pixels at the input size) is divided by this and clipped to [-5, 5]
FLOW_SIZE = 112  # flow is computed at this side, then resized to the input size


def farneback_flow(a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
    """Dense flow from RGB crop ``a`` to ``b`` (same box, next frame): float32 (2, size, size).

    Computed on grey crops at :data:`FLOW_SIZE` px, scaled to pixels at ``size`` px.
    """
    ga = cv2.cvtColor(
        cv2.resize(a, (FLOW_SIZE, FLOW_SIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY
    )
    gb = cv2.cvtColor(
        cv2.resize(b, (FLOW_SIZE, FLOW_SIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY
    )
    flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    flow = cv2.resize(flow, (size, size), interpolation=cv2.INTER_LINEAR) * (size / FLOW_SIZE)
    return np.clip(flow / FLOW_SCALE, -5, 5).transpose(2, 0, 1).astype(np.float32)


def flow_batch(crops: np.ndarray, next_crops, size: int) -> torch.Tensor:
    """(N, 2, size, size) flow per crop; a crop without a next frame gets zero motion."""
    out = np.zeros((len(crops), 2, size, size), np.float32)
    for i, crop in enumerate(crops):
        nxt = next_crops[i] if next_crops is not None else None
        if nxt is not None:
            out[i] = farneback_flow(crop, nxt, size)
    return torch.from_numpy(out)


class FlowCNN(nn.Module):
    """A small CNN over 2-channel flow fields -> 128 features (trained from scratch)."""

    def __init__(self, width: int = 32, features: int = 128) -> None:
        super().__init__()
        layers, c = [], 2
        for out_c, k in ((width, 5), (width * 2, 3), (width * 4, 3), (features, 3)):
            layers += [
                nn.Conv2d(c, out_c, k, stride=2, padding=k // 2, bias=False),
                nn.BatchNorm2d(out_c),
                nn.ReLU(inplace=True),
            ]
            c = out_c
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = features

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(flow)).flatten(1)


class TwoStream(nn.Module):
    """RGB trunk + flow CNN, features concatenated (averaged over a window for ``per_video``)."""

    def __init__(self, per_video: bool) -> None:
        super().__init__()
        self.per_video = per_video
        self.rgb = efficientnet_lite0(0)
        self.flow = FlowCNN()
        n = 1280 + self.flow.num_features
        self.classifier = nn.Sequential(
            nn.Linear(n, 256), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(256, 2)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 5, S, S) packed inputs -> (N, 1408) concatenated RGB and flow features."""
        rgb = self.rgb(x[:, :3].contiguous(memory_format=torch.channels_last)).float()
        flow = self.flow(x[:, 3:].float()).float()
        return torch.cat([rgb, flow], dim=1)

    def class_logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """(B, F) or (B, T, F) -> (B, 2); windows are averaged over T."""
        return self.classifier(f.mean(dim=1) if f.ndim == 3 else f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_video:
            b, t = x.shape[:2]
            f = self.features(x.flatten(0, 1)).reshape(b, t, -1)
        else:
            f = self.features(x)
        z = self.class_logits_from_features(f)
        return (z[:, 1] - z[:, 0]).unsqueeze(1)


_B = PRETRAINED["efficientnet_lite0_imagenet"]

SPECS: list[ModelSpec] = []  # this family's members, read by detector.models.registry

for _name, _per_video in (("two_stream_frame", False), ("two_stream_video", True)):
    SPECS.append(
        ModelSpec(
            name=_name,
            family="Two-stream RGB + optical flow" + (" (temporal)" if _per_video else ""),
            factory=partial(TwoStream, _per_video),
            input_size=224,
            mean=_B.mean,
            std=_B.std,
            trunk="efficientnet_lite0",
            description=(
                "Paper 004's two-stream network, "
                + ("per video (window of up to 10 pairs)" if _per_video else "per frame")
                + ": the trained EfficientNet-Lite0 trunk (frozen) on the crop, a small CNN "
                "on the Farneback optical flow to the next raw frame, features concatenated "
                "-> REAL/FAKE."
            ),
            kind="track" if _per_video else "frame",
            sequence_length=SEQUENCE_LENGTH if _per_video else 1,
            inputs="crop_and_flow",
        )
    )
