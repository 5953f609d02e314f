"""A training run's settings and its data: the id-grouped splits of the crop folders and the synthetic fakes made from the real crops."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.settings import PROJECT_ROOT
from detector.training.dataset import FaceSet, load_folder
from detector.training.fakes import face_warp, self_blend
from detector.training.images import list_images
from detector.training.splits import (
    ffpp_target_id,
    ffpp_video_id,
    person_id,
    split_groups_by_size,
    split_ids,
)

if TYPE_CHECKING:  # torch, timm and facenet-pytorch load lazily: `--help` stays fast
    pass


FFPP_NAME = r"^\d+(_\d+)?_\d+$"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (recorded in the checkpoint and the manifest)."""

    model: str
    real: tuple[Path, ...]
    fake: tuple[Path, ...] = ()
    sbi: bool = False
    fwa: bool = False
    swap: bool = False
    # the pipeline-cut crops of every source the CLIP member's pool draws on (``real`` and
    # ``fake`` folders are then not read): see :func:`aligned_splits`
    aligned: bool = False
    # share of training crops re-encoded as small H.264 frames (AugmentSettings.codec)
    codec: float = 0.0
    epochs: int = 10
    epoch_size: int = 1024
    img_size: int | None = None
    freeze: tuple[str, ...] = ()
    bn_eval: bool = False
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 0
    split_file: Path | None = None
    extra_val_fraction: float = 0.1
    device: str = "auto"
    amp: str = "none"
    threads: int | None = 2
    time_budget_min: float | None = None
    out: Path = PROJECT_ROOT / "weights"
    work_dir: Path | None = None
    mix: dict[str, float] = field(default_factory=dict)
    teachers: tuple[str, ...] = ()
    distill_alpha: float = 0.5
    feature_beta: float = 0.0
    int8_storage: bool = False


def is_id_split_folder(folder: Path) -> bool:
    import re

    names = [p.stem for p in list_images(folder)[:50]]
    return bool(names) and all(re.match(FFPP_NAME, n) for n in names)


@dataclass(frozen=True)
class Splits:
    train: FaceSet
    val: FaceSet
    test: FaceSet
    val_id: np.ndarray  # bool per val item: from an id-split folder (e.g. FF++), not extra reals
    split: dict


def load_splits(cfg: TrainConfig, log: Callable[[str], None] = print) -> Splits:
    """Read the folders and split them: id-split folders by the split file, others by person."""
    if cfg.aligned:
        return aligned_splits(cfg, log)
    parts: list[tuple[FaceSet, bool]] = []
    for label, folders in ((0, cfg.real), (1, cfg.fake)):
        for folder in folders:
            by_id = is_id_split_folder(folder)
            group_fn = ffpp_target_id if by_id else person_id
            video_fn = ffpp_video_id if by_id else person_id
            fs = load_folder(folder, label, group_fn, video_fn, with_landmarks=label == 0)
            log(f"read {len(fs)} {'fake' if label else 'real'} crops from {folder}")
            parts.append((fs, by_id))
    id_groups = sorted({g for fs, by_id in parts if by_id for g in fs.groups})
    split_file = cfg.split_file
    if split_file and split_file.is_file():
        split = json.loads(split_file.read_text(encoding="utf-8"))
    else:
        split = {"seed": cfg.seed, "fractions": [0.7, 0.15, 0.15]}
        split.update(split_ids(id_groups, split["fractions"], cfg.seed))
        if split_file:
            split_file.parent.mkdir(parents=True, exist_ok=True)
            split_file.write_text(json.dumps(split, indent=1) + "\n", encoding="utf-8")
    where = {g: s for s in ("train", "val", "test") for g in split[s]}
    chosen: dict[str, list[FaceSet]] = {"train": [], "val": [], "test": []}
    val_flags: list[np.ndarray] = []
    for fs, by_id in parts:
        if by_id:
            unknown = sorted({g for g in fs.groups if g not in where})
            if unknown:
                raise ValueError(f"ids {unknown[:5]} are not in the split file {split_file}")
            assign = np.array([where[g] for g in fs.groups])
        else:
            counts = {g: fs.groups.count(g) for g in set(fs.groups)}
            _, val_groups = split_groups_by_size(
                counts, cfg.extra_val_fraction, cfg.seed, keep_in_train=("augmented",)
            )
            assign = np.array(["val" if g in val_groups else "train" for g in fs.groups])
        for s in chosen:
            sub = fs.subset(assign == s)
            chosen[s].append(sub)
            if s == "val":
                val_flags.append(np.full(len(sub), by_id))
    return Splits(
        train=FaceSet.concat(chosen["train"]),
        val=FaceSet.concat(chosen["val"]),
        test=FaceSet.concat(chosen["test"]),
        val_id=np.concatenate(val_flags) if val_flags else np.zeros(0, bool),
        split=split,
    )


