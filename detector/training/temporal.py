"""Train a temporal member on sequences of one person's face crops; write safetensors + manifest.

``python -m detector train-temporal --model lstm_efficientnet_lite0 --real DIR --fake DIR ...``

Sequences are the frames of one video of a FaceForensics++-style folder (``TTT_k.jpg``, ordered by
``k``; ``ffpp_frames`` has 10 per video, about a second apart, like a track sampled at 1 frame/s).
Splits are by target id from the same split file as the per-frame members, so no video of the
validation or test ids is ever trained on. Besides the real and fake videos, real sequences are
turned into *temporal* synthetic fakes so that real-only data can teach temporal cues:

- ``sbi_track``: the same self-blend (same random parameters) applied to every frame, as a face
  swap that is consistent over time;
- ``sbi_flicker``: an independent self-blend on a random subset of frames, the others left real:
  a blend that flickers from frame to frame;
- ``swap_track``: another real person's face put on every frame with one identity swap (the
  same alignment noise, mask, colour transfer and blur throughout; the donor's frames in order),
  as FaceForensics++'s FaceSwap puts a source video on a target.

Augmentation is drawn once per sequence and applied identically to its frames, so that it adds
no temporal inconsistency to real sequences.

Two ways of training:

- frozen backbone (``lstm_efficientnet_lite0``, ``lstm_xception``; ``resnext50_lstm`` with
  ``--trunk-dir``): a trained per-frame network's trunk is loaded and frozen; features of several
  augmented views of every training sequence are computed once and only the LSTM head is trained
  on them. ResNeXt50 has no shipped per-frame member, so its trunk comes from a
  ``train --model resnext50_32x4d`` run (random init, distilled from the trained members);
- end to end (``resnext50_lstm`` without ``--trunk-dir``): backbone and head trained together
  from random initialisation, sequences generated on the fly, within a time budget.

Metrics are per sequence (= per video): AUC, accuracy, TPR/TNR, precision, confusion, and a 95 %
bootstrap confidence interval of the AUC over videos, because the sets are small."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.evaluation.metrics import binary_metrics, json_ready
from detector.models.registry import get_spec, list_models
from detector.settings import PROJECT_ROOT
from detector.training.config import TrainConfig, load_splits
from detector.training.manifest import data_terms_of, fmt_s
from detector.training.splits import FFPP_SPLIT_FILE
from detector.training.storage import choose_storage, save_weights
from detector.training.trainables import load_trunk

if TYPE_CHECKING:
    from torch import nn
from detector.training.sequences import (
    SYNTHETIC,
    FaceSequence,
    eval_sequences,
    make_sequence,
    sequence_metrics,
    sequences_of,
    to_batch,
)

# The temporal members are the registry's "track" members; each names its trunk on its spec.
TEMPORAL_NAMES = tuple(
    n for n in list_models() if get_spec(n).kind == "track" and get_spec(n).inputs == "crop"
)


def frozen_trunk(cfg: TemporalConfig) -> str | None:
    """The per-frame network whose trained trunk is frozen under the LSTM, or None (end to end).

    ``resnext50_lstm`` has no shipped per-frame member: it is frozen only when ``trunk_dir``
    names a ``train --model resnext50_32x4d`` run, and trained end to end otherwise.
    """
    if cfg.model == "resnext50_lstm" and cfg.trunk_dir is None:
        return None
    return get_spec(cfg.model).trunk or None


# the head of each trunk's per-frame network, dropped when the trunk goes under the LSTM


@dataclass(frozen=True)
class TemporalConfig:
    model: str
    real: tuple[Path, ...]
    fake: tuple[Path, ...] = ()
    views: dict[str, int] = field(
        default_factory=lambda: {"real": 6, "fake": 4, "sbi_track": 3, "sbi_flicker": 3}
    )
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 1e-4
    patience: int = 8
    seed: int = 0
    split_file: Path | None = FFPP_SPLIT_FILE
    amp: str = "bf16"
    threads: int = 2
    time_budget_min: float | None = None
    out: Path = PROJECT_ROOT / "weights"
    weights_dir: Path = PROJECT_ROOT / "weights"
    trunk_dir: Path | None = None  # where the frozen trunk's per-frame weights are (weights_dir)
    int8_storage: bool = True


@dataclass(frozen=True)
class SequenceSets:
    train: list[FaceSequence]
    val: list[FaceSequence]
    test: list[FaceSequence]
    split: dict


def load_sequence_sets(cfg: TemporalConfig, log: Callable[[str], None] = print) -> SequenceSets:
    tc = TrainConfig(
        model=cfg.model, real=cfg.real, fake=cfg.fake, split_file=cfg.split_file, seed=cfg.seed
    )
    from detector.training.config import is_id_split_folder

    data = load_splits(tc, log)
    # only id-split (video) folders make sequences: photos of one person are not a video
    video_folders = {str(f) for f in (*cfg.real, *cfg.fake) if is_id_split_folder(Path(f))}
    skipped = [str(f) for f in (*cfg.real, *cfg.fake) if str(f) not in video_folders]
    if skipped:
        log(f"not video frame folders, left out of the sequences: {', '.join(skipped)}")
    out = {}
    for name, fs in {"train": data.train, "val": data.val, "test": data.test}.items():
        keep = np.array([o in video_folders for o in fs.origins], bool)
        seqs = [s for s in sequences_of(fs.subset(keep)) if len(s.images) >= 2]
        out[name] = seqs
    return SequenceSets(out["train"], out["val"], out["test"], data.split)


def build(cfg: TemporalConfig, device) -> nn.Module:
    """The network; frozen-trunk models get the trained per-frame member's trunk loaded."""
    from detector.models import get_spec

    net = get_spec(cfg.model).factory()
    trunk = frozen_trunk(cfg)
    if trunk:
        state, _ = load_trunk(trunk, cfg.trunk_dir or cfg.weights_dir)
        net.backbone.load_state_dict(state, strict=True)
        for p in net.backbone.parameters():
            p.requires_grad_(False)
    return net.to(device)


