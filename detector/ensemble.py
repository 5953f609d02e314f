"""Score face crops with every selected model: one batched forward per model, inference mode.

The DFDC winner's shape: all crops of the video are stacked once, every model runs over the stack
in batches, and the raw ``p_fake`` matrix (faces x models) is kept so that re-weighting and
re-aggregation never run a network again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detector.device import resolve_device
from detector.models import ModelCard, ModelSpec, create_model, get_spec, model_card


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    card: ModelCard
    module: nn.Module


def preprocess(crops: np.ndarray, spec: ModelSpec, device: torch.device) -> torch.Tensor:
    """uint8 N x H x W x 3 RGB crops -> normalised float N x 3 x S x S at the model's input size."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device).permute(0, 3, 1, 2).float()
    x = x / 255.0
    if x.shape[-1] != spec.input_size or x.shape[-2] != spec.input_size:
        size = (spec.input_size, spec.input_size)
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


class Ensemble:
    """A set of loaded models that turns face crops into a ``(faces, models)`` p_fake matrix.

    Construct once (loading is the slow part) and reuse; the modules are never mutated after
    loading, so one instance can be shared by concurrent analyses.

    Args:
        names: registry names of the members.
        device: "auto", "cpu" or "cuda".
        weights_dir: where ``<name>.safetensors`` and ``<name>.json`` live.
        batch_size: crops per forward pass.
    """

    def __init__(
        self,
        names: Sequence[str],
        device: str = "auto",
        weights_dir: Path | None = None,
        batch_size: int = 16,
    ) -> None:
        if not names:
            from detector.errors import BadSettingsError

            raise BadSettingsError("select at least one model")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.members: dict[str, LoadedModel] = {}
        for name in names:
            spec = get_spec(name)
            module = create_model(name, weights_dir=weights_dir, device=self.device)
            module = module.to(memory_format=torch.channels_last)
            self.members[name] = LoadedModel(spec, model_card(name, weights_dir), module)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.members)

    def score(self, crops: np.ndarray) -> np.ndarray:
        """p_fake for every crop and model, shape ``(len(crops), len(self.names))``."""
        out = np.zeros((len(crops), len(self.members)), dtype=np.float64)
        if len(crops) == 0:
            return out
        with torch.inference_mode():
            for j, member in enumerate(self.members.values()):
                for start in range(0, len(crops), self.batch_size):
                    batch = preprocess(
                        crops[start : start + self.batch_size], member.spec, self.device
                    )
                    logits = member.module(batch).float().reshape(-1)
                    out[start : start + len(batch), j] = torch.sigmoid(logits).cpu().numpy()
        return out
