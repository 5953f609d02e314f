"""Videos made on the spot, so tests, benchmarks and the bundled example need no third-party clip.

The face is scikit-image's ``astronaut`` (Eileen Collins, a NASA photograph in the public domain),
moved slowly across a textured background; a second person, for tests of who is who, is
scikit-image's ``camera`` (the "cameraman" test photograph, public domain in scikit-image's terms). Encoding uses PyAV's bundled libx264, so the clips play
in browsers too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np


def astronaut_face(size: int = 160) -> np.ndarray:
    """The astronaut's head and shoulders, square RGB uint8."""
    from skimage import data

    img = data.astronaut()
    head = img[20:280, 100:360]  # face box from MTCNN is about (181, 62)-(268, 172)
    return cv2.resize(head, (size, size), interpolation=cv2.INTER_AREA)


def cameraman_face(size: int = 160) -> np.ndarray:
    """The cameraman's head and shoulders (grey, as three channels), square RGB uint8."""
    from skimage import data

    head = data.camera()[60:260, 125:325]  # face box from MTCNN is about (199, 119)-(254, 192)
    head = cv2.resize(head, (size, size), interpolation=cv2.INTER_AREA)
    return np.repeat(head[:, :, None], 3, axis=2)


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str = "libx264",
    rotation_deg: int = 0,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode RGB uint8 frames. ``rotation_deg`` writes display-matrix rotation metadata."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    from fractions import Fraction

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "23"}
        if rotation_deg:
            stream.set_display_rotation(rotation_deg)
        for img in _chain(first, frames):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(img[: stream.height, : stream.width]), format="rgb24"
            )
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, non-uniform background (a plain colour would be unrealistically easy)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(
        40, 200, size=(max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def face_frames(
    width: int = 640,
    height: int = 360,
    n_frames: int = 50,
    face_size: int | None = None,
    n_faces: int = 1,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Frames with ``n_faces`` astronaut faces drifting slowly left to right."""
    face_size = face_size or max(48, min(width, height) // 3)
    face = astronaut_face(face_size)
    bg = background(width, height, seed)
    slots = max(1, n_faces)
    for i in range(n_frames):
        img = bg.copy()
        drift = int((i / max(1, n_frames - 1)) * max(0, width // slots - face_size) * 0.5)
        for k in range(n_faces):
            x = min(width - face_size, k * (width // slots) + drift)
            y = max(0, (height - face_size) // 2 + (k % 2) * face_size // 4 - face_size // 8)
            y = min(y, height - face_size)
            img[y : y + face_size, x : x + face_size] = face
        yield img


def astronaut_clip(
    path: Path,
    seconds: float = 4.0,
    fps: float = 25.0,
    width: int = 640,
    height: int = 360,
    **kwargs,
) -> Path:
    """A short H.264 clip with the astronaut's face: the project's redistributable example."""
    n = max(1, round(seconds * fps))
    return write_video(path, face_frames(width, height, n, **kwargs), fps=fps)


def blank_clip(path: Path, seconds: float = 3.0, fps: float = 25.0, size=(320, 240)) -> Path:
    """A clip with no face in it."""
    bg = background(size[0], size[1], seed=3)
    n = max(1, round(seconds * fps))
    return write_video(path, (np.roll(bg, i * 2, axis=1) for i in range(n)), fps=fps)
