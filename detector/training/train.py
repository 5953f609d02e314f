"""Train an ensemble member on folders of face crops; write ``<name>.safetensors`` and its manifest.

``python -m detector train --model efficientnet_lite0 --real DIR --fake DIR --sbi --fwa ...``

The recipe follows the papers the project implements: binary cross-entropy with class weights
(paper 004), ImageNet or face-recognition initialisation, and real faces turned into fakes on the
fly by self-blending (SBI, Shiohara & Yamasaki 2022) and face-warping artifacts (FWA, Li & Lyu
2019), see :mod:`detector.training.fakes`. Splits are by video / person id, never by frame; the id split
of FaceForensics++-style folders is written to (or read from) a JSON file so it is reproducible.
Model selection (early stopping) uses validation frame AUC only; the test split, when present, is
scored once with the selected weights.

Device-agnostic (``--device auto`` picks CUDA when present), seeded, resumable: a checkpoint is
written to ``<cache>/train/<name>/`` after every epoch and picked up by the same command.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.evaluation.metrics import binary_metrics, json_ready
from detector.settings import PROJECT_ROOT, cache_dir
from detector.training.dataset import SOURCES, FaceSet, TrainingSampler, load_folder
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
    import torch
    from torch import nn

FFPP_NAME = r"^\d+(_\d+)?_\d+$"


@dataclass(frozen=True)
class Trainable:
    """An architecture the trainer can fine-tune.

    Attributes:
        name: output name (``<out>/<name>.safetensors``), also the registry name of the
            shipped members (``resnext50_32x4d`` is not one: it becomes a temporal trunk).
        architecture: plain description for the manifest.
        factory: builds the bare single-logit network.
        pretrained: key of :data:`detector.models.backbones.PRETRAINED` to initialise from, or None.
        input_size, mean, std: the input the network was pretrained with (RGB in [0, 1]).
    """

    name: str
    architecture: str
    factory: Callable[[], nn.Module]
    pretrained: str | None
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


TRAINABLE_NAMES = (
    "efficientnet_lite0",
    "xception",
    "facenet_irv1",
    "inception_resnet_v2",
    "resnext50_32x4d",
)


def trainables() -> dict[str, Trainable]:
    """The architectures ``python -m detector train --model`` knows, by output name."""
    from functools import partial

    from detector.models.backbones import (
        PRETRAINED,
        efficientnet_lite0,
        facenet_irv1,
        inception_resnet_v2,
        keras_xception,
        resnext50_32x4d,
    )

    def from_backbone(name: str, architecture: str, key: str, factory) -> Trainable:
        b = PRETRAINED[key]
        return Trainable(name, architecture, partial(factory, 1), key, b.input_size, b.mean, b.std)

    out = [
        from_backbone(
            "efficientnet_lite0",
            "EfficientNet-Lite0 (timm tf_efficientnet_lite0), single fake logit",
            "efficientnet_lite0_imagenet",
            efficientnet_lite0,
        ),
        from_backbone(
            "xception",
            "Xception (Chollet 2017; timm legacy_xception made Keras-exact), single fake logit",
            "xception_imagenet",
            keras_xception,
        ),
        from_backbone(
            "facenet_irv1",
            "Inception-ResNet-v1 (FaceNet, facenet-pytorch), 128-d bottleneck + fake logit",
            "inception_resnet_v1_msceleb",
            facenet_irv1,
        ),
        Trainable(
            "inception_resnet_v2",
            "Inception-ResNet-v2 (Szegedy et al. 2017; timm inception_resnet_v2), single fake "
            "logit, randomly initialised (no ImageNet weights exist offline)",
            partial(inception_resnet_v2, 1),
            None,
            299,
            (0.5, 0.5, 0.5),
            (0.5, 0.5, 0.5),
        ),
        # paper 001's backbone, trained per frame (not shipped as a member: it becomes the frozen
        # trunk of ``resnext50_lstm``, see detector.training.temporal)
        Trainable(
            "resnext50_32x4d",
            "ResNeXt50_32x4d (Xie et al. 2017; timm resnext50_32x4d), single fake logit, randomly "
            "initialised (no ImageNet weights exist offline)",
            partial(resnext50_32x4d, 1),
            None,
            112,
            (0.485, 0.456, 0.406),
            (0.229, 0.224, 0.225),
        ),
    ]
    return {t.name: t for t in out}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (recorded in the checkpoint and the manifest)."""

    model: str
    real: tuple[Path, ...]
    fake: tuple[Path, ...] = ()
    sbi: bool = False
    fwa: bool = False
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
    teacher_dir: Path | None = None
    mix: dict[str, float] = field(default_factory=dict)
    teachers: tuple[str, ...] = ()
    distill_alpha: float = 0.5
    feature_beta: float = 0.0
    int8_storage: bool = False


