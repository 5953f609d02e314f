"""Grad-CAM heatmaps (Selvaraju et al. 2017) for one face crop and one model, on demand.

pytorch-grad-cam's small API: ``GradCAM(model, target_layers)`` used as a context manager so its
hooks are released after every call. Each :class:`Explainer` owns a private copy of its network:
the copy shared by analyses (cached in the app) never carries a hook. Grad-CAM needs gradients, so
it runs outside ``torch.inference_mode``.

The library scales every heatmap to [0, 1] on its own, so a face with no evidence at all is drawn
as loudly as one with strong evidence (a "flat wash"). Here the heatmap keeps its size instead:
Grad-CAM's weighted activation map, multiplied by the number of cells, is in units of the model's
"fake" logit (for a network that averages its last feature map into a linear head, the mean of this
map over the face is the logit minus the head's bias). It is drawn on one fixed scale for every
face and model, and a map whose strongest cell stays under :data:`STANDS_OUT_AT` is reported as
"nothing stands out" rather than coloured.
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

from detector.models import create_model, get_spec
from detector.models.preprocess import preprocess
from detector.reporting.visual import STANDS_OUT_AT, overlay_heatmap
from detector.scoring.device import resolve_device

LEANS_FAKE_AT = 0.5
"""The model's own score for the crop must reach this (its logit is then positive) for its map to
be shown: a model that does not find the face fake has no "fake" evidence to point at, and for
networks with dense layers after the mapped layer (MesoNet, FaceNet) the map is then misleading."""


@dataclass(frozen=True, eq=False)
class CamResult:
    """One Grad-CAM: the evidence map at crop resolution, its overlay and the model's p_fake.

    Attributes:
        model: registry name.
        heatmap: evidence for "fake" per crop pixel, in logit units (0 = none), not rescaled.
        overlay: the heatmap drawn on the crop on the fixed scale (RGB uint8); where there is no
            evidence the crop shows through unchanged.
        p_fake: the model's score for this crop.
        peak: the heatmap's maximum.
    """

    model: str
    heatmap: np.ndarray
    overlay: np.ndarray
    p_fake: float
    peak: float

    @property
    def stands_out(self) -> bool:
        """Whether the model leans towards "fake" and a region carries enough of that evidence."""
        return self.p_fake >= LEANS_FAKE_AT and self.peak >= STANDS_OUT_AT

    @property
    def why_nothing(self) -> str:
        """Why nothing stands out, in words (empty when something does)."""
        if self.p_fake < LEANS_FAKE_AT:
            return (
                f"{self.model} does not lean towards 'fake' on the face (its score is below "
                f"{LEANS_FAKE_AT:.1f}), so it has no 'fake' evidence to point at"
            )
        if self.peak < STANDS_OUT_AT:
            return f"no region of the face reaches {STANDS_OUT_AT:g} on the evidence scale"
        return ""


def _resolve(module: torch.nn.Module, dotted: str) -> torch.nn.Module:
    for part in dotted.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def _tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    """ViT tokens (N, 1 + S*S, C) -> a feature map (N, C, S, S), the class token dropped."""
    patches = tokens[:, 1:, :]
    side = round(patches.shape[1] ** 0.5)
    return patches.reshape(patches.shape[0], side, side, patches.shape[2]).permute(0, 3, 1, 2)


class Explainer:
    """Grad-CAM for one registered model. Thread-safe; owns its network."""

    def __init__(self, model: str, weights_dir: Path | None = None, device: str = "auto") -> None:
        self.spec = get_spec(model)
        if not self.spec.gradcam_layer:
            raise ValueError(f"model {model!r} declares no Grad-CAM target layer")
        self.device = resolve_device(device)
        self.module = create_model(model, weights_dir=weights_dir, device=self.device)
        self.layer = _resolve(self.module.net, self.spec.gradcam_layer)
        self._lock = threading.Lock()

    def explain(self, crop: np.ndarray) -> CamResult:
        """Evidence for "fake" in one RGB uint8 crop, in logit units, at crop resolution."""
        x = preprocess(crop[None], self.spec, self.device).contiguous()
        with self._lock, torch.enable_grad():
            with torch.no_grad():
                p_fake = float(torch.sigmoid(self.module(x)).item())
            reshape = _tokens_to_map if self.spec.gradcam_tokens else None
            with GradCAM(
                model=self.module, target_layers=[self.layer], reshape_transform=reshape
            ) as cam:
                cam(input_tensor=x, targets=[ClassifierOutputTarget(0)])
                # activations and gradients as Grad-CAM saw them (ViT tokens already reshaped)
                acts = cam.activations_and_grads.activations[0].cpu().numpy()[0]
                grads = cam.activations_and_grads.gradients[0].cpu().numpy()[0]
        weights = grads.mean(axis=(1, 2))  # Grad-CAM's channel weights
        raw = np.maximum((weights[:, None, None] * acts).sum(axis=0), 0.0) * acts[0].size
        heat = cv2.resize(raw.astype(np.float32), (crop.shape[1], crop.shape[0]))
        heat = np.maximum(heat, 0.0)
        return CamResult(
            self.spec.name, heat, overlay_heatmap(crop, heat), p_fake, float(raw.max())
        )
