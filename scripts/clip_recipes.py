"""Train the CLIP member's recipes and compare them on cross-dataset validation.

Each recipe trains from the cached pool (:mod:`detector.training.clip`) into
``<cache>/clip_candidates/<name>/``; each candidate then scores the faces of the cross-dataset
validation set (:mod:`scripts.crossval`) from cached backbone features, and the video scores an
analysis would report (the member alone) are compared: the share of fakes caught at the threshold
that at most 5 % of the real videos reach (Celeb-DF and the FF++ clips, averaged) and video AUCs
with bootstrap CIs. The better candidate is copied into ``weights/`` by hand (the table says
which); ``python -m scripts.calibrate`` then scores it through the app's own path.

    python -m scripts.clip_recipes [--recipes probe,ln] [--ln-budget-min 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from detector.settings import cache_dir
from detector.training.clip import CachedHead, ClipTrainConfig, predict_cached, train_and_save
from detector.training.clip_pool import backbone, cached_features
from detector.types import ScoringSettings
from scripts.calibrate import aucs, objective, video_scores
from scripts.crossval import all_faces

RECIPES = {
    "probe": ClipTrainConfig(recipe="probe", epochs=40, lr=1e-3),
    "probe_patch": ClipTrainConfig(
        recipe="probe", epochs=40, lr=1e-3, patch_layers=(4, 6, 8, 10, 12)
    ),
    "ln": ClipTrainConfig(recipe="ln", epochs=3, lr=1e-3, ln_lr=2e-4, time_budget_min=40),
    "ln_bf16": ClipTrainConfig(
        recipe="ln",
        epochs=6,
        lr=1e-3,
        ln_lr=2e-4,
        time_budget_min=40,
        patch_layers=(4, 6, 8, 10, 12),
        train_precision="bf16",
    ),
}


def crossval_features(faces: dict, tokens_after: int) -> dict[str, dict[str, np.ndarray]]:
    """Frozen-backbone features of every validation face (cached per crop)."""
    import functools

    net = functools.cache(backbone)
    out = {}
    for key, (_, f) in faces.items():
        if len(f.crops):
            out[key] = cached_features(f.crops, tokens_after, net)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default="probe,ln")
    p.add_argument("--ln-budget-min", type=float, default=40.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    faces = all_faces(log=lambda *a: None)
    table = {}
    for name in args.recipes.split(","):
        cfg = RECIPES[name]
        if cfg.recipe == "ln":
            from dataclasses import replace

            cfg = replace(cfg, time_budget_min=args.ln_budget_min)
        out = cache_dir() / "clip_candidates" / name
        if (out / "clip_vit_b16.json").is_file():
            print(f"{name}: already trained in {out}")
        command = f"python -m scripts.clip_recipes --recipes {name}"
        det, manifest = (
            _load(out, cfg)
            if (out / "clip_vit_b16.json").is_file()
            else train_and_save(cfg, out, command)
        )
        feats = crossval_features(faces, cfg.tune_from - 1)
        head = CachedHead(det, cfg)
        scores = {
            k: predict_cached(head, feats[k], cfg.recipe == "ln") if k in feats else np.zeros(0)
            for k in faces
        }
        vs = video_scores(faces, {"clip": scores}, ScoringSettings(weights={"clip": 1.0}))
        caught, _ = objective(vs, faces)
        table[name] = {
            "caught_at_5pct_false_alarm": round(caught, 4),
            "video_auc": aucs(vs, faces),
            "val_in_distribution": manifest["metrics"],
            "wall_time_s": manifest.get("wall_time_s"),
        }
        print(name, json.dumps(table[name], indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1), "utf-8")
    return 0


def _load(out: Path, cfg: ClipTrainConfig):
    import torch
    from safetensors.torch import load_file

    from detector.models.families.clip import CLIPDetector, load_backbone

    det = CLIPDetector(
        cfg.layers,
        tune_from=cfg.tune_from if cfg.recipe == "ln" else 13,
        patch_layers=cfg.patch_layers,
    )
    load_backbone(det)
    det.load_state_dict(load_file(str(out / "clip_vit_b16.safetensors")), strict=False)
    det.eval()
    torch.set_grad_enabled(True)
    return det, json.loads((out / "clip_vit_b16.json").read_text("utf-8"))


if __name__ == "__main__":
    raise SystemExit(main())