def synthetic_fakes(reals: FaceSet, seed: int) -> FaceSet:
    """One SBI or FWA fake per real crop (alternating), deterministic: a validation set of fakes
    when the folders give none (training on real faces only)."""
    rng = np.random.default_rng([seed, 99])
    images = []
    for k, (img, lm) in enumerate(zip(reals.images, reals.landmarks, strict=True)):
        images.append((self_blend if k % 2 == 0 else face_warp)(img, lm, rng)[0])
    return FaceSet(
        images=tuple(images),
        labels=np.ones(len(images), np.int64),
        groups=reals.groups,
        videos=tuple(f"synthetic_{v}" for v in reals.videos),
        landmarks=reals.landmarks,
        names=tuple(f"synthetic_{n}" for n in reals.names),
        origins=reals.origins,
    )


def aligned_splits(cfg: TrainConfig, log: Callable[[str], None] = print) -> Splits:
    """The CLIP member's sources, re-detected with MTCNN and cut as the pipeline cuts faces
    (:func:`detector.training.clip_pool.aligned_sources`), as training sets for a frame member.

    Train: the originals and the four methods of ``ffpp_methods`` (its train folders), the real
    and fake ``ffpp_frames`` crops of the split file's training ids, the real photographs.
    Validation (model selection): ``ffpp_methods``' test folders, originals and four methods
    (that source's own split, by file, not by video: in-distribution and a little optimistic).
    Test: the ``ffpp_frames`` crops of the split file's test ids, as every other member's test.
    The cross-dataset validation is never read here.
    """
    from detector.training.clip_pool import Aligned, aligned_sources, ffpp_frames_aligned

    split = json.loads(Path(cfg.split_file).read_text(encoding="utf-8"))

    def faceset(a: Aligned, label: int, origin: str) -> FaceSet:
        return FaceSet(
            images=tuple(a.images),
            labels=np.full(len(a.images), label, dtype=np.int64),
            groups=tuple(a.groups),
            videos=tuple(
                ffpp_video_id(n) if g.isdigit() else g
                for n, g in zip(a.names, a.groups, strict=True)
            ),
            landmarks=tuple(a.landmarks),
            names=tuple(a.names),
            origins=(origin,) * len(a.images),
        )

    def sets(part: str) -> list[FaceSet]:
        out = []
        for kind, parts in aligned_sources(part, log).items():
            for k, a in enumerate(parts):
                out.append(faceset(a, int(kind != "real"), f"{part}:{kind}:{k}"))
                log(f"{part}: {len(a.images)} {kind} crops")
        return out

    test = [
        faceset(ffpp_frames_aligned(name, set(split["test"]), log), label, f"test:{name}")
        for label, name in ((0, "real"), (1, "fake"))
    ]
    val = FaceSet.concat(sets("val"))
    return Splits(
        train=FaceSet.concat(sets("train")),
        val=val,
        test=FaceSet.concat(test),
        val_id=np.ones(len(val), bool),
        split=split,
    )