# --- data ---------------------------------------------------------------------------------------


def _is_id_split_folder(folder: Path) -> bool:
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
    parts: list[tuple[FaceSet, bool]] = []
    for label, folders in ((0, cfg.real), (1, cfg.fake)):
        for folder in folders:
            by_id = _is_id_split_folder(folder)
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


# --- model --------------------------------------------------------------------------------------


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def build_model(t: Trainable, freeze: Sequence[str] = (), pretrained_root: Path | None = None):
    """The network with its initialisation loaded and the ``freeze`` prefixes frozen."""
    from torch import nn

    from detector.models.backbones import PRETRAINED, load_pretrained

    net = t.factory()
    if t.pretrained:
        load_pretrained(net, t.pretrained, directory=pretrained_root)
        # a fresh, small head: timm's "goog" init draws a 1-output head from U(-1, 1), which
        # gives logits of +-10 on pretrained features and a first epoch spent undoing them
        for n, p in net.named_parameters():
            if n.startswith(PRETRAINED[t.pretrained].head):
                nn.init.normal_(p, std=0.01) if p.ndim > 1 else nn.init.zeros_(p)
    names = {n for n, _ in net.named_modules()}
    unknown = [p for p in freeze if p not in names]
    if unknown:
        raise ValueError(f"--freeze: no module {unknown} in {t.name}")
    for n, p in net.named_parameters():
        if _matches(n, freeze):
            p.requires_grad_(False)
    return net


def set_train_mode(net: nn.Module, freeze: Sequence[str], bn_eval: bool) -> None:
    """Train mode, except frozen modules (and, with ``bn_eval``, every BatchNorm) in eval mode."""
    from torch import nn

    net.train()
    for n, m in net.named_modules():
        if _matches(n, freeze) or (bn_eval and isinstance(m, nn.modules.batchnorm._BatchNorm)):
            m.eval()


def to_tensor(
    images: np.ndarray, mean, std, device: torch.device, size: int | None = None
) -> torch.Tensor:
    """uint8 (B, H, W, 3) RGB -> normalised (B, 3, S, S), resized as floats (the app's
    :func:`detector.scoring.ensemble.preprocess` resizes the uint8 pixels on a CPU, within half a grey
    level of this; ``scripts/check_precision.py`` measures the AUC through the app's path)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255
    if size and (x.shape[-1] != size or x.shape[-2] != size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def predict(
    net: nn.Module,
    images: Sequence[np.ndarray],
    t: Trainable,
    size: int,
    device: torch.device,
    batch_size: int = 64,
    amp: str = "none",
) -> np.ndarray:
    """p_fake per image (images of equal shape are batched together)."""
    import torch

    net.eval()
    out = np.zeros(len(images), np.float64)
    by_shape: dict[tuple, list[int]] = {}
    for i, img in enumerate(images):
        by_shape.setdefault(img.shape, []).append(i)
    for idx in by_shape.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            x = to_tensor(np.stack([images[i] for i in chunk]), t.mean, t.std, device, size)
            with (
                torch.inference_mode(),
                torch.autocast(device.type, torch.bfloat16, enabled=amp == "bf16"),
            ):
                logits = net(x).float().reshape(len(chunk), -1)[:, 0]
            out[chunk] = torch.sigmoid(logits).cpu().numpy()
    return out


# --- metrics ------------------------------------------------------------------------------------


def video_scores(
    videos: Sequence[str], labels: np.ndarray, scores: np.ndarray, reduce=np.mean
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Frames grouped into videos: (video keys, labels, reduced scores)."""
    keys = sorted(set(videos))
    pos = {k: i for i, k in enumerate(keys)}
    buckets: list[list[float]] = [[] for _ in keys]
    lab = np.zeros(len(keys), int)
    for v, y, s in zip(videos, labels, scores, strict=True):
        buckets[pos[v]].append(float(s))
        lab[pos[v]] = int(y)
    return keys, lab, np.array([float(reduce(b)) for b in buckets])


