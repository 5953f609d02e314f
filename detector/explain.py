"""Grad-CAM heatmaps (Selvaraju et al. 2017) for one face crop and one model, on demand.

pytorch-grad-cam's small API: ``GradCAM(model, target_layers)`` used as a context manager so its
hooks are released after every call. Each :class:`Explainer` owns a private copy of its network:
the copy shared by analyses (cached in the app) never carries a hook. Grad-CAM needs gradients, so
it runs outside ``torch.inference_mode``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from detector.ensemble import preprocess
from detector.models import create_model, get_spec


@dataclass(frozen=True, eq=False)
class CamResult:
    """A heatmap in [0, 1] at crop resolution, its overlay on the crop, and the model's p_fake."""

    model: str
    heatmap: np.ndarray
    overlay: np.ndarray
    p_fake: float


def _resolve(module: torch.nn.Module, dotted: str) -> torch.nn.Module:
    for part in dotted.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def overlay_heatmap(crop: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured heatmap over an RGB uint8 crop."""
    heat = cv2.resize(heatmap.astype(np.float32), (crop.shape[1], crop.shape[0]))
    colour = cv2.applyColorMap(np.uint8(255 * np.clip(heat, 0, 1)), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    return np.uint8((1 - alpha) * crop + alpha * colour)


def _tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    """ViT tokens (N, 1 + S*S, C) -> a feature map (N, C, S, S), the class token dropped."""
    patches = tokens[:, 1:, :]
    side = round(patches.shape[1] ** 0.5)
    return patches.reshape(patches.shape[0], side, side, patches.shape[2]).permute(0, 3, 1, 2)


class Explainer:
    """Grad-CAM for one registered model. Thread-safe; owns its network."""

    def __init__(self, model: str, weights_dir: Path | None = None, device: str = "cpu") -> None:
        self.spec = get_spec(model)
        if not self.spec.gradcam_layer:
            raise ValueError(f"model {model!r} declares no Grad-CAM target layer")
        self.device = torch.device(device)
        self.module = create_model(model, weights_dir=weights_dir, device=self.device)
        self.layer = _resolve(self.module.net, self.spec.gradcam_layer)
        self._lock = threading.Lock()

    def explain(self, crop: np.ndarray) -> CamResult:
        """Heatmap of the evidence for "fake" in one RGB uint8 crop."""
        x = preprocess(crop[None], self.spec, self.device).contiguous()
        with self._lock, torch.enable_grad():
            with torch.no_grad():
                p_fake = float(torch.sigmoid(self.module(x)).item())
            reshape = _tokens_to_map if self.spec.gradcam_tokens else None
            with GradCAM(
                model=self.module, target_layers=[self.layer], reshape_transform=reshape
            ) as cam:
                heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(0)])[0]
        heat = cv2.resize(heat, (crop.shape[1], crop.shape[0]))
        return CamResult(self.spec.name, heat, overlay_heatmap(crop, heat), p_fake)
