"""Face-crop folders: listing, reading, and MTCNN's five landmarks per crop (cached).

The face mask comes from MTCNN's five landmarks (eyes, nose, mouth corners), extended to a hull
from brow to chin; crops where MTCNN found no face use a default ellipse in the centre. Landmarks
are computed once per folder and cached under ``<cache>/landmarks/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from detector.settings import cache_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


Landmarks = np.ndarray  # (5, 2) float32 x, y in crop pixels: eye L, eye R, nose, mouth L, mouth R


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of images")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8; raises if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def detect_landmarks(
    paths: Sequence[Path], progress: Callable[[int, int], None] | None = None
) -> dict[str, list[list[float]] | None]:
    """MTCNN's five landmarks of the most confident face in each crop (None if no face).

    Tight crops fill the whole image, which MTCNN handles badly, so each crop is padded by a
    quarter of its side on every side before detection.
    """
    from detector.faces.detect import FaceSettings, MTCNNDetector

    # The pipeline's detector, without downscaling (crops are small) and with a lower floor.
    mtcnn = MTCNNDetector(
        FaceSettings(min_confidence=0.8, detect_max_side=1 << 16, retry_full_resolution=False)
    )
    out: dict[str, list[list[float]] | None] = {}
    for i, path in enumerate(paths):
        img = read_rgb(path)
        pad = max(img.shape[:2]) // 4
        padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        found = mtcnn.detect(padded)
        if not found:
            out[path.name] = None
        else:
            best = max(found, key=lambda d: d.confidence)
            out[path.name] = [[float(x - pad), float(y - pad)] for x, y in best.landmarks_xy]
        if progress:
            progress(i + 1, len(paths))
    return out


def cached_landmarks(folder: Path, cache: Path | None = None) -> dict[str, Landmarks | None]:
    """Landmarks of every image in ``folder``, computed once and cached as JSON by folder path."""
    folder = Path(folder).resolve()
    paths = list_images(folder)
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    file = (cache or cache_dir()) / "landmarks" / f"{folder.name}-{key}.json"
    data: dict[str, list[list[float]] | None] = {}
    if file.is_file():
        data = json.loads(file.read_text(encoding="utf-8"))
    todo = [p for p in paths if p.name not in data]
    if todo:
        data.update(detect_landmarks(todo))
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    return {
        p.name: (np.asarray(data[p.name], np.float32) if data.get(p.name) else None) for p in paths
    }


def default_landmarks(h: int, w: int) -> Landmarks:
    """Five landmarks of a centred, frontal face filling a tight crop (used when MTCNN fails)."""
    pts = [(0.35, 0.42), (0.65, 0.42), (0.5, 0.58), (0.38, 0.74), (0.62, 0.74)]
    return np.array([(x * w, y * h) for x, y in pts], np.float32)
