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
    low_precision: bool = False


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX (bf16 is then fast, not emulated)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_holds(card: ModelCard, tolerance: float = 0.005) -> bool:
    """Whether the model's manifest shows validation AUC unchanged (within ``tolerance``) in bf16."""
    m = card.metrics or {}
    fp32 = (m.get("val") or {}).get("frame_auc")
    bf16 = m.get("bf16_val_auc")
    if isinstance(bf16, dict):
        bf16 = bf16.get("frame_auc")
    return fp32 is not None and bf16 is not None and abs(float(fp32) - float(bf16)) <= tolerance


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
        precision: "fp32", or "auto": bf16 autocast for the members whose manifest shows the
            validation AUC holds in bf16, on hardware that runs bf16 natively (GPU or a CPU with
            AVX-512 BF16 / AMX); fp32 for the rest.
    """

    def __init__(
        self,
        names: Sequence[str],
        device: str = "auto",
        weights_dir: Path | None = None,
        batch_size: int = 16,
        precision: str = "auto",
    ) -> None:
        if not names:
            from detector.errors import BadSettingsError

            raise BadSettingsError("select at least one model")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        native = self.device.type == "cuda" or cpu_has_native_bf16()
        self.members: dict[str, LoadedModel] = {}
        for name in names:
            spec = get_spec(name)
            card = model_card(name, weights_dir)
            module = create_model(name, weights_dir=weights_dir, device=self.device)
            module = module.to(memory_format=torch.channels_last)
            low = precision == "auto" and native and bf16_holds(card)
            self.members[name] = LoadedModel(spec, card, module, low)

    @property
    def precision(self) -> str:
        """ "bf16" if every member runs in bf16, "fp32" if none does, else "mixed"."""
        lows = {m.low_precision for m in self.members.values()}
        return "mixed" if len(lows) > 1 else ("bf16" if lows == {True} else "fp32")

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
                    with torch.autocast(
                        self.device.type, dtype=torch.bfloat16, enabled=member.low_precision
                    ):
                        logits = member.module(batch).float().reshape(-1)
                    out[start : start + len(batch), j] = torch.sigmoid(logits).cpu().numpy()
        return out
