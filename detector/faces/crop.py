"""Square face crops cut from the full-resolution frame, with a margin, resized to a fixed side."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


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
