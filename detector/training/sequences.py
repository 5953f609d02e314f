"""Face sequences for the temporal members: frames of one video in time order, sequences made from them (real, fake and the synthetic sbi_track / sbi_flicker / swap_track fakes), batches, and sequence-level metrics."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from detector.evaluation.metrics import binary_metrics, bootstrap_auc_ci
from detector.models.preprocess import to_input
from detector.training.dataset import FaceSet, augment, resize_square
from detector.training.fakes import apply_swap, draw_swap_params, self_blend

if TYPE_CHECKING:
    import torch


KINDS = ("real", "fake", "sbi_track", "sbi_flicker", "swap_track")
SYNTHETIC = KINDS[2:]  # made from a real sequence (swap_track: and another person's)


@dataclass(frozen=True)
class FaceSequence:
    """The ordered crops of one video, with landmarks (reals) and label (1 = fake)."""

    video: str
    label: int
    images: tuple[np.ndarray, ...]
    landmarks: tuple


def _frame_number(name: str) -> int:
    m = re.search(r"_(\d+)\.[A-Za-z]+$", name)
    return int(m.group(1)) if m else 0


def sequences_of(fs: FaceSet) -> list[FaceSequence]:
    """Group a FaceSet's frames into per-video sequences ordered by frame number."""
    by_video: dict[str, list[int]] = {}
    for i, v in enumerate(fs.videos):
        by_video.setdefault(v, []).append(i)
    out = []
    for v in sorted(by_video):
        idx = sorted(by_video[v], key=lambda i: _frame_number(fs.names[i]))
        out.append(
            FaceSequence(
                video=v,
                label=int(fs.labels[idx[0]]),
                images=tuple(fs.images[i] for i in idx),
                landmarks=tuple(fs.landmarks[i] for i in idx),
            )
        )
    return out


def make_sequence(
    seq: FaceSequence,
    kind: str,
    rng: np.random.Generator,
    size: int,
    train: bool = True,
    donors: Sequence[FaceSequence] = (),
) -> np.ndarray:
    """One (T, size, size, 3) uint8 sequence of the given kind (see :mod:`detector.training.temporal`).
    ``donors``: real sequences a ``swap_track`` takes its other person from."""
    frames = list(seq.images)
    if kind == "swap_track":
        frames = swap_track(seq, donors, rng)
    if kind == "sbi_track":
        blend_seed = int(rng.integers(2**31))
        frames = [
            self_blend(im, lm, np.random.default_rng(blend_seed))[0]
            for im, lm in zip(frames, seq.landmarks, strict=True)
        ]
    elif kind == "sbi_flicker":
        chosen = rng.random(len(frames)) < 0.5
        chosen[rng.integers(len(frames))] = True  # at least one blended frame
        if chosen.all():
            chosen[rng.integers(len(frames))] = False  # and one left as it was
        frames = [
            self_blend(im, lm, np.random.default_rng(int(rng.integers(2**31))))[0] if c else im
            for im, lm, c in zip(frames, seq.landmarks, chosen, strict=True)
        ]
    if not train:
        return np.stack([resize_square(im, size) for im in frames])
    aug_seed = int(rng.integers(2**31))
    return np.stack([augment(im, size, np.random.default_rng(aug_seed)) for im in frames])


def swap_track(
    seq: FaceSequence, donors: Sequence[FaceSequence], rng: np.random.Generator
) -> list[np.ndarray]:
    """Another person's face on every frame of ``seq``, one swap over the whole track (the same
    random choices of alignment noise, mask, colour transfer, blur and resolution on every
    frame: :func:`detector.training.fakes.apply_swap`), the donor's frame k on the target's
    frame k (cycled), as FaceForensics++'s FaceSwap puts a source video on a target video."""
    others = [d for d in donors if d.video != seq.video and d.label == 0]
    if not others:
        raise ValueError(f"a swap_track of {seq.video} needs another person's real sequence")
    donor = others[int(rng.integers(len(others)))]
    params = draw_swap_params(rng)
    n = len(donor.images)
    return [
        apply_swap(im, lm, donor.images[k % n], donor.landmarks[k % n], params)[0]
        for k, (im, lm) in enumerate(zip(seq.images, seq.landmarks, strict=True))
    ]


def to_batch(seqs: np.ndarray, mean, std, device) -> torch.Tensor:
    """uint8 (B, T, S, S, 3) -> normalised float (B, T, 3, S, S), each frame as scoring prepares it."""
    b, n = seqs.shape[:2]
    x = to_input(np.asarray(seqs).reshape(b * n, *seqs.shape[2:]), mean, std, device)
    return x.reshape(b, n, *x.shape[1:])


def eval_sequences(
    sets: list[FaceSequence], seed: int, synthetic: Sequence[str] = ()
) -> tuple[list[FaceSequence | tuple], np.ndarray, list[str]]:
    """Fixed evaluation items: (sequence, kind) pairs, labels, names; each real sequence also
    made into one synthetic fake, taking the ``synthetic`` kinds in turn (a ``swap_track`` only
    where there is another real sequence to take a face from)."""
    items, labels, names = [], [], []
    for s in sets:
        items.append((s, "real" if s.label == 0 else "fake"))
        labels.append(s.label)
        names.append(s.video)
    reals = [x for x in sets if x.label == 0]
    if len(reals) < 2:  # a swap needs another person
        synthetic = [k for k in synthetic if k != "swap_track"]
    if synthetic:
        for k, s in enumerate(reals):
            kind = synthetic[k % len(synthetic)]
            items.append((s, kind))
            labels.append(1)
            names.append(f"{kind}_{s.video}")
    return items, np.array(labels), names


def sequence_metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    m = binary_metrics(labels, scores)
    return {
        "video_auc": m["auc"],
        "video_auc_ci95": bootstrap_auc_ci(labels, scores, n=1000),
        "accuracy": m["accuracy"],
        "tpr": m["tpr"],
        "tnr": m["tnr"],
        "precision": m["precision"],
        "confusion": m["confusion"],
        "n_videos": m["n"],
    }