def set_metrics(fs: FaceSet, scores: np.ndarray) -> dict:
    """Frame- and video-level metrics of one labelled set (video score = mean p_fake)."""
    frame = binary_metrics(fs.labels, scores)
    _, vl, vs = video_scores(fs.videos, fs.labels, scores)
    video = binary_metrics(vl, vs)
    return {
        "frame_auc": frame["auc"],
        "video_auc": video["auc"],
        "accuracy": frame["accuracy"],
        "tpr": frame["tpr"],
        "tnr": frame["tnr"],
        "precision": frame["precision"],
        "confusion": frame["confusion"],
        "video_accuracy": video["accuracy"],
        "n_frames": frame["n"],
        "n_videos": video["n"],
    }


# --- saving -------------------------------------------------------------------------------------


def save_weights(state: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | str) -> str:
    """Write a state dict as safetensors with deterministic bytes; returns its sha256.

    ``dtype`` is a float dtype, or "int8" for int8 weight storage (see
    :func:`detector.models.weights.quantize_state`).
    """
    from safetensors.torch import save_file

    from detector.io.files import sha256_file
    from detector.models.weights import quantize_state

    if dtype == "int8":
        tensors = quantize_state(state)
    else:
        tensors = {
            k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu())
            .contiguous()
            .clone()
            for k, v in state.items()
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return sha256_file(path)


def _init_provenance(t: Trainable, root: Path | None) -> tuple[dict | str, str]:
    from detector.models.backbones import pretrained_dir

    if not t.pretrained:
        return "random initialisation", "n/a (random initialisation)"
    man = json.loads(((root or pretrained_dir()) / f"{t.pretrained}.json").read_text("utf-8"))
    info = {
        "file": f".cache/pretrained/{t.pretrained}.safetensors",
        "sha256": man.get("sha256"),
        "source": man.get("source", man.get("source_package", "")),
    }
    for key in ("package", "source_package", "original_file", "url"):
        if key in man:
            info[key] = man[key]
    return info, str(man.get("licence", man.get("license", "see the pretrained manifest")))


