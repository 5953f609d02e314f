"""Id-grouped splits of face-crop folders.

Real and fake face images come from plain folders; each image is grouped by an id function
(FaceForensics++ ``TTT_k`` / ``TTT_SSS_k`` -> target video ``TTT``; person name for other sets) so
that frames of one video or one person never sit in two splits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from detector.settings import WEIGHTS_DIR

FFPP_SPLIT_FILE = WEIGHTS_DIR / "splits" / "ffpp_split.json"
"""The FaceForensics++ id split (train / val / test) every trainer and measurement uses."""


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
