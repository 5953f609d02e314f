"""Face crops to network input, one implementation for scoring, Grad-CAM and every trainer.

What a member expects is frozen on its :class:`~detector.models.spec.ModelSpec` (input size, mean,
std, and whether it also takes optical flow), as timm keeps a pretrained config beside each model.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from detector.models import ModelSpec


def as_batch(crops: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 N x H x W x 3 -> uint8 N x 3 x H x W (a channels-last view, no copy on CPU)."""
    return torch.from_numpy(np.ascontiguousarray(crops)).to(device).permute(0, 3, 1, 2)


def resized_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 N x 3 x H x W -> float N x 3 x S x S in [0, 1] (antialiased bilinear, as trained).

    On a CPU the resize runs on the uint8 pixels (torch's vectorised uint8 path, about 10x faster
    than on floats at 320 -> 224 px) and rounds each pixel to the nearest level, a difference of
    at most half a grey level from resizing floats as the training did;
    ``scripts/check_precision.py`` measures the validation AUC through this path.
    """

    def resize(t: torch.Tensor) -> torch.Tensor:
        if t.shape[-1] == size and t.shape[-2] == size:
            return t
        return F.interpolate(t, (size, size), mode="bilinear", antialias=True, align_corners=False)

    if x.device.type == "cpu":
        return resize(x).float() / 255.0
    return resize(x.float() / 255.0)


def normalised(x: torch.Tensor, mean, std) -> torch.Tensor:
    """float N x 3 x S x S in [0, 1] -> ``(x - mean) / std`` per channel, channels-last."""
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def to_input(
    images: np.ndarray, mean, std, device: torch.device, size: int | None = None
) -> torch.Tensor:
    """uint8 N x H x W x 3 RGB -> normalised float N x 3 x S x S (``size`` or as it is), exactly
    as :func:`preprocess` does for a member with that size, mean and std."""
    x = as_batch(images, device)
    return normalised(resized_to(x, size or x.shape[-1]), mean, std)


def preprocess(
    crops: np.ndarray, spec: ModelSpec, device: torch.device, next_crops=None
) -> torch.Tensor:
    """uint8 N x H x W x 3 RGB crops -> normalised float N x 3 x S x S at the model's input size.

    Members with ``inputs == "crop_and_flow"`` get 2 more channels: the optical flow from each crop
    to ``next_crops[i]`` (the same box in the next raw frame; zero motion where it is None).
    """
    x = normalised(resized_to(as_batch(crops, device), spec.input_size), spec.mean, spec.std)
    return with_flow(x, crops, spec, device, next_crops)


def with_flow(x, crops, spec: ModelSpec, device, next_crops) -> torch.Tensor:
    if spec.inputs != "crop_and_flow":
        return x
    from detector.models.families.two_stream import flow_batch

    flow = flow_batch(crops, next_crops, spec.input_size).to(device)
    return torch.cat([x, flow.contiguous(memory_format=torch.channels_last)], dim=1)
