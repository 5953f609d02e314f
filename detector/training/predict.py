"""Scoring face crops with a network during training, and the frame and video metrics of a set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from detector.evaluation.metrics import binary_metrics
from detector.models.preprocess import to_input
from detector.training.dataset import FaceSet

if TYPE_CHECKING:  # torch, timm and facenet-pytorch load lazily: `--help` stays fast
    import torch
    from torch import nn
from detector.training.trainables import Trainable


def predict(
    net: nn.Module,
    images: Sequence[np.ndarray],
    t: Trainable,
    size: int,
    device: torch.device,
    batch_size: int = 64,
    amp: str = "none",
) -> np.ndarray:
    """p_fake per image (images of equal shape are batched together)."""
    import torch

    net.eval()
    out = np.zeros(len(images), np.float64)
    by_shape: dict[tuple, list[int]] = {}
    for i, img in enumerate(images):
        by_shape.setdefault(img.shape, []).append(i)
    for idx in by_shape.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            x = to_input(np.stack([images[i] for i in chunk]), t.mean, t.std, device, size)
            with (
                torch.inference_mode(),
                torch.autocast(device.type, torch.bfloat16, enabled=amp == "bf16"),
            ):
                logits = net(x).float().reshape(len(chunk), -1)[:, 0]
            out[chunk] = torch.sigmoid(logits).cpu().numpy()
    return out


def video_scores(
    videos: Sequence[str], labels: np.ndarray, scores: np.ndarray, reduce=np.mean
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Frames grouped into videos: (video keys, labels, reduced scores)."""
    keys = sorted(set(videos))
    pos = {k: i for i, k in enumerate(keys)}
    buckets: list[list[float]] = [[] for _ in keys]
    lab = np.zeros(len(keys), int)
    for v, y, s in zip(videos, labels, scores, strict=True):
        buckets[pos[v]].append(float(s))
        lab[pos[v]] = int(y)
    return keys, lab, np.array([float(reduce(b)) for b in buckets])


def set_metrics(fs: FaceSet, scores: np.ndarray) -> dict:
    """Frame- and video-level metrics of one labelled set (video score = mean p_fake)."""
    frame = binary_metrics(fs.labels, scores)
    _, vl, vs = video_scores(fs.videos, fs.labels, scores)
    video = binary_metrics(vl, vs)
    return {
        "frame_auc": frame["auc"],
        "video_auc": video["auc"],
        "accuracy": frame["accuracy"],
        "tpr": frame["tpr"],
        "tnr": frame["tnr"],
        "precision": frame["precision"],
        "confusion": frame["confusion"],
        "video_accuracy": video["accuracy"],
        "n_frames": frame["n"],
        "n_videos": video["n"],
    }
