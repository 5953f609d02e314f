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
written to ``<cache>/train/<name>/`` after every epoch and picked up by the same command."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.evaluation.metrics import binary_metrics, json_ready
from detector.models.preprocess import to_input
from detector.settings import PROJECT_ROOT, cache_dir
from detector.training.dataset import SOURCES, AugmentSettings, FaceSet, TrainingSampler
from detector.training.manifest import fmt_s

if TYPE_CHECKING:  # torch, timm and facenet-pytorch load lazily: `--help` stays fast
    pass
from detector.training.config import TrainConfig, load_splits, synthetic_fakes
from detector.training.distill import Teachers
from detector.training.manifest import (
    auto_notes,
    cfg_key,
    data_terms_of,
    describe_training,
    jsonable_cfg,
)
from detector.training.predict import predict, set_metrics
from detector.training.storage import choose_storage, save_weights
from detector.training.trainables import (
    Trainable,
    build_model,
    init_provenance,
    set_train_mode,
    trainables,
)


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

    mix = dict(cfg.mix) or {"real": 0.5, "fake": 0.2, "sbi": 0.15, "fwa": 0.15, "swap": 0.15}
    for kind, on in (("sbi", cfg.sbi), ("fwa", cfg.fwa), ("swap", cfg.swap)):
        if not on:
            mix[kind] = 0.0
    if not cfg.fake and not cfg.aligned:
        mix["fake"] = 0.0
    teacher: Teachers | None = None
    sample_size = size
    if cfg.teachers:
        teacher = Teachers(cfg.teachers, device)
        # draw crops at the largest input any network wants; each resizes down to its own
        sample_size = max(size, *teacher.input_sizes)
        log(
            f"distilling from {', '.join(cfg.teachers)} (mean teacher logit, "
            f"alpha {cfg.distill_alpha:g}"
            + (f"; pooled features, cosine, beta {cfg.feature_beta:g}" if cfg.feature_beta else "")
            + f"); crops drawn at {sample_size}px"
        )
    sampler = TrainingSampler(
        data.train,
        sample_size,
        mix,
        seed=cfg.seed,
        augment_settings=AugmentSettings(codec=cfg.codec),
    )
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
        if saved["config"] != cfg_key(cfg, size):
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
            x = to_input(imgs, t.mean, t.std, device, size)
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
                    f"loss {np.mean(losses[-10:]):.4f} {rate:.1f} img/s ETA {fmt_s(left)} (max)"
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
                "config": cfg_key(cfg, size),
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
            f"[{time.time() - e0:.0f} s, run {fmt_s(time.time() - run_start)}]"
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
    init_from, licence = init_provenance(t, pretrained_root)
    trained_on = describe_training(cfg, data, synthetic_val)
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
        "licence": f"init weights: {licence.rstrip('.')}; trained weights: same terms, plus the "
        "data terms",
        "data_terms": data_terms_of(cfg),
        "trained_on": trained_on,
        "training_command": command,
        "config": jsonable_cfg(cfg),
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
        "notes": auto_notes(cfg, t, size, sampler.mix, storage, synthetic_val),
    }
    (out / f"{t.name}.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(
        f"wrote {out / t.name}.safetensors ({manifest['dtype']}, sha256 {sha[:12]}) "
        f"in {fmt_s(wall)}"
    )
    return manifest
