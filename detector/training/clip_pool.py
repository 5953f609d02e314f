"""The CLIP member's training pool: aligned face crops of every source (real, fakes, synthetic fakes), cached once, and the frozen backbone's features of them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from detector.models.preprocess import to_input
from detector.settings import cache_dir, data_dir
from detector.training.dataset import AugmentSettings, augment
from detector.training.fakes import face_warp, identity_swap, self_blend
from detector.training.images import Landmarks, list_images, read_rgb
from detector.training.splits import FFPP_SPLIT_FILE, ffpp_target_id

POOL_VERSION = 1


CROP = 256  # aligned crops are stored at this size; augmentation crops and resizes to 224


SIZE = 224


@dataclass(frozen=True)
class PoolSpec:
    """How many samples of each kind the training pool holds, drawn with a fixed seed: the same
    pool again on one machine. Not necessarily on another: the draw picks among the faces MTCNN
    keeps in each source folder, and a folder with a face more or less (float rounding near the
    0.9 cut, or changed data) has every pick from it land on other faces. On 2026-12-06 this
    machine's draw was not the one the shipped CLIP head trained on (2026-12-05, another CPU),
    why was not established, and the same recipe on the two draws gave cross-dataset video AUCs
    0.79 and 0.88 (README, *Models*).

    Keys of ``counts``: "real" (drawn evenly across the real folders), "ffpp:<Method>" (crops of
    that FaceForensics++ method), "ffpp_frames" (the Face2Face-like crops of ``ffpp_frames``),
    "sbi", "fwa", "swap" (made from random real crops; a swap takes two different people).
    """

    counts: dict[str, int] = field(
        default_factory=lambda: {
            "real": 2400,
            "ffpp:Deepfakes": 400,
            "ffpp:Face2Face": 300,
            "ffpp:FaceSwap": 400,
            "ffpp:NeuralTextures": 400,
            "ffpp_frames": 200,
            "sbi": 450,
            "swap": 450,
            "fwa": 200,
        }
    )
    seed: int = 0
    version: int = POOL_VERSION
    # share of samples (real and fake alike) re-encoded as small H.264 frames (AugmentSettings.codec)
    codec: float = 0.0

    def key(self) -> dict:
        """What identifies the pool on disk (settings at their old defaults are left out, so a
        pool cached before they existed is found again)."""
        d = asdict(self)
        if not d["codec"]:
            del d["codec"]
        return d


@dataclass
class Aligned:
    """Face crops cut as the pipeline cuts them, with landmarks in crop pixels and a group key."""

    images: list[np.ndarray]
    landmarks: list[Landmarks | None]
    groups: list[str]
    names: list[str]


def align_folder(
    folder: Path, group_fn: Callable[[Path], str], log: Callable[[str], None] = print
) -> Aligned:
    """MTCNN on each (padded) image, the most confident face cut square on its box at ``CROP`` px.

    Cached per folder under ``<cache>/clip_pool/aligned``. Images where no face is found at
    0.9 or more are skipped (a Haar-cascade crop that holds no face must not become a sample).
    """
    import hashlib

    from detector.faces.crop import square_crop
    from detector.faces.detect import FaceSettings, MTCNNDetector

    folder = Path(folder).resolve()
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    file = cache_dir() / "clip_pool" / "aligned" / f"{folder.parent.name}_{folder.name}_{key}.npz"
    if file.is_file():
        z = np.load(file, allow_pickle=False)
        lms = [None if np.isnan(m).any() else m for m in z["landmarks"]]
        return Aligned(list(z["images"]), lms, list(z["groups"]), list(z["names"]))
    det = MTCNNDetector(FaceSettings(min_confidence=0.9, detect_max_side=512))
    images, marks, groups, names = [], [], [], []
    paths = list_images(folder)
    t0 = time.time()
    for i, path in enumerate(paths):
        img = read_rgb(path)
        pad = max(img.shape[:2]) // 4
        padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        found = det.detect(padded)
        if found:
            best = max(found, key=lambda d: d.confidence)
            x1, y1, x2, y2 = best.box_xyxy
            side = max(x2 - x1, y2 - y1)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            left, top = round(cx - side / 2), round(cy - side / 2)
            f = CROP / max(2, round(side))
            lm = np.array(
                [((x - left) * f, (y - top) * f) for x, y in best.landmarks_xy], np.float32
            )
            images.append(square_crop(padded, best.box_xyxy, 0.0, CROP))
            marks.append(lm)
            groups.append(group_fn(path))
            names.append(path.name)
        if (i + 1) % 500 == 0:
            log(f"  aligned {i + 1}/{len(paths)} of {folder.name} ({time.time() - t0:.0f} s)")
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        file,
        images=np.stack(images) if images else np.zeros((0, CROP, CROP, 3), np.uint8),
        landmarks=np.stack([m if m is not None else np.full((5, 2), np.nan) for m in marks])
        if marks
        else np.zeros((0, 5, 2)),
        groups=np.array(groups),
        names=np.array(names),
    )
    log(f"aligned {len(images)} of {len(paths)} images in {folder} ({time.time() - t0:.0f} s)")
    return Aligned(images, marks, groups, names)


def _train_ids() -> set[str]:

    split = json.loads(FFPP_SPLIT_FILE.read_text("utf-8"))
    return set(split["train"])


def ffpp_frames_aligned(label: str, ids: set[str], log: Callable[[str], None] = print) -> Aligned:
    """The aligned ``ffpp_frames/<label>`` crops ("real" or "fake") of the given FF++ ids."""
    a = align_folder(data_dir() / "ffpp_frames" / label, ffpp_target_id, log)
    keep = [i for i, g in enumerate(a.groups) if g in ids]
    return Aligned(
        [a.images[i] for i in keep],
        [a.landmarks[i] for i in keep],
        [a.groups[i] for i in keep],
        [a.names[i] for i in keep],
    )


def aligned_sources(part: str, log: Callable[[str], None] = print) -> dict[str, list[Aligned]]:
    """Aligned crops per pool key, for ``part`` "train" or "val" (held-out FF++ crops)."""
    d = data_dir()
    methods = d / "ffpp_methods" / "crops"
    sub = "train" if part == "train" else "test"
    out: dict[str, list[Aligned]] = {"real": []}
    out["real"].append(
        align_folder(methods / "real" / sub, lambda p: f"ffpp_methods_real_{p.stem}", log)
    )
    for m in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
        out[f"ffpp:{m}"] = [align_folder(methods / m / sub, lambda p, m=m: f"{m}_{p.stem}", log)]
    if part == "train":
        ids = _train_ids()
        for label, key in (("real", "real"), ("fake", "ffpp_frames")):
            out.setdefault(key, []).append(ffpp_frames_aligned(label, ids, log))
        from detector.training.splits import person_id

        out["real"].append(align_folder(d / "faces_real_fmd", person_id, log))
    return out


def build_pool(
    spec: PoolSpec, part: str = "train", log: Callable[[str], None] = print
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 N x 224 x 224 x 3 images, labels, kinds): the fixed, augmented pool."""
    rng = np.random.default_rng([spec.seed, 0 if part == "train" else 1])
    src = aligned_sources(part, log)
    reals = src["real"]
    aug = AugmentSettings(crop_scale=(0.85, 1.0), codec=spec.codec)
    images, labels, kinds = [], [], []

    def pick_real() -> tuple[np.ndarray, Landmarks | None, str]:
        a = reals[int(rng.integers(len(reals)))]  # evenly across real folders
        i = int(rng.integers(len(a.images)))
        return a.images[i], a.landmarks[i], a.groups[i]

    counts = spec.counts if part == "train" else {k: v for k, v in _val_counts().items()}
    for kind, n in counts.items():
        for _ in range(n):
            if kind == "real":
                img, label = pick_real()[0], 0
            elif kind in src:
                a = src[kind][int(rng.integers(len(src[kind])))]
                img, label = a.images[int(rng.integers(len(a.images)))], 1
            else:
                img, lm, group = pick_real()
                label = 1
                if kind == "sbi":
                    img = self_blend(img, lm, rng)[0]
                elif kind == "fwa":
                    img = face_warp(img, lm, rng)[0]
                elif kind == "swap":
                    other, olm, ogroup = pick_real()
                    while ogroup == group:
                        other, olm, ogroup = pick_real()
                    img = identity_swap(img, lm, other, olm, rng)[0]
                else:
                    raise ValueError(f"unknown pool kind {kind!r}")
            images.append(augment(img, SIZE, rng, aug))
            labels.append(label)
            kinds.append(kind)
    log(f"pool ({part}): {len(images)} samples, {int(np.sum(labels))} fake")
    return np.stack(images), np.asarray(labels, np.int64), kinds


