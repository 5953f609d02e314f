"""Three generators make fakes out of real faces at training time, so that a detector learns the traces
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
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from detector.training.images import Landmarks, default_landmarks


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


def colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
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
    source = colour_jitter(image, rng, 0.15)
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
        source = colour_jitter(source, rng, 0.05)
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
