"""Find every face in a frame with MTCNN, cut square crops with a margin, follow people over time.

MTCNN (Zhang et al. 2016, via facenet-pytorch, whose wheel ships the P/R/O-net weights) runs on a
downscaled copy of the frame, as in the DFDC winner's pipeline; boxes are mapped back and crops are
cut from the full-resolution frame. All faces above a confidence are kept, not just the largest.
Tracking links detections of consecutive sampled frames by box overlap and centre distance with an
optimal assignment (the Hungarian method): at 1 frame/s faces move, so IoU alone is not enough.
torch and SciPy are imported when a detector is built or a tracker links boxes, so that code that
only needs the settings (and a CLI refusing a broken file) starts without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


@dataclass(frozen=True)
class Detection:
    """A face box in full-frame pixel coordinates."""

    box_xyxy: tuple[float, float, float, float]
    confidence: float
    landmarks_xy: tuple[tuple[float, float], ...]


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one RGB uint8 frame."""


@dataclass(frozen=True)
class FaceSettings:
    """Detection and cropping parameters.

    Attributes:
        min_confidence: MTCNN probability below which a box is dropped.
        detect_max_side: frames are downscaled so the longer side is at most this for detection.
        min_face_px: smallest face side (in detection pixels) MTCNN searches for.
        retry_full_resolution: when the downscaled frame shows no face, search again at full size
            (finds small faces in large frames; costs time only on face-less frames).
        crop_margin: added on each side of the face box, as a share of its longer side.
        crop_size: side of the stored square crops (resized per model later).
    """

    min_confidence: float = 0.9
    detect_max_side: int = 640
    min_face_px: int = 20
    retry_full_resolution: bool = True
    crop_margin: float = 0.0
    crop_size: int = 320


class MTCNNDetector:
    """facenet-pytorch MTCNN returning every face above ``min_confidence``."""

    def __init__(self, settings: FaceSettings | None = None, device: str = "cpu") -> None:
        import torch
        from facenet_pytorch import MTCNN

        self.settings = settings or FaceSettings()
        self._mtcnn = MTCNN(
            keep_all=True,
            select_largest=False,
            min_face_size=self.settings.min_face_px,
            post_process=False,
            device=torch.device(device),
        )

    def _detect_scaled(self, image: np.ndarray, max_side: int | None) -> list[Detection]:
        h, w = image.shape[:2]
        scale = 1.0
        small = image
        if max_side and max(h, w) > max_side:
            scale = max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < self.settings.min_face_px:
            return []  # no face of the smallest size searched for fits (MTCNN fails on these)
        import torch

        with torch.inference_mode():
            boxes, probs, points = self._mtcnn.detect(small, landmarks=True)
        if boxes is None:
            return []
        found = []
        for box, prob, pts in zip(boxes, probs, points, strict=True):
            if prob is None or float(prob) < self.settings.min_confidence:
                continue
            x1, y1, x2, y2 = (float(v) / scale for v in box)
            x1, y1 = max(0.0, x1), max(0.0, y1)
            x2, y2 = min(float(w), x2), min(float(h), y2)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            marks = tuple((float(px) / scale, float(py) / scale) for px, py in pts)
            found.append(Detection((x1, y1, x2, y2), float(prob), marks))
        return found

    def detect(self, image: np.ndarray) -> list[Detection]:
        found = self._detect_scaled(image, self.settings.detect_max_side)
        downscaled = max(image.shape[:2]) > self.settings.detect_max_side
        if not found and downscaled and self.settings.retry_full_resolution:
            found = self._detect_scaled(image, None)
        return found


def square_crop(
    image: np.ndarray, box_xyxy: Sequence[float], margin: float, size: int
) -> np.ndarray:
    """A square crop centred on the box, ``margin`` of its longer side added on each side.

    Parts outside the frame (faces at the border) are filled by replicating the edge, so the face
    keeps its place and scale in the crop.
    """
    x1, y1, x2, y2 = box_xyxy
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left, top = round(cx - side / 2.0), round(cy - side / 2.0)
    side_px = max(2, round(side))
    h, w = image.shape[:2]
    pad_l, pad_t = max(0, -left), max(0, -top)
    pad_r, pad_b = max(0, left + side_px - w), max(0, top + side_px - h)
    patch = image[max(0, top) : min(h, top + side_px), max(0, left) : min(w, left + side_px)]
    if pad_l or pad_t or pad_r or pad_b:
        patch = cv2.copyMakeBorder(patch, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if side_px > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interp)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _link_cost(a: Sequence[float], b: Sequence[float]) -> float:
    """0 for identical boxes, >= 1 when they cannot be the same person."""
    overlap = iou(a, b)
    size = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
    dist = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2.0, (a[1] + a[3] - b[1] - b[3]) / 2.0)
    scale = min(a[2] - a[0], b[2] - b[0]) / max(a[2] - a[0], b[2] - b[0], 1e-6)
    if overlap <= 0 and (dist > 1.5 * size or scale < 0.5):
        return 1.0
    return 1.0 - 0.5 * overlap - 0.5 * max(0.0, 1.0 - dist / (1.5 * size)) * scale


@dataclass
class _OpenTrack:
    track_id: int
    box: tuple[float, float, float, float]
    last_step: int


class FaceTracker:
    """Assigns track ids to the detections of successive sampled frames.

    Args:
        max_gap: a person may be missed in this many sampled frames and keep the same id.
    """

    def __init__(self, max_gap: int = 2) -> None:
        self.max_gap = max_gap
        self._open: list[_OpenTrack] = []
        self._next_id = 0
        self._step = -1

    def update(self, boxes: Sequence[Sequence[float]]) -> list[int]:
        """Track ids for this frame's boxes, in the same order."""
        self._step += 1
        self._open = [t for t in self._open if self._step - t.last_step <= self.max_gap + 1]
        ids = [-1] * len(boxes)
        if self._open and boxes:
            from scipy.optimize import linear_sum_assignment

            cost = np.array([[_link_cost(t.box, b) for b in boxes] for t in self._open])
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] < 1.0:
                    track = self._open[r]
                    ids[c] = track.track_id
                    track.box = tuple(boxes[c])
                    track.last_step = self._step
        for i, box in enumerate(boxes):
            if ids[i] < 0:
                ids[i] = self._next_id
                self._open.append(_OpenTrack(self._next_id, tuple(box), self._step))
                self._next_id += 1
        return ids
