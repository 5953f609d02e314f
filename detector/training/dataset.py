"""Training sets of face crops: folders with labels, a sampler mixing real, fake and synthetic fakes, and augmentations.

Augmentations (numpy + OpenCV): random resized crop, horizontal flip, colour jitter, Gaussian
blur, noise, downscale-upscale, JPEG re-compression and (off by default) H.264 re-encoding at a
small size, as heavily compressed video shows a face. Everything takes a ``numpy.random.Generator``
so a seed reproduces a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.training.fakes import colour_jitter, face_warp, identity_swap, self_blend
from detector.training.images import Landmarks, cached_landmarks, list_images, read_rgb
from detector.training.splits import ffpp_target_id, ffpp_video_id


@dataclass(frozen=True)
class AugmentSettings:
    """Probabilities and ranges of the training augmentations."""

    crop_scale: tuple[float, float] = (0.8, 1.0)
    flip: float = 0.5
    colour: float = 0.5
    blur: float = 0.15
    noise: float = 0.15
    rescale: float = 0.2
    jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)
    # H.264 intra coding at a reduced face size, for real and fake alike: FaceForensics++ c40
    # and social-media footage compress faces far harder than JPEG 40 does. Tried against the
    # CLIP probe's false alarms on c40 originals (mean video score 0.52 against 0.14 at c23):
    # with half its pool re-encoded it lost on every cross-dataset figure (README, Models), so
    # no shipped recipe uses it
    codec: float = 0.0
    codec_crf: tuple[int, int] = (28, 45)
    codec_scale: tuple[float, float] = (0.35, 1.0)


def random_resized_crop(
    img: np.ndarray, size: int, rng: np.random.Generator, scale: tuple[float, float]
) -> np.ndarray:
    """A random square-ish crop covering ``scale`` of the area, resized to ``size``."""
    h, w = img.shape[:2]
    area = h * w * rng.uniform(*scale)
    ratio = np.exp(rng.uniform(np.log(0.9), np.log(1.1)))
    cw = round(min(w, float(np.sqrt(area * ratio))))
    ch = round(min(h, float(np.sqrt(area / ratio))))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    return resize_square(img[y0 : y0 + ch, x0 : x0 + cw], size)


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size: area filter when shrinking, linear when enlarging."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def augment(
    img: np.ndarray, size: int, rng: np.random.Generator, s: AugmentSettings | None = None
) -> np.ndarray:
    """Training augmentation of one RGB uint8 crop, returning ``size`` x ``size`` RGB uint8."""
    s = s or AugmentSettings()
    out = random_resized_crop(img, size, rng, s.crop_scale)
    if rng.random() < s.flip:
        out = out[:, ::-1]
    if rng.random() < s.colour:
        out = colour_jitter(out, rng, 0.1)
    if rng.random() < s.blur:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < s.rescale:
        f = rng.uniform(0.4, 0.8)
        small = cv2.resize(out, (int(size * f), int(size * f)), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < s.noise:
        noisy = out.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), out.shape)
        out = np.clip(noisy, 0, 255).astype(np.uint8)
    if rng.random() < s.codec:
        out = video_compress(out, rng, s.codec_crf, s.codec_scale)
    if rng.random() < s.jpeg:
        q = int(rng.integers(s.jpeg_quality[0], s.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(
            ".jpg", np.ascontiguousarray(out[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q]
        )
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)


def video_compress(
    img: np.ndarray,
    rng: np.random.Generator,
    crf: tuple[int, int] = (28, 45),
    scale: tuple[float, float] = (0.35, 1.0),
) -> np.ndarray:
    """The crop shrunk by a factor drawn from ``scale``, encoded as one H.264 frame (libx264,
    4:2:0, CRF drawn from ``crf``), decoded and resized back: the blocking, ringing and chroma
    loss of compressed video at the face sizes video has."""
    import io

    import av

    h, w = img.shape[:2]
    f = rng.uniform(*scale)
    sw, sh = max(16, round(w * f / 2) * 2), max(16, round(h * f / 2) * 2)
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        stream = c.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = sw, sh, "yuv420p"
        stream.options = {"crf": str(int(rng.integers(crf[0], crf[1] + 1))), "preset": "veryfast"}
        for packet in stream.encode(
            av.VideoFrame.from_ndarray(np.ascontiguousarray(small), "rgb24")
        ):
            c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    buf.seek(0)
    with av.open(buf) as c:
        decoded = next(c.decode(video=0)).to_ndarray(format="rgb24")
    return cv2.resize(decoded, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class FaceSet:
    """Face crops held in memory with labels, groups and (for real faces) landmarks.

    Attributes:
        images: RGB uint8 crops (sizes may differ).
        labels: 1 = fake, 0 = real.
        groups: split/grouping key per image (video or person).
        videos: video key per image (frames of one video are averaged for video-level scores).
        landmarks: five landmarks per image, or None.
        names: file names, for per-item reports.
        origins: the folder each image came from (reals are drawn evenly across folders).
    """

    images: tuple[np.ndarray, ...]
    labels: np.ndarray
    groups: tuple[str, ...]
    videos: tuple[str, ...]
    landmarks: tuple[Landmarks | None, ...]
    names: tuple[str, ...]
    origins: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, keep: np.ndarray) -> FaceSet:
        idx = np.flatnonzero(keep)
        return FaceSet(
            images=tuple(self.images[i] for i in idx),
            labels=self.labels[idx],
            groups=tuple(self.groups[i] for i in idx),
            videos=tuple(self.videos[i] for i in idx),
            landmarks=tuple(self.landmarks[i] for i in idx),
            names=tuple(self.names[i] for i in idx),
            origins=tuple(self.origins[i] for i in idx) if self.origins else (),
        )

    @staticmethod
    def concat(sets: Sequence[FaceSet]) -> FaceSet:
        return FaceSet(
            images=tuple(im for s in sets for im in s.images),
            labels=np.concatenate([s.labels for s in sets]) if sets else np.zeros(0, int),
            groups=tuple(g for s in sets for g in s.groups),
            videos=tuple(v for s in sets for v in s.videos),
            landmarks=tuple(m for s in sets for m in s.landmarks),
            names=tuple(n for s in sets for n in s.names),
            origins=tuple(o for s in sets for o in (s.origins or ("",) * len(s))),
        )


def load_folder(
    folder: Path,
    label: int,
    group_fn: Callable[[str | Path], str] = ffpp_target_id,
    video_fn: Callable[[str | Path], str] = ffpp_video_id,
    with_landmarks: bool = False,
    max_side: int | None = 320,
) -> FaceSet:
    """Read every image of a folder into memory (larger ones shrunk to ``max_side``)."""
    paths = list_images(folder)
    marks = cached_landmarks(folder) if with_landmarks else {}
    images, lms = [], []
    for p in paths:
        img = read_rgb(p)
        lm = marks.get(p.name)
        if max_side and max(img.shape[:2]) > max_side:
            f = max_side / max(img.shape[:2])
            img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            lm = lm * f if lm is not None else None
        images.append(img)
        lms.append(lm)
    return FaceSet(
        images=tuple(images),
        labels=np.full(len(paths), label, dtype=np.int64),
        groups=tuple(group_fn(p) for p in paths),
        videos=tuple(video_fn(p) for p in paths),
        landmarks=tuple(lms),
        names=tuple(p.name for p in paths),
        origins=(str(folder),) * len(paths),
    )


SOURCES = ("real", "fake", "sbi", "fwa", "swap")


class TrainingSampler:
    """Draws training batches: real crops, real fakes and SBI/FWA/identity-swap fakes made on the fly.

    Each item is one of ``SOURCES`` drawn with the given mix (sources with no data get zero
    weight); synthetic fakes are generated from a random real crop (a swap puts a second real
    crop of another group, i.e. another video or person, onto it). Everything is augmented and
    resized to ``size``. Deterministic given ``seed`` and the epoch number.
    """

    def __init__(
        self,
        data: FaceSet,
        size: int,
        mix: dict[str, float],
        seed: int = 0,
        augment_settings: AugmentSettings | None = None,
    ) -> None:
        self.data = data
        self.size = size
        self.seed = seed
        self.aug = augment_settings or AugmentSettings()
        self.real = np.flatnonzero(data.labels == 0)
        self.fake = np.flatnonzero(data.labels == 1)
        origins = np.array(data.origins or ("",) * len(data))[self.real]
        _, inverse, counts = np.unique(origins, return_inverse=True, return_counts=True)
        self.real_p = 1.0 / counts[inverse]
        self.real_p = self.real_p / self.real_p.sum() if len(self.real) else self.real_p
        avail = {"real": len(self.real), "fake": len(self.fake)}
        avail["sbi"] = avail["fwa"] = len(self.real)
        avail["swap"] = len(self.real) if len({data.groups[i] for i in self.real}) > 1 else 0
        w = np.array([mix.get(k, 0.0) if avail[k] else 0.0 for k in SOURCES], dtype=np.float64)
        if w.sum() <= 0:
            raise ValueError("the training mix selects no source with data")
        self.mix = w / w.sum()

    @property
    def fake_share(self) -> float:
        return float(self.mix[1:].sum())

    def _real(self, rng: np.random.Generator) -> int:
        return int(rng.choice(self.real, p=self.real_p))

    def epoch(self, epoch: int, n_items: int, batch_size: int):
        """Yield (uint8 images (B, S, S, 3), float labels (B,)) for one epoch."""
        rng = np.random.default_rng([self.seed, epoch])
        kinds = rng.choice(len(SOURCES), size=n_items, p=self.mix)
        for start in range(0, n_items, batch_size):
            imgs, labels = [], []
            for kind in kinds[start : start + batch_size]:
                src = SOURCES[kind]
                if src == "fake":
                    i = int(rng.choice(self.fake))
                    img = self.data.images[i]
                else:
                    i = self._real(rng)
                    img = self.data.images[i]
                    if src == "sbi":
                        img, _ = self_blend(img, self.data.landmarks[i], rng)
                    elif src == "fwa":
                        img, _ = face_warp(img, self.data.landmarks[i], rng)
                    elif src == "swap":
                        j = self._real(rng)
                        while self.data.groups[j] == self.data.groups[i]:
                            j = self._real(rng)
                        d = self.data
                        img, _ = identity_swap(
                            img, d.landmarks[i], d.images[j], d.landmarks[j], rng
                        )
                imgs.append(augment(img, self.size, rng, self.aug))
                labels.append(0.0 if src == "real" else 1.0)
            yield np.stack(imgs), np.asarray(labels, np.float32)
