"""What the rest of the project knows about one ensemble member: :class:`ModelSpec`, and the
:class:`FakeLogit` wrapper that makes every network output one logit for "fake".

Every network built by :func:`detector.models.registry.create_model` returns one *fake logit* per
input image, shape ``(N, 1)``: ``sigmoid(logit) == p_fake``. Models whose original output is about
the real class (MesoNet outputs P(real)) are wrapped so that the sign is flipped once, here, and
nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

SEQUENCE_LENGTH = 10  # frames per window: ffpp_frames has 10 per video; 10 s of a track at 1 fps


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline, the UI and the tests need to know about one ensemble member.

    Attributes:
        name: registry key, also the stem of ``weights/<name>.safetensors`` and ``<name>.json``.
        family: architecture family shown to analysts ("MesoNet", "Xception", ...).
        factory: builds the bare network (no weights loaded).
        input_size: square side in pixels the face crop is resized to (audio: samples per
            window).
        mean: per-channel mean subtracted from RGB in [0, 1].
        std: per-channel std dividing RGB in [0, 1].
        positive_class: which class the network's single logit is for; "real" logits are negated.
        gradcam_layer: dotted attribute path of the Grad-CAM target layer inside the *bare* network.
        description: one line for model cards.
        kind: "frame" models score one crop; "track" models score a sequence of crops of one
            person; "audio" models score windows of the audio track (``input_size`` samples at
            ``sample_rate``), never faces.
        sequence_length: frames per sequence for "track" models.
        inputs: "crop", or "crop_and_flow": the member also needs each crop's next raw frame
            (the pipeline then decodes it) to compute optical flow.
        batch_size: crops per forward pass; the fastest on this project's 2-core CPU, as
            ``python -m scripts.bench --batch-sweep`` measures it (a speed setting only: scores
            do not depend on it).
        base_loader: for members whose weights file holds only what training changed (the
            CLIP member: head and LayerNorms), loads the frozen backbone (sha256-checked) into
            the bare network first; the file must then hold every key outside ``base_prefix``.
        base_prefix: the state-dict prefix the base loader fills.
        gradcam_tokens: the Grad-CAM layer outputs ViT tokens (class token first, then a square
            grid of patches) rather than a feature map.
        trunk: the per-frame network whose trained trunk this member reuses, frozen (temporal
            and two-stream members); its trainer starts from that network's weights.
        sample_rate: audio members: the waveform's rate in Hz (0 for the face members).
    """

    name: str
    family: str
    factory: Callable[[], nn.Module]
    input_size: int
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    positive_class: Literal["fake", "real"] = "fake"
    gradcam_layer: str = ""
    description: str = ""
    kind: Literal["frame", "track", "audio"] = "frame"
    sequence_length: int = 1
    inputs: Literal["crop", "crop_and_flow"] = "crop"
    batch_size: int = 16
    base_loader: Callable[[nn.Module], None] | None = None
    base_prefix: str = ""
    gradcam_tokens: bool = False
    trunk: str = ""
    sample_rate: int = 0


class FakeLogit(nn.Module):
    """Wraps a bare network so its output is always one logit for "fake", shape (N, 1)."""

    def __init__(self, net: nn.Module, positive_class: Literal["fake", "real"]) -> None:
        super().__init__()
        self.net = net
        self.sign = -1.0 if positive_class == "real" else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return self.sign * out.reshape(out.shape[0], -1)[:, :1]
