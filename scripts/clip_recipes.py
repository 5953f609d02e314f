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
    p.add_argument(
        "--ship",
        action="store_true",
        help="copy the best candidate (by the rule in ship()) into weights/, with the comparison",
    )
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
    if args.ship:
        ship(table, f"python -m scripts.clip_recipes --recipes {args.recipes} --ship")
    return 0


def ship(table: dict, command: str, weights: Path | None = None) -> str:
    """Copy the candidate that catches the most cross-dataset fakes at the threshold 5 % of the
    real videos reach (ties: the higher video AUC on all fakes) into ``weights/``, its manifest
    carrying every candidate's figures (``metrics.recipe_comparison``). ``python -m
    scripts.calibrate`` must run after it: the ensemble's weights and threshold depend on it."""
    import shutil

    from detector.settings import WEIGHTS_DIR

    weights = weights or WEIGHTS_DIR
    best = max(
        table,
        key=lambda n: (
            table[n]["caught_at_5pct_false_alarm"],
            table[n]["video_auc"]["all"]["auc"],
        ),
    )
    src = cache_dir() / "clip_candidates" / best
    man = json.loads((src / "clip_vit_b16.json").read_text("utf-8"))
    shutil.copyfile(src / "clip_vit_b16.safetensors", weights / "clip_vit_b16.safetensors")
    others = ", ".join(
        f"{n} {table[n]['caught_at_5pct_false_alarm']:.3f} / {table[n]['video_auc']['all']['auc']:.3f}"
        for n in table
        if n != best
    )
    man["metrics"]["recipe_comparison"] = {
        "command": command,
        "chosen": best,
        "rule": "the most cross-dataset fakes caught at the threshold at most 5 % of the real "
        "videos reach (Celeb-DF and FF++ DF/FS/NT clips averaged), then video AUC on all fakes",
        "why": f"{best}: caught {table[best]['caught_at_5pct_false_alarm']:.3f}, video AUC "
        f"{table[best]['video_auc']['all']['auc']:.3f}; others (caught / AUC): {others}",
        "recipes": {
            n: {
                "caught_at_5pct_false_alarm": t["caught_at_5pct_false_alarm"],
                "video_auc": {k: v["auc"] for k, v in t["video_auc"].items()},
                "val_frame_auc": t["val_in_distribution"]["val_ffpp_methods_test_crops"][
                    "frame_auc"
                ],
                "config": _config(n),
                "wall_time_s": t["wall_time_s"],
            }
            for n, t in table.items()
        },
    }
    (weights / "clip_vit_b16.json").write_text(json.dumps(man, indent=2) + "\n", "utf-8")
    print(f"shipped {best} into {weights}: now run python -m scripts.calibrate")
    return best


def _config(name: str) -> dict:
    """The recipe's settings as its candidate manifest records them."""
    path = cache_dir() / "clip_candidates" / name / "clip_vit_b16.json"
    conf = json.loads(path.read_text("utf-8"))["config"]
    keys = ("recipe", "layers", "patch_layers", "tune_from", "train_precision", "epochs")
    return {k: conf.get(k) for k in keys}


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
