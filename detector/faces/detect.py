"""Find every face in a frame, keep those that look like faces, follow each person over time.

Every candidate then passes the quality gate (:mod:`detector.faces.quality`) and is followed over
time by :mod:`detector.faces.track`. torch is imported when a detector is built, so that code that
only needs the settings (and a CLI refusing a broken file) starts without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from detector.faces.quality import QualitySettings
from detector.faces.track import TrackSettings
from detector.types import Detection

if TYPE_CHECKING:
    from detector.threads import CoreWorkers


@dataclass(frozen=True)
class FaceSettings:
    """Detection, quality, cropping and tracking parameters.

    Attributes:
        min_confidence: MTCNN probability below which a box is not even a candidate (candidates
            then face ``quality.min_confidence``; only those above this floor are listed as
            rejected, so the list stays about boxes that were once scored).
        detect_max_side: frames are downscaled so the longer side is at most this for detection.
        min_face_px: smallest face side (in detection pixels) MTCNN searches for.
        retry_full_resolution: when the downscaled frame shows no face, search again at full size
            (finds small faces in large frames; costs time only on face-less frames).
        crop_margin: added on each side of the face box, as a share of its longer side.
        crop_size: side of the stored square crops (resized per model later).
        quality: what a detection must look like to be scored.
        tracking: how faces are linked into people.
    """

    min_confidence: float = 0.9
    detect_max_side: int = 640
    min_face_px: int = 20
    retry_full_resolution: bool = True
    crop_margin: float = 0.0
    crop_size: int = 320
    quality: QualitySettings = field(default_factory=QualitySettings)
    tracking: TrackSettings = field(default_factory=TrackSettings)


class MTCNNDetector:
    """MTCNN (facenet-pytorch's networks and weights: :mod:`detector.faces.mtcnn`) returning
    every face above ``min_confidence``."""

    def __init__(
        self,
        settings: FaceSettings | None = None,
        device: str = "cpu",
        workers: CoreWorkers | None = None,
    ) -> None:
        """``workers``: single-threaded workers (one per core; :func:`detector.threads.cpu_workers`)
        that MTCNN's network calls are spread over; None runs them in the calling thread."""
        from detector.faces.mtcnn import MTCNN

        self.settings = settings or FaceSettings()
        self._mtcnn = MTCNN(min_face_size=self.settings.min_face_px, device=device, workers=workers)

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect` for several frames, the frames of one size detected together."""
        found = self._detect_scaled(images, self.settings.detect_max_side)
        if self.settings.retry_full_resolution:
            # a downscaled frame that showed no face is searched again at full size, alone (a
            # full-size frame's pyramid is large; this path is rare)
            for i, image in enumerate(images):
                if not found[i] and max(image.shape[:2]) > self.settings.detect_max_side:
                    found[i] = self._detect_scaled([image], None)[0]
        return found

    def _detect_scaled(
        self, images: Sequence[np.ndarray], max_side: int | None
    ) -> list[list[Detection]]:
        smalls, scales = [], []
        for image in images:
            h, w = image.shape[:2]
            scale, small = 1.0, image
            if max_side and max(h, w) > max_side:
                scale = max_side / max(h, w)
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            smalls.append(small)
            scales.append(scale)
        found: list[list[Detection]] = [[] for _ in images]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, small in enumerate(smalls):
            # no face of the smallest size searched for fits a tinier image (MTCNN fails on it)
            if min(small.shape[:2]) >= self.settings.min_face_px:
                by_size.setdefault(small.shape, []).append(i)
        for members in by_size.values():
            results = self._mtcnn.detect_many([smalls[i] for i in members])
            for i, result in zip(members, results, strict=True):
                found[i] = self._mapped(result, scales[i], images[i].shape[:2])
        return found

    def _mapped(self, result, scale: float, shape: tuple[int, int]) -> list[Detection]:
        """MTCNN's boxes above ``min_confidence``, mapped back to the full-size frame."""
        h, w = shape
        found = []
        for box, prob, pts in zip(*result, strict=True):
            if float(prob) < self.settings.min_confidence:
                continue
            x1, y1, x2, y2 = (float(v) / scale for v in box)
            x1, y1 = max(0.0, x1), max(0.0, y1)
            x2, y2 = min(float(w), x2), min(float(h), y2)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            marks = tuple((float(px) / scale, float(py) / scale) for px, py in pts)
            found.append(Detection((x1, y1, x2, y2), float(prob), marks))
        return found