# --- training -------------------------------------------------------------------------------------


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def train(
    cfg: TrainConfig,
    trainable: Trainable | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
    pretrained_root: Path | None = None,
) -> dict:
    """Run (or resume) one training; returns the manifest it wrote."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from detector.scoring.device import resolve_device

    t0 = time.time()
    t = trainable or trainables()[cfg.model]
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    size = cfg.img_size or t.input_size
    work = cfg.work_dir or cache_dir() / "train" / t.name
    work.mkdir(parents=True, exist_ok=True)

    data = load_splits(cfg, log)
    val = data.val
    synthetic_val = not (val.labels == 1).any()
    if synthetic_val:
        val = FaceSet.concat([val, synthetic_fakes(val, cfg.seed)])
        log(f"no fake validation crops: added {int((val.labels == 1).sum())} SBI/FWA fakes")
    log(f"train {len(data.train)} crops, val {len(val)}, test {len(data.test)}; size {size}px")

    mix = dict(cfg.mix) or {"real": 0.5, "fake": 0.2, "sbi": 0.15, "fwa": 0.15}
    if not cfg.sbi:
        mix["sbi"] = 0.0
    if not cfg.fwa:
        mix["fwa"] = 0.0
    if not cfg.fake:
        mix["fake"] = 0.0
    teacher: Teachers | None = None
    sample_size = size
    if cfg.teachers:
        teacher = Teachers(cfg.teachers, device, cfg.teacher_dir)
        # draw crops at the largest input any network wants; each resizes down to its own
        sample_size = max(size, *teacher.input_sizes)
        log(
            f"distilling from {', '.join(cfg.teachers)} (mean teacher logit, "
            f"alpha {cfg.distill_alpha:g}"
            + (f"; pooled features, cosine, beta {cfg.feature_beta:g}" if cfg.feature_beta else "")
            + f"); crops drawn at {sample_size}px"
        )
    sampler = TrainingSampler(data.train, sample_size, mix, seed=cfg.seed)
    fake_share = sampler.fake_share
    pos_weight = torch.tensor([(1 - fake_share) / fake_share], device=device)
    log(
        "mix "
        + ", ".join(f"{k} {v:.2f}" for k, v in zip(SOURCES, sampler.mix, strict=True))
        + f"; BCE pos_weight {pos_weight.item():.3f}"
    )

    net = build_model(t, cfg.freeze, pretrained_root).to(device)
    net = net.to(memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    projections = None
    if teacher is not None and cfg.feature_beta > 0:
        # student pooled features -> each teacher's feature space (trained, then discarded)
        width = net.num_features
        projections = nn.ModuleList(nn.Linear(width, d) for d in teacher.feature_sizes).to(device)
    n_train = sum(p.numel() for p in params)
    log(
        f"{t.name}: {n_train / 1e6:.2f} M trainable of "
        f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M"
        + (" (+ feature projections, not shipped)" if projections is not None else "")
    )
    if projections is not None:
        params += list(projections.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(cfg.epoch_size / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = min(steps_per_epoch, total // 10 + 1)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    ckpt = work / "last.pt"
    best_file = work / "best.safetensors"
    state = {"epoch": 0, "best_auc": -1.0, "best_epoch": -1, "history": [], "elapsed_s": 0.0}
    if ckpt.is_file():
        saved = torch.load(ckpt, map_location=device, weights_only=True)
        if saved["config"] != _cfg_key(cfg, size):
            raise ValueError(
                f"{ckpt} is from a different configuration; delete {work} to start again"
            )
        net.load_state_dict(saved["model"])
        if projections is not None and "projections" in saved:
            projections.load_state_dict(saved["projections"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        state = saved["state"]
        torch.set_rng_state(saved["torch_rng"])
        log(f"resumed from {ckpt} after epoch {state['epoch']}")
    prior_elapsed = state["elapsed_s"]
    amp = cfg.amp == "bf16"
    stale = state["epoch"] - 1 - state["best_epoch"] if state["best_epoch"] >= 0 else 0
    run_start = time.time()
    for epoch in range(state["epoch"], cfg.epochs):
        if stale >= cfg.patience:
            log(f"early stop: val AUC has not improved for {stale} epochs")
            break
        if cfg.time_budget_min and state["elapsed_s"] > 0:
            per_epoch = state["elapsed_s"] / max(1, epoch)
            if state["elapsed_s"] + per_epoch > cfg.time_budget_min * 60:
                log(f"stop: another epoch (~{per_epoch:.0f} s) would exceed the time budget")
                break
        e0 = time.time()
        set_train_mode(net, cfg.freeze, cfg.bn_eval)
        losses = []
        for step, (imgs, labels) in enumerate(sampler.epoch(epoch, cfg.epoch_size, cfg.batch_size)):
            x = to_tensor(imgs, t.mean, t.std, device, size)
            y = torch.from_numpy(labels).to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                if projections is not None:
                    pooled = net.forward_head(net.forward_features(x), pre_logits=True)
                    logits = net.get_classifier()(pooled).float().reshape(len(y), -1)[:, 0]
                else:
                    logits = net(x).float().reshape(len(y), -1)[:, 0]
            loss = loss_fn(logits, y)
            if teacher is not None:
                soft, t_feats = teacher(imgs)
                a = cfg.distill_alpha
                loss = (1 - a) * loss + a * F.binary_cross_entropy_with_logits(logits, soft)
                if projections is not None:
                    cos = [
                        F.cosine_similarity(proj(pooled.float()), tf, dim=1).mean()
                        for proj, tf in zip(projections, t_feats, strict=True)
                    ]
                    loss = loss + cfg.feature_beta * (1 - torch.stack(cos).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if (step + 1) % 10 == 0 or step + 1 == steps_per_epoch:
                spent = time.time() - e0
                rate = (step + 1) * cfg.batch_size / spent
                left = (steps_per_epoch - step - 1) * cfg.batch_size / rate
                left += (cfg.epochs - epoch - 1) * steps_per_epoch * cfg.batch_size / rate
                log(
                    f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{steps_per_epoch} "
                    f"loss {np.mean(losses[-10:]):.4f} {rate:.1f} img/s ETA {_fmt_s(left)} (max)"
                )
        scores = predict(net, val.images, t, size, device)
        auc_id = (
            binary_metrics(
                val.labels[: len(data.val)][data.val_id], scores[: len(data.val)][data.val_id]
            )["auc"]
            if not synthetic_val
            else math.nan
        )
        auc_all = binary_metrics(val.labels, scores)["auc"]
        key_auc = auc_all if synthetic_val or math.isnan(auc_id) else auc_id
        state["elapsed_s"] += time.time() - e0
        state["history"].append(
            {
                "epoch": epoch + 1,
                "loss": float(np.mean(losses)),
                "val_auc": key_auc,
                "val_auc_all": auc_all,
            }
        )
        improved = key_auc > state["best_auc"]
        if improved:
            state["best_auc"], state["best_epoch"] = key_auc, epoch
            save_weights(net.state_dict(), best_file, torch.float32)
        stale = epoch - state["best_epoch"]
        state["epoch"] = epoch + 1
        torch.save(
            {
                "config": _cfg_key(cfg, size),
                "model": net.state_dict(),
                **({"projections": projections.state_dict()} if projections is not None else {}),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "state": state,
                "torch_rng": torch.get_rng_state(),
            },
            ckpt,
        )
        log(
            f"epoch {epoch + 1}: loss {np.mean(losses):.4f} val AUC {key_auc:.4f} "
            f"(all val {auc_all:.4f}){' *best*' if improved else ''} "
            f"[{time.time() - e0:.0f} s, run {_fmt_s(time.time() - run_start)}]"
        )

    # --- final evaluation with the best weights
    from safetensors.torch import load_file

    best = load_file(str(best_file))
    net.load_state_dict(best)
    val_scores = predict(net, val.images, t, size, device)
    fs_id = val.subset(np.concatenate([data.val_id, np.zeros(len(val) - len(data.val), bool)]))
    metrics: dict = {}
    if len(fs_id) and (fs_id.labels == 1).any():
        metrics["val"] = set_metrics(fs_id, predict(net, fs_id.images, t, size, device))
    metrics["val_all"] = set_metrics(val, val_scores)
    key = "val" if "val" in metrics else "val_all"
    key_set = fs_id if key == "val" else val
    fp32_auc = metrics[key]["frame_auc"]
    bf16_auc = set_metrics(key_set, predict(net, key_set.images, t, size, device, amp="bf16"))[
        "frame_auc"
    ]
    storage, stored_aucs = choose_storage(
        net,
        best,
        lambda: set_metrics(key_set, predict(net, key_set.images, t, size, device))["frame_auc"],
        fp32_auc,
        allow_int8=cfg.int8_storage,
    )
    metrics["bf16_val_auc"] = bf16_auc
    metrics["fp32_val_auc"] = fp32_auc
    metrics.update(stored_aucs)
    if len(data.test):
        metrics["test"] = set_metrics(data.test, predict(net, data.test.images, t, size, device))
    wall = prior_elapsed + (time.time() - t0)  # earlier runs of a resumed training + this one

    out = Path(cfg.out)
    dtype = {"float32": torch.float32, "float16": torch.float16}.get(storage, storage)
    sha = save_weights(best, out / f"{t.name}.safetensors", dtype)
    init_from, licence = _init_provenance(t, pretrained_root)
    trained_on = _describe_training(cfg, data, synthetic_val)
    manifest = {
        "name": t.name,
        "architecture": t.architecture,
        "input_size": size,
        "normalisation": f"RGB in [0,1], minus mean {[round(float(x), 6) for x in t.mean]}, "
        f"divided by std {[round(float(x), 6) for x in t.std]}; crops resized to {size}px "
        "(bilinear, antialiased)",
        "output": "logit of P(fake)",
        "sha256": sha,
        "dtype": storage,
        "init_from": init_from,
        "licence": f"init weights: {licence}; trained weights: same terms, plus the data terms",
        "data_terms": _data_terms(cfg),
        "trained_on": trained_on,
        "training_command": command,
        "config": _jsonable_cfg(cfg),
        "split": {
            "file": str(cfg.split_file.relative_to(PROJECT_ROOT))
            if cfg.split_file and cfg.split_file.is_relative_to(PROJECT_ROOT)
            else str(cfg.split_file),
            "n_ids": {k: len(data.split[k]) for k in ("train", "val", "test")},
        },
        "wall_time_s": round(wall, 1),
        "epochs": state["epoch"],
        "best_epoch": state["best_epoch"] + 1,
        "history": json_ready(state["history"], 4),
        "metrics": json_ready(metrics, 4),
        "notes": _auto_notes(cfg, t, size, sampler.mix, storage, synthetic_val),
    }
    (out / f"{t.name}.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(
        f"wrote {out / t.name}.safetensors ({manifest['dtype']}, sha256 {sha[:12]}) "
        f"in {_fmt_s(wall)}"
    )
    return manifest


STORAGE_NOTES = {
    "float32": "float32",
    "float16": "float16 (validation AUC within 0.002 of float32)",
    "int8": "int8 per-channel weights, float16 for the rest (validation AUC within 0.002 of "
    "float32; dequantised to float32 when loaded)",
}


def choose_storage(
    net, best: dict, val_auc: Callable[[], float], fp32_auc: float, allow_int8: bool = False
) -> tuple[str, dict]:
    """The smallest storage whose validation AUC stays within 0.002 of float32.

    Loads each candidate's rounded weights into ``net``, measures, and leaves ``net`` holding the
    chosen storage's weights. Returns (storage name, the AUCs measured).
    """

    from detector.models.weights import dequantize_state, quantize_state

    candidates = {
        "float16": {k: v.half().float() if v.is_floating_point() else v for k, v in best.items()}
    }
    if allow_int8:
        candidates["int8"] = dequantize_state(quantize_state(best))
    measured: dict[str, float] = {}
    chosen = "float32"
    for name in ("int8", "float16"):
        if name not in candidates:
            continue
        net.load_state_dict(candidates[name])
        measured[f"{name if name == 'int8' else 'fp16'}_weights_val_auc"] = auc = val_auc()
        if abs(auc - fp32_auc) <= 0.002:
            chosen = name
            break
    net.load_state_dict(candidates[chosen] if chosen != "float32" else best)
    return chosen, measured


class Teachers:
    """Trained members used as teachers: soft targets (sigmoid of their mean fake logit) and
    their pooled penultimate features, from one forward each, in inference mode."""

    def __init__(self, names: Sequence[str], device, weights_dir: Path | None = None) -> None:
        import torch

        from detector.models import create_model, get_spec

        self.specs = [get_spec(n) for n in names]
        bad = [s.name for s in self.specs if s.kind != "frame" or s.positive_class != "fake"]
        wrapped = [create_model(n, weights_dir=weights_dir, device=device) for n in names]
        bad += [
            n for n, w in zip(names, wrapped, strict=True) if not hasattr(w.net, "forward_head")
        ]
        if bad:
            raise ValueError(
                f"teachers must be per-frame timm networks with a fake logit; not {sorted(set(bad))}"
            )
        self.nets = [w.net.to(memory_format=torch.channels_last) for w in wrapped]
        self.device = device
        self.input_sizes = [s.input_size for s in self.specs]
        self.feature_sizes = [n.num_features for n in self.nets]

    def __call__(self, images: np.ndarray):
        import torch

        from detector.scoring.ensemble import preprocess

        logits, feats = [], []
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16):
            for spec, net in zip(self.specs, self.nets, strict=True):
                x = preprocess(images, spec, self.device)
                pooled = net.forward_head(net.forward_features(x), pre_logits=True)
                logits.append(net.get_classifier()(pooled).float().reshape(-1))
                feats.append(pooled.float())
        soft = torch.sigmoid(torch.stack(logits).mean(0))
        return soft.clone(), [f.clone() for f in feats]


def _auto_notes(
    cfg: TrainConfig, t: Trainable, size: int, mix, storage: str, synthetic_val: bool
) -> str:
    frozen = f"frozen modules: {', '.join(cfg.freeze)}" if cfg.freeze else "nothing frozen"
    start = (
        f"Fine-tuned at {size} px (pretrained at {t.input_size} px)"
        if t.pretrained
        else f"Trained from random initialisation at {size} px (the architecture's usual input "
        f"is {t.input_size} px)"
    )
    parts = [
        f"{start}; {frozen}"
        + ("; every BatchNorm kept in eval mode (frozen statistics)" if cfg.bn_eval else ""),
        "batch mix "
        + ", ".join(f"{k} {v:.2f}" for k, v in zip(SOURCES, mix, strict=True))
        + " (real crops drawn evenly across the real folders), BCE with class weights",
        f"AdamW lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}, warm-up + cosine, "
        f"{cfg.epoch_size} crops per epoch, batch {cfg.batch_size}, "
        + ("bf16 autocast" if cfg.amp == "bf16" else "fp32")
        + f"; early stopping on validation frame AUC (patience {cfg.patience}), "
        "best epoch kept",
        "augmentation: random resized crop (scale 0.8-1), flip, colour jitter, blur, noise, "
        "downscale-upscale, JPEG q40-95",
        "weights stored as " + STORAGE_NOTES[storage],
        "validation and test are FaceForensics++ ids disjoint from training (10 frames per "
        "video, 15 + 15 videos per split): small sets, so AUCs carry a few hundredths of "
        "uncertainty; the FF++ fakes are most likely Face2Face only, so these are "
        "in-distribution numbers, not a measure of generalisation to other datasets",
    ]
    if cfg.teachers:
        parts.append(
            f"knowledge distillation from the trained members {', '.join(cfg.teachers)} on every "
            f"training batch: loss = {1 - cfg.distill_alpha:g} x BCE(labels) + "
            f"{cfg.distill_alpha:g} x BCE(sigmoid of the teachers' mean logit)"
            + (
                f" + {cfg.feature_beta:g} x (1 - cosine similarity) between linear projections "
                "of the pooled features and each teacher's pooled features (the projections "
                "are discarded)"
                if cfg.feature_beta
                else ""
            )
        )
    if synthetic_val:
        parts.append("no real fakes were used: model selection used SBI/FWA fakes of val reals")
    return ". ".join(parts) + "."


def _cfg_key(cfg: TrainConfig, size: int) -> str:
    d = _jsonable_cfg(cfg)
    for k in (
        "time_budget_min",
        "out",
        "work_dir",
        "teacher_dir",
        "device",
        "threads",
        "epochs",
        "patience",
    ):
        d.pop(k, None)
    return json.dumps({**d, "size": size}, sort_keys=True)


def _jsonable_cfg(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    for k, v in d.items():
        if isinstance(v, Path):
            d[k] = str(v)
        elif isinstance(v, tuple):
            d[k] = [str(x) for x in v]
    return d


def _describe_training(cfg: TrainConfig, data: Splits, synthetic_val: bool) -> str:
    n_real = int((data.train.labels == 0).sum())
    n_fake = int((data.train.labels == 1).sum())
    gens = " and ".join(g for g, on in (("SBI", cfg.sbi), ("FWA", cfg.fwa)) if on)

    def short(p: Path) -> str:
        return "/".join(Path(p).parts[-2:]) if Path(p).parent.name != "data" else Path(p).name

    parts = [f"{n_real} real face crops from {', '.join(short(p) for p in cfg.real)}"]
    if n_fake:
        parts.append(f"{n_fake} fake crops from {', '.join(short(p) for p in cfg.fake)}")
    if gens:
        parts.append(f"{gens} fakes generated on the fly from the real crops")
    text = "; ".join(parts) + f" (training split: {len(data.split['train'])} video ids)"
    if synthetic_val:
        text += "; model selected on SBI/FWA fakes of the validation reals"
    return text


def _data_terms(cfg: TrainConfig) -> str:
    folders = " ".join(str(p) for p in (*cfg.real, *cfg.fake)).lower()
    if "ffpp" in folders or "faceforensics" in folders:
        return (
            "trained on FaceForensics++ (research-only terms, non-commercial): these weights "
            "inherit them; also trained on public face photographs whose terms are those of "
            "their collection. Research and fact-checking use only."
        )
    return "trained on the folders listed in training_command; their terms apply to the weights"


# --- command line -------------------------------------------------------------------------------