def _val_counts() -> dict[str, int]:
    return {
        "real": 200,
        "ffpp:Deepfakes": 100,
        "ffpp:Face2Face": 100,
        "ffpp:FaceSwap": 100,
        "ffpp:NeuralTextures": 100,
        "sbi": 100,
        "swap": 100,
    }


def clip_inputs(images: np.ndarray, size: int = SIZE) -> torch.Tensor:
    """uint8 N x H x W x 3 -> CLIP-normalised float N x 3 x size x size."""
    from detector.models.families.clip import CLIP_MEAN, CLIP_STD

    return to_input(images, CLIP_MEAN, CLIP_STD, torch.device("cpu"), size)


def backbone(size: int = SIZE) -> torch.nn.Module:
    """The frozen CLIP image tower with the converted weights (sha256-checked), in eval mode,
    for ``size``-px inputs (another size than 224: the position embeddings resampled, bicubic,
    as timm's ``set_input_size`` does; (size / 16)^2 patch tokens)."""
    from detector.models.families.clip import CLIPVisual, backbone_state, fit_positions

    net = CLIPVisual(size).eval()
    net.load_state_dict(fit_positions(backbone_state(), net))
    return net


def n_tokens(size: int) -> int:
    """Tokens of a ``size``-px input: the class token and one per 16-px patch."""
    return 1 + (size // 16) ** 2


FEATURES_VERSION = 2  # 2: per-block patch-token means ("patch") beside the class tokens


def extract_features(
    images: np.ndarray,
    tokens_after: int | None,
    batch: int = 16,
    log: Callable[[str], None] = print,
    net: torch.nn.Module | None = None,
    size: int = SIZE,
) -> dict[str, np.ndarray]:
    """Frozen-backbone features of every image at ``size`` px: ``cls`` (N, 12, 768) class token
    after each block, ``patch`` (N, 12, 768) mean of the patch tokens (196 at 224 px) after each
    block, ``emb`` (N, 512) projected embedding, ``tokens`` (N, T, 768) after block
    ``tokens_after`` (T = :func:`n_tokens`, 197 at 224 px; 1-based; 0: the embedded patches
    entering the network, before its first LayerNorm ``norm_pre``; None: none). float16 to halve
    memory. ``net``: a loaded :func:`backbone` of that size to reuse (building one takes
    seconds)."""
    from detector.models.families.clip import DEPTH

    net = net if net is not None else backbone(size)
    n = len(images)
    cls = np.zeros((n, DEPTH, 768), np.float16)
    patch = np.zeros((n, DEPTH, 768), np.float16)
    emb = np.zeros((n, 512), np.float16)
    toks = np.zeros((n, n_tokens(size), 768), np.float16) if tokens_after is not None else None
    t0 = time.time()
    with torch.inference_mode():
        for s in range(0, n, batch):
            x = clip_inputs(images[s : s + batch], size)
            out = net.tokens(x)
            cls[s : s + batch] = torch.stack([t[:, 0] for t in out], 1).float().numpy()
            patch[s : s + batch] = torch.stack([t[:, 1:].mean(1) for t in out], 1).float().numpy()
            emb[s : s + batch] = net.embed(out[-1]).float().numpy()
            if toks is not None:
                t = net.embedded_patches(x) if tokens_after == 0 else out[tokens_after - 1]
                toks[s : s + batch] = t.float().numpy()
            if (s // batch) % 20 == 0:
                done = min(n, s + batch)
                log(f"  features {done}/{n} ({(time.time() - t0) / done:.3f} s per image)")
    res = {"cls": cls, "patch": patch, "emb": emb}
    if toks is not None:
        res["tokens"] = toks
    return res


def cached_features(
    crops: np.ndarray | list[np.ndarray],
    tokens_after: int | None,
    net: Callable[[], torch.nn.Module],
    size: int = SIZE,
) -> dict[str, np.ndarray]:
    """:func:`extract_features` of face crops at ``size`` px, cached one file per crop (by the
    sha1 of its pixels) under ``<cache>/crossval/clipfeat_<tokens_after>_v<FEATURES_VERSION>``
    (``..._s<size>`` for another size than 224): a change of face detection or tracking
    recomputes only the new crops. ``net`` builds (or returns) the backbone of that size; it is
    called only when a crop is not cached."""
    import hashlib

    folder = (
        cache_dir()
        / "crossval"
        / (
            f"clipfeat_{_tokens_tag(tokens_after)}_v{FEATURES_VERSION}"
            + (f"_s{size}" if size != SIZE else "")
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    names = [hashlib.sha1(np.ascontiguousarray(c).tobytes()).hexdigest() for c in crops]
    todo = [i for i, n in enumerate(names) if not (folder / f"{n}.npz").is_file()]
    if todo:
        new = extract_features(
            np.stack([crops[i] for i in todo]),
            tokens_after,
            log=lambda *a: None,
            net=net(),
            size=size,
        )
        for j, i in enumerate(todo):
            np.savez(folder / f"{names[i]}.npz", **{k: v[j] for k, v in new.items()})
    per = [np.load(folder / f"{n}.npz") for n in names]
    return {k: np.stack([z[k] for z in per]) for k in per[0].files}


def _tokens_tag(tokens_after: int | None) -> str:
    """The cache folder's name for a token layer ("embed": the embedded patches)."""
    return {None: "none", 0: "embed"}.get(tokens_after, str(tokens_after))


def bf16_pool_features() -> bool:
    from detector.scoring.device import native_bf16

    return native_bf16()


def pool_features(
    spec: PoolSpec,
    part: str,
    tokens_after: int,
    log: Callable[[str], None] = print,
    size: int = SIZE,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """Pool features at ``size`` px (the pool's 224-px images resized, as the member resizes a
    crop), cached on disk by pool spec, part, token layer and size."""
    import hashlib

    what = [spec.key(), part, tokens_after, FEATURES_VERSION, bf16_pool_features()]
    if size != SIZE:  # a pool cached before sizes existed is found again
        what.append(size)
    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_dir() / "clip_pool" / f"{part}_{key}"
    if (folder / "done").is_file():
        feats = {
            k: np.load(folder / f"{k}.npy", mmap_mode="r")
            for k in ("cls", "patch", "emb", "tokens")
            if (folder / f"{k}.npy").is_file()
        }
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
        return feats, np.asarray(meta["labels"]), meta["kinds"]
    images, labels, kinds = build_pool(spec, part, log)
    # the pool is augmented noise around each face: bf16 autocast (2.3x faster where the CPU
    # has it) changes its features far less than augmentation does; validation faces stay fp32
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16_pool_features()):
        feats = extract_features(images, tokens_after, log=log, size=size)
    folder.mkdir(parents=True, exist_ok=True)
    for k, v in feats.items():
        np.save(folder / f"{k}.npy", v)
    meta = {"labels": labels.tolist(), "kinds": kinds, "spec": asdict(spec), "size": size}
    meta["features_precision"] = "bf16 autocast" if bf16_pool_features() else "fp32"
    (folder / "meta.json").write_text(json.dumps(meta), "utf-8")
    (folder / "done").write_text("ok", "utf-8")
    return feats, labels, kinds
