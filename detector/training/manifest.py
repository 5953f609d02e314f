"""What a trained member's manifest says about how it was trained: the notes, the data terms, the configuration."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from detector.training.dataset import SOURCES

if TYPE_CHECKING:  # torch, timm and facenet-pytorch load lazily: `--help` stays fast
    pass
from detector.training.config import Splits, TrainConfig
from detector.training.storage import STORAGE_NOTES
from detector.training.trainables import Trainable

VALIDATION_FOLDERS = (
    "validation and test are FaceForensics++ ids disjoint from training (10 frames per "
    "video, 15 + 15 videos per split): small sets, so AUCs carry a few hundredths of "
    "uncertainty; the FF++ fakes are most likely Face2Face only, so these are "
    "in-distribution numbers, not a measure of generalisation to other datasets"
)
VALIDATION_ALIGNED = (
    "model selection on the held-out test folders of ffpp_methods (originals and all four "
    "methods, split by file, not by video, so a little optimistic); test on the ffpp_frames "
    "crops of the split file's test ids (15 + 15 videos, probably Face2Face fakes): both "
    "in-distribution, not a measure of generalisation (see metrics.crossval)"
)


def auto_notes(
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
        "downscale-upscale, JPEG q40-95"
        + (
            f"; {cfg.codec:.0%} of crops re-encoded as one small H.264 frame (CRF 28-45, "
            "35-100 % of the size)"
            if cfg.codec
            else ""
        ),
        "weights stored as " + STORAGE_NOTES[storage],
        VALIDATION_ALIGNED if cfg.aligned else VALIDATION_FOLDERS,
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


def cfg_key(cfg: TrainConfig, size: int) -> str:
    d = jsonable_cfg(cfg)
    for k in (
        "time_budget_min",
        "out",
        "work_dir",
        "device",
        "threads",
        "epochs",
        "patience",
    ):
        d.pop(k, None)
    return json.dumps({**d, "size": size}, sort_keys=True)


def jsonable_cfg(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    for k, v in d.items():
        if isinstance(v, Path):
            d[k] = str(v)
        elif isinstance(v, tuple):
            d[k] = [str(x) for x in v]
    return d


def describe_training(cfg: TrainConfig, data: Splits, synthetic_val: bool) -> str:
    n_real = int((data.train.labels == 0).sum())
    n_fake = int((data.train.labels == 1).sum())
    made = (("SBI", cfg.sbi), ("FWA", cfg.fwa), ("identity-swap", cfg.swap))
    gens = ", ".join(g for g, on in made if on)
    if cfg.aligned:
        text = (
            f"{n_real} real face crops (ffpp_methods originals, ffpp_frames/real of the training "
            f"ids, faces_real_fmd) and {n_fake} fake crops (ffpp_methods Deepfakes, Face2Face, "
            "FaceSwap, NeuralTextures; ffpp_frames/fake of the training ids), each re-detected "
            "with MTCNN and cut as the pipeline cuts faces"
        )
        return text + (f"; {gens} fakes generated on the fly from the real crops" if gens else "")

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


def data_terms_of(cfg: TrainConfig) -> str:
    folders = " ".join(str(p) for p in (*cfg.real, *cfg.fake)).lower()
    if cfg.aligned or "ffpp" in folders or "faceforensics" in folders:
        return (
            "trained on FaceForensics++ (research-only terms, non-commercial): these weights "
            "inherit them; also trained on public face photographs whose terms are those of "
            "their collection. Research and fact-checking use only."
        )
    return "trained on the folders listed in training_command; their terms apply to the weights"


def fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
