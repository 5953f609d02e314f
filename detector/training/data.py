"""Training data from folders of face crops: id-grouped splits, synthetic fakes, augmentations.

Real and fake face images come from plain folders; each image is grouped by an id function
(FaceForensics++ ``TTT_k`` / ``TTT_SSS_k`` -> target video ``TTT``; person name for other sets) so
that frames of one video or one person never sit in two splits.

Three generators make fakes out of real faces at training time, so that a detector learns the traces
that blending a face leaves, not the quirks of one manipulation method:

- **SBI**, Self-Blended Images (Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended
  Images", CVPR 2022): a face is blended with a colour/sharpness-jittered, slightly shifted and
  rescaled copy of itself through a deformed, blurred face mask.
- **FWA**, face-warping artifacts (Li & Lyu, "Exposing DeepFake Videos By Detecting Face Warping
  Artifacts", CVPRW 2019): the face region is downscaled and upscaled back (and blurred), then
  blended back through a smoothed mask, imitating the resolution mismatch of face swaps.
- **Identity swap**: another real person's face aligned to the target's landmarks, colour-
  transferred and blended, as FaceForensics++'s graphics-based FaceSwap method does; SBI and FWA
  never change who is shown, a swap does.

The face mask comes from MTCNN's five landmarks (eyes, nose, mouth corners), extended to a hull
from brow to chin; crops where MTCNN found no face use a default ellipse in the centre. Landmarks
are computed once per folder and cached under ``<cache>/landmarks/``.

Augmentations (numpy + OpenCV): random resized crop, horizontal flip, colour jitter, Gaussian
blur, noise, downscale-upscale and JPEG re-compression. Everything takes a ``numpy.random.Generator``
so a seed reproduces a run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.settings import cache_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

Landmarks = np.ndarray  # (5, 2) float32 x, y in crop pixels: eye L, eye R, nose, mouth L, mouth R


# --- ids and splits ---------------------------------------------------------------------------


def ffpp_video_id(path: str | Path) -> str:
    """Video of a frame file: ``TTT_k`` -> ``TTT``, ``TTT_SSS_k`` -> ``TTT_SSS``; else the stem."""
    stem = Path(path).stem
    head, sep, tail = stem.rpartition("_")
    return head if sep and tail.isdigit() else stem


def ffpp_target_id(path: str | Path) -> str:
    """Target video of a frame file: the leading id (``TTT`` for ``TTT_k`` and ``TTT_SSS_k``)."""
    return ffpp_video_id(path).split("_")[0]


_PERSON = re.compile(r"^\d+_\d+_(.+)_\d+$")


def person_id(path: str | Path) -> str:
    """Group key for face photo collections: the person's name where the file name has one.

    ``0_0_aidai_0014`` -> ``aidai``; ``augmented_image_7`` -> ``augmented`` (flips/rotations of
    other photos: keep them in one split); ``2020-06-23-120048 (copy)`` -> ``2020-06-23``; a bare
    number -> ``numbered``; anything else -> its stem without copy suffixes.
    """
    stem = re.sub(r"\s*\((another )?copy\)$", "", Path(path).stem)
    if m := _PERSON.match(stem):
        return m.group(1)
    if stem.startswith("augmented_image"):
        return "augmented"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}-\d+", stem):
        return stem[:10]
    if stem.isdigit():
        return "numbered"
    return stem


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of images")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def split_ids(
    ids: Iterable[str], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list[str]]:
    """Deterministic split of ids into train / val / test by the given fractions (rounded).

    The ids are sorted, shuffled by ``seed`` and cut; the same ids and seed always give the same
    split, whatever order the ids arrive in.
    """
    uniq = sorted(set(ids))
    order = np.random.default_rng(seed).permutation(len(uniq))
    shuffled = [uniq[i] for i in order]
    n_train = round(fractions[0] * len(uniq))
    n_val = round(fractions[1] * len(uniq))
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def split_groups_by_size(
    groups: dict[str, int], val_fraction: float, seed: int = 0, keep_in_train: Sequence[str] = ()
) -> tuple[set[str], set[str]]:
    """Pick whole groups for validation until about ``val_fraction`` of the items are in it."""
    names = sorted(g for g in groups if g not in keep_in_train)
    order = np.random.default_rng(seed).permutation(len(names))
    total = sum(groups.values())
    val: set[str] = set()
    count = 0
    for i in order:
        g = names[i]
        if count + groups[g] > val_fraction * total * 1.2:
            continue
        val.add(g)
        count += groups[g]
        if count >= val_fraction * total:
            break
    return set(groups) - val, val


# --- images and landmarks ---------------------------------------------------------------------


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
    import torch
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=False, select_largest=False, min_face_size=20, post_process=False)
    out: dict[str, list[list[float]] | None] = {}
    for i, path in enumerate(paths):
        img = read_rgb(path)
        pad = max(img.shape[:2]) // 4
        padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        with torch.inference_mode():
            boxes, probs, points = mtcnn.detect(padded, landmarks=True)
        if boxes is None or points is None or probs[0] is None or float(probs[0]) < 0.8:
            out[path.name] = None
        else:
            out[path.name] = [[float(x - pad), float(y - pad)] for x, y in points[0]]
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


# --- face masks ---------------------------------------------------------------------------------


def default_landmarks(h: int, w: int) -> Landmarks:
    """Five landmarks of a centred, frontal face filling a tight crop (used when MTCNN fails)."""
    pts = [(0.35, 0.42), (0.65, 0.42), (0.5, 0.58), (0.38, 0.74), (0.62, 0.74)]
    return np.array([(x * w, y * h) for x, y in pts], np.float32)


def face_hull(landmarks: Landmarks, rng: np.random.Generator) -> np.ndarray:
    """Polygon from brow to chin around the five landmarks, with random extents (int32 (K, 2))."""
    le, re_, nose, ml, mr = (landmarks[i].astype(np.float64) for i in range(5))
    eyes = (le + re_) / 2
    mouth = (ml + mr) / 2
    down = mouth - eyes
    height = max(np.linalg.norm(down), 1.0)
    down /= height
    right = np.array([down[1], -down[0]])
    if np.dot(right, re_ - le) < 0:
        right = -right
    half_w = max(np.linalg.norm(re_ - le), 1.0) * rng.uniform(0.85, 1.15)
    up = rng.uniform(0.6, 1.0) * height
    chin = rng.uniform(0.5, 0.9) * height
    pts = [
        eyes - down * up - right * half_w * 0.9,
        eyes - down * up * 1.1,
        eyes - down * up + right * half_w * 0.9,
        eyes + right * half_w * 1.25,
        nose + right * half_w * 1.15,
        mouth + down * chin * 0.6 + right * half_w * 0.9,
        mouth + down * chin,
        mouth + down * chin * 0.6 - right * half_w * 0.9,
        nose - right * half_w * 1.15,
        eyes - right * half_w * 1.25,
    ]
    return np.round(np.array(pts)).astype(np.int32)


def blend_mask(
    shape: tuple[int, int], landmarks: Landmarks | None, rng: np.random.Generator
) -> np.ndarray:
    """A soft face mask in [0, 1], float32 (H, W): hull or ellipse, deformed, eroded/dilated,
    blurred. The blending boundary is where the detectors should find traces."""
    h, w = shape
    marks = landmarks if landmarks is not None else default_landmarks(h, w)
    hard = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        cv2.fillConvexPoly(hard, cv2.convexHull(face_hull(marks, rng)), 1)
    else:
        centre = marks.mean(axis=0)
        span = np.ptp(marks, axis=0)
        axes = (
            max(2, int(span[0] * rng.uniform(0.8, 1.1))),
            max(2, int(span[1] * rng.uniform(1.0, 1.4))),
        )
        cv2.ellipse(hard, (int(centre[0]), int(centre[1])), axes, 0, 0, 360, 1, -1)
    mask = hard.astype(np.float32)
    # elastic deformation: a smooth random displacement field
    grid = max(4, min(h, w) // 32)
    amp = min(h, w) * rng.uniform(0.01, 0.04)
    dx = cv2.resize(rng.normal(0, amp, (grid, grid)).astype(np.float32), (w, h))
    dy = cv2.resize(rng.normal(0, amp, (grid, grid)).astype(np.float32), (w, h))
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mask = cv2.remap(mask, xs + dx, ys + dy, cv2.INTER_LINEAR, borderValue=0)
    k = max(1, int(min(h, w) * rng.uniform(0.01, 0.04)))
    kernel = np.ones((k, k), np.uint8)
    mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
    sigma = min(h, w) * rng.uniform(0.01, 0.05)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    mask[mask < 1e-3] = 0.0  # keep the blend strictly inside a neighbourhood of the face
    return np.clip(mask / max(float(mask.max()), 1e-6), 0.0, 1.0)


def _blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray, ratio: float) -> np.ndarray:
    m = (mask * ratio)[..., None]
    out = source.astype(np.float32) * m + target.astype(np.float32) * (1.0 - m)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    x = img.astype(np.float32)
    x = x * rng.uniform(1 - strength, 1 + strength) + rng.uniform(-25, 25) * strength
    x = x + rng.uniform(-20, 20, size=3) * strength  # per-channel shift (RGB)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - strength, 1 + strength) + mean
    return np.clip(x, 0, 255).astype(np.uint8)


def self_blend(
    image: np.ndarray, landmarks: Landmarks | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """SBI: blend a face with an altered copy of itself. Returns (fake image, mask in [0, 1]).

    The copy gets colour/brightness jitter, sharpening or blurring, and a small scale and
    translation (the "source-target generator"); the mask is a deformed, blurred face hull
    (the "mask generator"); blending ratio is random, often 1.
    """
    h, w = image.shape[:2]
    source = _colour_jitter(image, rng, 0.15)
    if rng.random() < 0.5:
        blur = cv2.GaussianBlur(source, (0, 0), rng.uniform(0.5, 1.5))
        source = blur
    else:
        soft = cv2.GaussianBlur(source, (0, 0), 1.0).astype(np.float32)
        amount = rng.uniform(0.3, 1.0)
        sharp = source.astype(np.float32) * (1 + amount) - soft * amount
        source = np.clip(sharp, 0, 255).astype(np.uint8)
    scale = rng.uniform(0.95, 1.05)
    tx, ty = rng.uniform(-0.03, 0.03, size=2) * (w, h)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    m[:, 2] += (tx, ty)
    source = cv2.warpAffine(source, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    mask = blend_mask((h, w), landmarks, rng)
    ratio = float(rng.choice([0.5, 0.75, 1.0, 1.0, 1.0]))
    return _blend(image, source, mask, ratio), mask * ratio


def face_warp(
    image: np.ndarray, landmarks: Landmarks | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """FWA: the face region at a lower resolution (down- then up-scaled, maybe blurred), blended
    back through a smoothed mask. Returns (fake image, mask in [0, 1])."""
    h, w = image.shape[:2]
    factor = rng.uniform(0.25, 0.6)
    small = cv2.resize(
        image, (max(8, int(w * factor)), max(8, int(h * factor))), interpolation=cv2.INTER_AREA
    )
    if rng.random() < 0.5:
        small = cv2.GaussianBlur(small, (0, 0), rng.uniform(0.5, 1.2))
    interp = cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC
    source = cv2.resize(small, (w, h), interpolation=interp)
    if rng.random() < 0.3:
        source = _colour_jitter(source, rng, 0.05)
    mask = blend_mask((h, w), landmarks, rng)
    return _blend(image, source, mask, 1.0), mask


@dataclass(frozen=True)
class SwapParams:
    """The random choices of one identity swap, drawn once (a track reuses them frame by frame).

    Attributes:
        seed: seeds the mask's shape and deformation, so one swap gives the same mask (relative to
            the landmarks) on every frame of a track.
        jitter: landmark noise of the alignment, as a share of the eye distance (shape mismatch
            between the two faces).
        full_affine: align with a full affine (shear / aspect mismatch) rather than a similarity.
        colour: strength of the colour transfer to the target's skin (0: none, 1: full).
        blur: sigma (px at 256) of a blur of the swapped face (the generator's lower sharpness).
        downscale: the swapped face rendered at this share of its size, then upscaled.
        ratio: blending strength at the mask's centre.
    """

    seed: int
    jitter: float
    full_affine: bool
    colour: float
    blur: float
    downscale: float
    ratio: float


def draw_swap_params(rng: np.random.Generator) -> SwapParams:
    return SwapParams(
        seed=int(rng.integers(2**31)),
        jitter=float(rng.uniform(0.0, 0.06)),
        full_affine=bool(rng.random() < 0.4),
        colour=float(rng.choice([0.0, 0.5, 0.8, 1.0, 1.0])),
        blur=float(rng.choice([0.0, 0.0, rng.uniform(0.4, 1.5)])),
        downscale=float(rng.choice([1.0, 1.0, rng.uniform(0.35, 0.8)])),
        ratio=float(rng.choice([0.75, 0.9, 1.0, 1.0, 1.0])),
    )


def colour_transfer(
    source: np.ndarray, target: np.ndarray, mask: np.ndarray, strength: float = 1.0
) -> np.ndarray:
    """Reinhard et al.'s colour transfer in Lab, statistics taken inside ``mask`` (> 0.5).

    Moves the swapped-in face's colour to the target's skin, as face-swap pipelines do, so the
    detector cannot rely on a plain colour mismatch.
    """
    inside = mask > 0.5
    if strength <= 0 or inside.sum() < 16:
        return source
    src = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    tgt = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    mu_s, sd_s = src[inside].mean(0), src[inside].std(0) + 1e-3
    mu_t, sd_t = tgt[inside].mean(0), tgt[inside].std(0) + 1e-3
    moved = (src - mu_s) / sd_s * sd_t + mu_t
    out = src + strength * (moved - src)
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def apply_swap(
    target: np.ndarray,
    target_landmarks: Landmarks | None,
    source: np.ndarray,
    source_landmarks: Landmarks | None,
    params: SwapParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Put ``source``'s face on ``target`` with fixed random choices. Returns (fake, mask)."""
    h, w = target.shape[:2]
    t_lm = target_landmarks if target_landmarks is not None else default_landmarks(h, w)
    sh, sw = source.shape[:2]
    s_lm = source_landmarks if source_landmarks is not None else default_landmarks(sh, sw)
    rng = np.random.default_rng(params.seed)
    eye = max(float(np.linalg.norm(t_lm[1] - t_lm[0])), 1.0)
    goal = (t_lm + rng.normal(0.0, params.jitter * eye, t_lm.shape)).astype(np.float32)
    estimate = cv2.estimateAffine2D if params.full_affine else cv2.estimateAffinePartial2D
    m, _ = estimate(s_lm.astype(np.float32), goal, method=cv2.LMEDS)
    if m is None:  # degenerate landmarks: scale the whole source onto the target
        m = np.array([[w / sw, 0, 0], [0, h / sh, 0]], np.float64)
    warped = cv2.warpAffine(
        source, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    if params.downscale < 1.0:
        small = cv2.resize(
            warped,
            (max(8, int(w * params.downscale)), max(8, int(h * params.downscale))),
            interpolation=cv2.INTER_AREA,
        )
        warped = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if params.blur > 0:
        warped = cv2.GaussianBlur(warped, (0, 0), params.blur * max(h, w) / 256)
    mask = blend_mask((h, w), t_lm, rng)
    warped = colour_transfer(warped, target, mask, params.colour)
    return _blend(target, warped, mask, params.ratio), mask * params.ratio


def identity_swap(
    target: np.ndarray,
    target_landmarks: Landmarks | None,
    source: np.ndarray,
    source_landmarks: Landmarks | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """An identity swap of two real faces, as FaceForensics++'s graphics-based FaceSwap does it.

    ``source`` (another person) is aligned to ``target``'s five landmarks (a similarity, or an
    affine for shape mismatch, with landmark noise), optionally rendered at a lower resolution or
    blurred, colour-transferred to the target's skin and blended through a deformed, blurred face
    mask. Returns (fake image, mask in [0, 1]). The two faces must be different people: the same
    person would teach the detector that a real face is fake.
    """
    return apply_swap(target, target_landmarks, source, source_landmarks, draw_swap_params(rng))


def identity_swap_track(
    targets: Sequence[np.ndarray],
    target_landmarks: Sequence[Landmarks | None],
    source: np.ndarray,
    source_landmarks: Landmarks | None,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """The same swap (same face, same random choices) on every frame of a person's track, as a
    face-swapped video would show it; only the target's landmarks move."""
    params = draw_swap_params(rng)
    return [
        apply_swap(t, lm, source, source_landmarks, params)[0]
        for t, lm in zip(targets, target_landmarks, strict=True)
    ]


# --- augmentation -------------------------------------------------------------------------------


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
        out = _colour_jitter(out, rng, 0.1)
    if rng.random() < s.blur:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < s.rescale:
        f = rng.uniform(0.4, 0.8)
        small = cv2.resize(out, (int(size * f), int(size * f)), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < s.noise:
        noisy = out.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), out.shape)
        out = np.clip(noisy, 0, 255).astype(np.uint8)
    if rng.random() < s.jpeg:
        q = int(rng.integers(s.jpeg_quality[0], s.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(
            ".jpg", np.ascontiguousarray(out[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q]
        )
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)


# --- datasets -----------------------------------------------------------------------------------


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


SOURCES = ("real", "fake", "sbi", "fwa")


class TrainingSampler:
    """Draws training batches: real crops, real fakes and SBI/FWA fakes made on the fly.

    Each item is one of ``SOURCES`` drawn with the given mix (sources with no data get zero
    weight); synthetic fakes are generated from a random real crop. Everything is augmented and
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
        w = np.array([mix.get(k, 0.0) if avail[k] else 0.0 for k in SOURCES], dtype=np.float64)
        if w.sum() <= 0:
            raise ValueError("the training mix selects no source with data")
        self.mix = w / w.sum()

    @property
    def fake_share(self) -> float:
        return float(self.mix[1:].sum())

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
                    i = int(rng.choice(self.real, p=self.real_p))
                    img = self.data.images[i]
                    if src == "sbi":
                        img, _ = self_blend(img, self.data.landmarks[i], rng)
                    elif src == "fwa":
                        img, _ = face_warp(img, self.data.landmarks[i], rng)
                imgs.append(augment(img, self.size, rng, self.aug))
                labels.append(0.0 if src == "real" else 1.0)
            yield np.stack(imgs), np.asarray(labels, np.float32)
