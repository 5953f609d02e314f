"""Distillation from trained members (teachers) during training: their targets and pooled features."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch, timm and facenet-pytorch load lazily: `--help` stays fast
    pass


class Teachers:
    """Trained members used as teachers: soft targets (sigmoid of their mean fake logit) and
    their pooled penultimate features, from one forward each, in inference mode."""

    def __init__(self, names: Sequence[str], device, weights_dir: Path | None = None) -> None:
        import torch

        from detector.models import create_model, get_spec

        self.specs = [get_spec(n) for n in names]
        bad = [s.name for s in self.specs if s.kind != "frame" or s.positive_class != "fake"]
        wrapped = [create_model(n, weights_dir=weights_dir, device=device) for n in names]
        bad += [
            n for n, w in zip(names, wrapped, strict=True) if not hasattr(w.net, "forward_head")
        ]
        if bad:
            raise ValueError(
                f"teachers must be per-frame timm networks with a fake logit; not {sorted(set(bad))}"
            )
        self.nets = [w.net.to(memory_format=torch.channels_last) for w in wrapped]
        self.device = device
        self.input_sizes = [s.input_size for s in self.specs]
        self.feature_sizes = [n.num_features for n in self.nets]

    def __call__(self, images: np.ndarray):
        import torch

        from detector.models.preprocess import preprocess

        logits, feats = [], []
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16):
            for spec, net in zip(self.specs, self.nets, strict=True):
                x = preprocess(images, spec, self.device)
                pooled = net.forward_head(net.forward_features(x), pre_logits=True)
                logits.append(net.get_classifier()(pooled).float().reshape(-1))
                feats.append(pooled.float())
        soft = torch.sigmoid(torch.stack(logits).mean(0))
        return soft.clone(), [f.clone() for f in feats]