E2E_MIX = {"real": 0.5, "fake": 0.2, "sbi_track": 0.15, "sbi_flicker": 0.15}
"""The kinds of sequence the end-to-end path draws on the fly, and their shares."""


def predict_items(
    net, items, spec, size, device, amp: bool, batch: int = 8, donors=()
) -> np.ndarray:
    """P(fake) of each (sequence, kind) item; ``donors``: the real sequences a ``swap_track``
    item takes its other person from."""
    import torch

    net.eval()
    out = np.zeros(len(items))
    for s in range(0, len(items), batch):
        chunk = items[s : s + batch]
        seqs = []
        for k, (seq, kind) in enumerate(chunk):
            rng = np.random.default_rng([7, s + k])
            seqs.append(make_sequence(seq, kind, rng, size, train=False, donors=donors))
        lengths = {len(x) for x in seqs}
        for length in lengths:
            pick = [i for i, x in enumerate(seqs) if len(x) == length]
            x = to_batch(np.stack([seqs[i] for i in pick]), spec.mean, spec.std, device)
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
                logit = net(x).float()[:, 0]
            out[[s + i for i in pick]] = torch.sigmoid(logit).cpu().numpy()
    return out


def train_temporal(cfg: TemporalConfig, command: str = "", log=print) -> dict:
    import torch
    import torch.nn.functional as F

    from detector.models import get_spec
    from detector.scoring.device import resolve_device

    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device("auto")
    spec = get_spec(cfg.model)
    size = spec.input_size
    sets = load_sequence_sets(cfg, log)
    log(f"sequences: train {len(sets.train)}, val {len(sets.val)}, test {len(sets.test)}")
    net = build(cfg, device)
    amp = cfg.amp == "bf16"
    frozen = frozen_trunk(cfg) is not None
    # each real validation video also made into a synthetic fake of a kind trained on
    synthetic = tuple(k for k in SYNTHETIC if cfg.views.get(k)) or ("sbi_track", "sbi_flicker")
    val_items, val_y, _ = eval_sequences(sets.val, cfg.seed, synthetic)
    val_donors = [s for s in sets.val if s.label == 0]
    n_id = len(sets.val)
    reals = [s for s in sets.train if s.label == 0]
    fakes = [s for s in sets.train if s.label == 1]
    if cfg.views.get("swap_track") and len({s.video for s in reals}) < 2:
        from detector.errors import BadSettingsError

        raise BadSettingsError("swap_track views need at least two real training videos")
    pools = {"real": reals, "fake": fakes, **{k: reals for k in SYNTHETIC}}  # what each kind uses
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict] = []
    best = {"auc": -1.0, "epoch": -1, "state": None}

    val_feats: list | None = None  # frozen trunk: validation features computed once

    def score_val() -> np.ndarray:
        if val_feats is None:
            return predict_items(net, val_items, spec, size, device, amp, donors=val_donors)
        net.eval()
        with torch.inference_mode():
            z = torch.cat([net.head(f.unsqueeze(0).to(device)) for f in val_feats]).float()
        return torch.sigmoid(z[:, 1] - z[:, 0]).cpu().numpy()

    def evaluate_epoch(epoch: int, loss: float, e0: float) -> bool:
        scores = score_val()
        auc_id = binary_metrics(val_y[:n_id], scores[:n_id])["auc"]
        auc_all = binary_metrics(val_y, scores)["auc"]
        history.append({"epoch": epoch, "loss": loss, "val_auc": auc_id, "val_auc_all": auc_all})
        # FF++ val AUC, synthetic val breaking ties; with no real fakes, the synthetic ones
        key = auc_all if np.isnan(auc_id) else auc_id + 1e-3 * auc_all
        improved = key > best["auc"]
        if improved:
            best.update(
                auc=key,
                epoch=epoch,
                state={k: v.detach().clone() for k, v in net.state_dict().items()},
            )
        log(
            f"epoch {epoch}: loss {loss:.4f} val AUC {auc_id:.4f} (with synthetic {auc_all:.4f})"
            f"{' *best*' if improved else ''} [{time.time() - e0:.0f} s]"
        )
        return improved

    if frozen:
        # features of every view of every training sequence, computed once
        rng = np.random.default_rng(cfg.seed)
        feats, labels = [], []
        f0 = time.time()
        todo = [(s, kind) for kind, n in cfg.views.items() for s in pools[kind] for _ in range(n)]
        log(f"computing trunk features of {len(todo)} augmented training sequences")
        net.eval()
        for i in range(0, len(todo), 8):
            chunk = todo[i : i + 8]
            seqs = [make_sequence(s, k, rng, size, donors=reals) for s, k in chunk]
            for length in {len(x) for x in seqs}:
                pick = [j for j, x in enumerate(seqs) if len(x) == length]
                x = to_batch(np.stack([seqs[j] for j in pick]), spec.mean, spec.std, device)
                with (
                    torch.inference_mode(),
                    torch.autocast(device.type, torch.bfloat16, enabled=amp),
                ):
                    f = net.features(x).float().cpu()
                feats.extend(f)
                labels.extend(0 if chunk[j][1] == "real" else 1 for j in pick)
            if (i // 8) % 20 == 0:
                done = i + len(chunk)
                rate = done / (time.time() - f0)
                log(f"features {done}/{len(todo)} ({rate:.1f} seq/s)")
        val_feats = []
        for i, (seq, kind) in enumerate(val_items):
            rng_i = np.random.default_rng([7, i])
            x = make_sequence(seq, kind, rng_i, size, train=False, donors=val_donors)
            x = to_batch(x[None], spec.mean, spec.std, device)
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
                val_feats.append(net.features(x).float().cpu()[0])
        y_all = torch.tensor(labels, dtype=torch.long)
        pos = float(y_all.float().mean())
        class_w = torch.tensor([0.5 / (1 - pos), 0.5 / pos])
        for epoch in range(1, cfg.epochs + 1):
            if epoch - best["epoch"] > cfg.patience and best["epoch"] > 0:
                log(f"early stop: no val gain for {cfg.patience} epochs")
                break
            e0 = time.time()
            net.head.train()
            order = torch.randperm(len(feats))
            losses = []
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s : s + cfg.batch_size]
                groups: dict[int, list[int]] = {}
                for j in idx.tolist():
                    groups.setdefault(feats[j].shape[0], []).append(j)
                for js in groups.values():
                    x = torch.stack([feats[j] for j in js]).to(device)
                    z = net.head(x)
                    loss = F.cross_entropy(z, y_all[js].to(device), weight=class_w.to(device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
            evaluate_epoch(epoch, float(np.mean(losses)), e0)
    else:
        steps_per_epoch = 32
        mix = np.array(list(E2E_MIX.values()))
        kinds = np.array(list(E2E_MIX))
        fake_share = mix[1:].sum()
        class_w = torch.tensor([0.5 / (1 - fake_share), 0.5 / fake_share], dtype=torch.float32)
        total = steps_per_epoch * cfg.epochs
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=total)
        rng = np.random.default_rng(cfg.seed)
        run_start = time.time()
        for epoch in range(1, cfg.epochs + 1):
            spent = time.time() - run_start
            if cfg.time_budget_min and epoch > 1:
                per = spent / (epoch - 1)
                if spent + per > cfg.time_budget_min * 60:
                    log(f"stop: another epoch (~{per:.0f} s) would exceed the time budget")
                    break
            if epoch - best["epoch"] > cfg.patience and best["epoch"] > 0:
                log(f"early stop: no val gain for {cfg.patience} epochs")
                break
            e0 = time.time()
            net.train()
            losses = []
            for step in range(steps_per_epoch):
                ks = rng.choice(len(kinds), size=cfg.batch_size, p=mix)
                seqs, ys = [], []
                for k in ks:
                    pool = pools[kinds[k]]
                    if not pool:
                        continue
                    s = pool[int(rng.integers(len(pool)))]
                    seqs.append(make_sequence(s, str(kinds[k]), rng, size))
                    ys.append(0 if k == 0 else 1)
                length = min(len(x) for x in seqs)
                x = to_batch(np.stack([x[:length] for x in seqs]), spec.mean, spec.std, device)
                with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                    z = net.class_logits(x).float()
                y = torch.tensor(ys, device=device)
                loss = F.cross_entropy(z, y, weight=class_w.to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                if (step + 1) % 8 == 0:
                    rate = (step + 1) * cfg.batch_size / (time.time() - e0)
                    log(
                        f"epoch {epoch} step {step + 1}/{steps_per_epoch} "
                        f"loss {np.mean(losses[-8:]):.4f} {rate:.2f} seq/s"
                    )
            evaluate_epoch(epoch, float(np.mean(losses)), e0)

    # --- final: best weights, storage, val and test metrics
    net.load_state_dict(best["state"])
    val_scores = predict_items(net, val_items, spec, size, device, False, donors=val_donors)
    fp32_auc = binary_metrics(val_y[:n_id], val_scores[:n_id])["auc"]
    bf16_scores = predict_items(net, val_items[:n_id], spec, size, device, amp=True)
    bf16_auc = binary_metrics(val_y[:n_id], bf16_scores)["auc"]

    def val_auc() -> float:
        s = predict_items(net, val_items[:n_id], spec, size, device, amp=False)
        return binary_metrics(val_y[:n_id], s)["auc"]

    best_state = best["state"]
    storage, stored = choose_storage(
        net, best_state, val_auc, fp32_auc, allow_int8=cfg.int8_storage
    )
    metrics: dict = {
        "val": sequence_metrics(val_y[:n_id], val_scores[:n_id]),
        "val_all": sequence_metrics(val_y, val_scores),
        "fp32_val_auc": fp32_auc,
        "bf16_val_auc": bf16_auc,
        **stored,
    }
    test_items, test_y, test_names = eval_sequences(sets.test, cfg.seed)
    if test_items:
        test_scores = predict_items(net, test_items, spec, size, device, amp=False)
        metrics["test"] = sequence_metrics(test_y, test_scores)
        metrics["test"]["per_video"] = {
            n: round(float(s), 4) for n, s in zip(test_names, test_scores, strict=True)
        }
    dtype = {"float32": torch.float32, "float16": torch.float16}.get(storage, storage)
    out = Path(cfg.out)
    sha = save_weights(best_state, out / f"{cfg.model}.safetensors", dtype)
    wall = time.time() - t0
    trunk = frozen_trunk(cfg)
    trunk_man = (
        json.loads(((cfg.trunk_dir or cfg.weights_dir) / f"{trunk}.json").read_text("utf-8"))
        if trunk
        else {}
    )
    made = [k for k in SYNTHETIC if (cfg.views.get(k) if frozen else k in E2E_MIX)]
    manifest = {
        "name": cfg.model,
        "kind": "track",
        "architecture": spec.description,
        "input_size": size,
        "sequence_length": spec.sequence_length,
        "normalisation": f"RGB in [0,1], minus mean {[round(float(x), 6) for x in spec.mean]}, "
        f"divided by std {[round(float(x), 6) for x in spec.std]}; crops resized to {size}px",
        "output": "z_fake - z_real of the 2-way layer (sigmoid = softmax P(fake)), per sequence",
        "sha256": sha,
        "dtype": storage,
        "init_from": (
            f"backbone: the trained per-frame network {trunk}.safetensors (sha256 "
            f"{trunk_man['sha256']}; trained by `{trunk_man.get('training_command', '?')}`), "
            "frozen; LSTM head: random initialisation"
            if trunk
            else "random initialisation (no ImageNet ResNeXt50 weights exist offline)"
        ),
        "licence": "trained here; the data terms apply"
        + (
            f"; backbone inherits the terms of {trunk}.json ({trunk_man.get('licence', '?')})"
            if trunk
            else ""
        ),
        "data_terms": data_terms_of(TrainConfig(model=cfg.model, real=cfg.real, fake=cfg.fake)),
        "trained_on": (
            f"{sum(s.label == 0 for s in sets.train)} real and "
            f"{sum(s.label == 1 for s in sets.train)} fake FaceForensics++ c23 videos "
            f"(ffpp_frames, {SEQ_DESC}), training split of {cfg.split_file and cfg.split_file.name}"
        )
        + (
            f"; plus {_words(made)} temporal fakes made from the real training videos"
            if made
            else ""
        ),
        "training_command": command,
        "config": {
            k: (
                str(v)
                if isinstance(v, Path)
                else [str(x) for x in v]
                if isinstance(v, tuple)
                else v
            )
            for k, v in cfg.__dict__.items()
        },
        "split": {"n_videos": {k: len(getattr(sets, k)) for k in ("train", "val", "test")}},
        "wall_time_s": round(wall, 1),
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "history": json_ready(history, 4),
        "metrics": json_ready(metrics, 4),
        **({"trunk_metrics": trunk_man.get("metrics", {})} if trunk else {}),
        "notes": _notes(cfg, frozen, storage),
    }
    (out / f"{cfg.model}.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    log(f"wrote {out / cfg.model}.safetensors ({storage}, sha256 {sha[:12]}) in {fmt_s(wall)}")
    return manifest


SEQ_DESC = "10 frames per video, spread over the video, not consecutive"


def _words(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def _notes(cfg: TemporalConfig, frozen: bool, storage: str) -> str:
    parts = [
        "Scores windows of up to 10 crops of one tracked person as the pipeline samples them "
        "(1 frame/s by default); trained on 10 frames spread over each video (not "
        "consecutive frames, unlike paper 001's first 150 frames at 30 fps)",
        (
            f"backbone frozen at the trained per-frame {frozen_trunk(cfg)} weights; features of "
            + ", ".join(f"{n} {k}" for k, n in cfg.views.items())
            + " augmented views per training video computed once; LSTM head trained with "
            f"AdamW lr {cfg.lr:g}, class-weighted cross-entropy, early stopping on validation "
            f"AUC (patience {cfg.patience})"
        )
        if frozen
        else (
            "backbone and head trained end to end from random initialisation at 112 px, "
            "sequences generated on the fly ("
            + ", ".join(f"{k} {v:g}" for k, v in E2E_MIX.items())
            + f"), AdamW one-cycle lr {cfg.lr:g}, bf16 autocast, "
            f"time budget {cfg.time_budget_min} min"
        ),
        "augmentation drawn once per sequence (same crop, flip, colour, blur, noise, JPEG on "
        "every frame)",
        f"weights stored as {storage}",
        "DATA IS THIN: 15 real + 15 fake validation and test videos; the 95 % bootstrap "
        "intervals over videos are wide, and the FF++ fakes are probably Face2Face only",
    ]
    return ". ".join(parts) + "."
