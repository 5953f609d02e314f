"""Train the CLIP member's recipes and compare them on cross-dataset validation.

Each recipe trains from the cached pool (:mod:`detector.training.clip`) into
``<cache>/clip_candidates/<name>/``; each candidate (and ``shipped``, the head in
``weights/``) then scores the faces of the cross-dataset validation set (:mod:`scripts.crossval`)
from cached backbone features. Compared: the member alone (the share of fakes caught at the
threshold that at most 5 % of the real videos reach, Celeb-DF and the FF++ clips averaged, and
video AUCs with bootstrap CIs) and the best ensemble it would ship in (calibrate's search with the
other members' cached scores). ``--ship`` copies the candidate whose ensemble does best into
``weights/`` (or keeps the shipped head) with the comparison in its manifest;
``python -m scripts.calibrate`` then scores it through the app's own path and writes the ensemble.

    python -m scripts.clip_recipes [--recipes shipped,probe,ln] [--ln-budget-min 40]
                                   [--seeds 0,1,2 [--average]] [--json out.json] [--ship]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from detector.models import get_spec
from detector.settings import cache_dir
from detector.training.clip import (
    MEMBER,
    CachedHead,
    ClipTrainConfig,
    auc,
    new_detector,
    per_kind_auc,
    predict_cached,
    save_head_average,
    train_and_save,
)
from detector.training.clip_pool import SIZE, PoolSpec, backbone, cached_features, pool_features
from detector.types import ScoringSettings
from scripts.calibrate import aucs, objective, search, video_scores
from scripts.crossval import all_faces, member_scores

# calibrate's other candidates: each recipe is judged in the ensemble it would ship in
OTHER_MEMBERS = ("efficientnet_lite0", "xception", "inception_resnet_v2", "mesoinception4_f2f")

BIG_POOL = PoolSpec(
    counts={
        "real": 4800,
        "ffpp:Deepfakes": 850,
        "ffpp:Face2Face": 600,
        "ffpp:FaceSwap": 850,
        "ffpp:NeuralTextures": 850,
        "ffpp_frames": 400,
        "sbi": 900,
        "swap": 900,
        "fwa": 400,
    }
)

RECIPES = {
    "probe": ClipTrainConfig(recipe="probe", epochs=40, lr=1e-3),
    "probe_patch": ClipTrainConfig(
        recipe="probe", epochs=40, lr=1e-3, patch_layers=(4, 6, 8, 10, 12)
    ),
    # the same probe on a pool twice the size: every FF++ training crop of each method about
    # once, twice the real faces and twice the generated fakes (new augmentations of each)
    "probe_big": ClipTrainConfig(recipe="probe", epochs=40, lr=1e-3, pool=BIG_POOL),
    # the class tokens of every block, as RINE (Koutlis & Papadopoulos, ECCV 2024) reads
    # intermediate CLIP blocks for generated-image detection
    "probe_all": ClipTrainConfig(recipe="probe", epochs=40, lr=1e-3, layers=tuple(range(1, 13))),
    # every block's class token on the pool twice the size (probe_big's pool)
    "probe_all_big": ClipTrainConfig(
        recipe="probe", epochs=40, lr=1e-3, layers=tuple(range(1, 13)), pool=BIG_POOL
    ),
    # the five-block probe on a pool where half the samples, real and fake alike, are re-encoded
    # as small H.264 frames (c40-like): against a "compressed = fake" shortcut (it lost)
    "probe_codec": ClipTrainConfig(recipe="probe", epochs=40, lr=1e-3, pool=PoolSpec(codec=0.5)),
    "probe_codec_patch": ClipTrainConfig(
        recipe="probe",
        epochs=40,
        lr=1e-3,
        patch_layers=(4, 6, 8, 10, 12),
        pool=PoolSpec(codec=0.5),
    ),
    # probe_all on another draw of the same pool (PoolSpec seed 1): how much the cross-dataset
    # figures depend on which augmented samples the 5,200 are
    "probe_all_pool1": ClipTrainConfig(
        recipe="probe", epochs=40, lr=1e-3, layers=tuple(range(1, 13)), pool=PoolSpec(seed=1)
    ),
    # probe_all on 192-px inputs (144 patches against 196: about a quarter less of the member's
    # time); the backbone's position embeddings resampled, the head trained on those features
    "probe_all_192": ClipTrainConfig(
        recipe="probe", epochs=40, lr=1e-3, layers=tuple(range(1, 13)), size=192
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
    # every LayerNorm of the network tuned (LNCLIP-DF / GenD's recipe, Yermakov et al. 2025),
    # from the shipped probe's head, on native bf16 (AMX: ~0.17 s per crop forward and backward);
    # its time budget, as every ln recipe's, is --ln-budget-min
    "ln_all": ClipTrainConfig(
        recipe="ln",
        epochs=8,
        lr=3e-4,
        ln_lr=1e-4,
        tune_from=1,
        layers=tuple(range(1, 13)),
        train_precision="bf16",
        init_head="shipped",
    ),
}


def crossval_features(
    faces: dict, tokens_after: int, size: int = SIZE
) -> dict[str, dict[str, np.ndarray]]:
    """Frozen-backbone features of every validation face at ``size`` px (cached per crop)."""
    import functools

    net = functools.cache(functools.partial(backbone, size))
    out = {}
    for key, (_, f) in faces.items():
        if len(f.crops):
            out[key] = cached_features(f.crops, tokens_after, net, size)
    return out


def by_source(vs: dict[str, float], faces: dict) -> dict[str, float]:
    """Mean video score per label and source folder (a clip's key without its name, e.g.
    "real ffpp_c40/real"): where the false alarms and the missed fakes come from."""
    groups: dict[str, list[float]] = {}
    for key, score in vs.items():
        label = "fake" if faces[key][0].label else "real"
        groups.setdefault(f"{label} {key.rsplit('/', 1)[0]}", []).append(score)
    return {g: round(float(np.mean(v)), 3) for g, v in sorted(groups.items())}


def evaluate(det, manifest: dict, cfg: ClipTrainConfig, faces: dict, others: dict) -> dict:
    """One candidate on cross-dataset validation: alone and in the best ensemble it would ship in
    (calibrate's search with the other members' cached scores)."""
    feats = crossval_features(faces, cfg.tune_from - 1, cfg.size)
    head = CachedHead(det, cfg)
    scores = {
        k: predict_cached(head, feats[k], cfg.recipe == "ln") if k in feats else np.zeros(0)
        for k in faces
    }
    vs = video_scores(faces, {"clip": scores}, ScoringSettings(weights={"clip": 1.0}))
    caught, _ = objective(vs, faces)
    best = search(faces, {**others, MEMBER: scores})[0]
    return {
        "caught_at_5pct_false_alarm": round(caught, 4),
        "video_auc": aucs(vs, faces),
        "ensemble": {
            "caught_at_5pct_false_alarm": round(best[0], 4),
            "video_auc_all": round(best[1], 4),
            "aggregation": best[3],
            "members": best[4],
        },
        "mean_video_score_by_source": by_source(vs, faces),
        "val_in_distribution": manifest["metrics"],
        "wall_time_s": manifest.get("wall_time_s"),
        "input_size": cfg.size,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default="probe,ln")
    p.add_argument("--ln-budget-min", type=float, default=40.0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--seeds",
        default="0",
        help="also train each recipe with these seeds (e.g. 0,1,2): the spread a retraining "
        "gives; of one recipe only seed 0 or, with --average, the seeds' mean can ship",
    )
    p.add_argument(
        "--average",
        action="store_true",
        help="also compare, for each probe recipe trained with two or more seeds, the head that "
        "averages them (recipe+seedmean; shippable: it is one linear head)",
    )
    p.add_argument(
        "--ship",
        action="store_true",
        help="copy the best candidate (by the rule in ship()) into weights/, with the comparison",
    )
    args = p.parse_args(argv)
    faces = all_faces(log=lambda *a: None)
    others = {m: member_scores(m, faces) for m in OTHER_MEMBERS}
    table = {}
    runs = [(n, 0) for n in args.recipes.split(",")]
    runs += [
        (n, int(k))
        for n in args.recipes.split(",")
        if n not in SHIPPED_NAMES
        for k in args.seeds.split(",")
        if int(k)
    ]
    trained: dict[str, list[Path]] = {}
    for recipe, seed in runs:
        name = recipe if not seed else f"{recipe}{SEED_MARK}{seed}"
        cfg = RECIPES[recipe] if recipe not in SHIPPED_NAMES else _shipped_config()
        if recipe == SHIPPED_192:
            cfg = replace(cfg, size=192)
        if cfg.recipe == "ln":
            cfg = replace(cfg, time_budget_min=args.ln_budget_min)
        cfg = replace(cfg, seed=seed) if seed else cfg
        out = _folder(name)
        if (out / "clip_vit_b16.json").is_file():
            print(f"{name}: already trained in {out}")
        command = f"python -m scripts.clip_recipes --recipes {recipe}" + (
            f" --seeds {seed}" if seed else ""
        )
        det, manifest = (
            _load(out, cfg)
            if (out / "clip_vit_b16.json").is_file()
            else train_and_save(cfg, out, command)
        )
        if recipe == SHIPPED_192:  # its in-distribution check at the size it runs at
            manifest = resized_manifest(det, manifest, cfg)
        trained.setdefault(recipe, []).append(out)
        table[name] = evaluate(det, manifest, cfg, faces, others)
        print(name, json.dumps(table[name], indent=1), flush=True)
    if args.average:
        for recipe, folders in trained.items():
            if recipe in SHIPPED_NAMES or len(folders) < 2 or RECIPES[recipe].recipe != "probe":
                continue
            name = f"{recipe}{AVERAGE_MARK}"
            command = (
                f"python -m scripts.clip_recipes --recipes {recipe} --seeds {args.seeds} --average"
            )
            det, manifest = save_head_average(folders, RECIPES[recipe], _folder(name), command)
            table[name] = evaluate(det, manifest, RECIPES[recipe], faces, others)
            print(name, json.dumps(table[name], indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1), "utf-8")
    if args.ship:
        ship(
            table,
            f"python -m scripts.clip_recipes --recipes {args.recipes} --seeds {args.seeds}"
            + (" --average" if args.average else "")
            + " --ship",
        )
    return 0


def resized_manifest(det, manifest: dict, cfg: ClipTrainConfig) -> dict:
    """A copy of the shipped head's manifest whose in-distribution check is measured again on
    the validation pool's features at ``cfg.size`` (the head unchanged)."""
    val, yv, kv = pool_features(cfg.pool, "val", cfg.tune_from - 1, size=cfg.size)
    pv = predict_cached(CachedHead(det, cfg), val, False)
    check = {
        **manifest["metrics"]["val_ffpp_methods_test_crops"],
        "frame_auc": round(auc(yv, pv), 4),
        "per_kind_auc": per_kind_auc(yv, pv, kv),
        "n": len(yv),
        "input_size": cfg.size,
    }
    return {**manifest, "metrics": {**manifest["metrics"], "val_ffpp_methods_test_crops": check}}


def ship(table: dict, command: str, weights: Path | None = None) -> str:
    """Copy the candidate whose best ensemble (calibrate's search with the other members)
    catches the most cross-dataset fakes at the threshold 5 % of the real videos reach (ties:
    that ensemble's video AUC) into ``weights/``, its manifest carrying every candidate's
    figures (``metrics.recipe_comparison``). The member alone can rank otherwise: what ships is
    the ensemble. ``python -m scripts.calibrate`` must run after it."""
    import shutil

    from detector.settings import WEIGHTS_DIR

    weights = weights or WEIGHTS_DIR
    # the member runs at its spec's input size (SHIPPED_SIZE); a candidate at another size is
    # measured here, but shipping it also needs SHIPPED_SIZE changed, its bf16 checks
    # (scripts.check_clip_precision) and calibrate on every precision path
    runs_at = get_spec(MEMBER).input_size
    best = max(
        (n for n in table if SEED_MARK not in n and table[n].get("input_size", runs_at) == runs_at),
        key=lambda n: (
            table[n]["ensemble"]["caught_at_5pct_false_alarm"],
            table[n]["ensemble"]["video_auc_all"],
        ),
    )
    src = _folder(best)
    man = json.loads((src / "clip_vit_b16.json").read_text("utf-8"))
    if best not in SHIPPED_NAMES:
        shutil.copyfile(src / "clip_vit_b16.safetensors", weights / "clip_vit_b16.safetensors")
    others = ", ".join(
        f"{n} {table[n]['ensemble']['caught_at_5pct_false_alarm']:.3f} / "
        f"{table[n]['ensemble']['video_auc_all']:.3f}"
        for n in table
        if n != best
    )
    # the comparisons that chose the heads shipped before stay on record
    current = json.loads((weights / f"{MEMBER}.json").read_text("utf-8"))["metrics"]
    history = [*current.get("earlier_recipe_comparisons", [])]
    if current.get("recipe_comparison"):
        history.append(current["recipe_comparison"])
    man["metrics"]["earlier_recipe_comparisons"] = history
    man["metrics"]["recipe_comparison"] = {
        "command": command,
        "chosen": best,
        "rule": "in its best ensemble (calibrate's search over the other members), the most "
        "cross-dataset fakes caught at the threshold at most 5 % of the real videos reach "
        "(Celeb-DF and FF++ DF/FS/NT clips averaged), then that ensemble's video AUC",
        "why": f"{best}: its ensemble caught "
        f"{table[best]['ensemble']['caught_at_5pct_false_alarm']:.3f}, video AUC "
        f"{table[best]['ensemble']['video_auc_all']:.3f}; others (caught / AUC): {others}",
        "recipes": {
            n: {
                "caught_at_5pct_false_alarm": t["caught_at_5pct_false_alarm"],
                "ensemble": t["ensemble"],
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
    if best in SHIPPED_NAMES:
        print("the shipped head stays (its manifest records the comparison)")
    else:
        print(f"shipped {best} into {weights}: now run python -m scripts.calibrate")
    return best


SHIPPED = "shipped"  # the head in weights/, compared as it is
SHIPPED_192 = "shipped_192"  # the same head on 192-px inputs (the backbone's positions resampled)
SHIPPED_NAMES = (SHIPPED, SHIPPED_192)
SEED_MARK = "@seed"  # "probe_all@seed1": a recipe retrained with another seed, for the spread
AVERAGE_MARK = "+seedmean"  # "probe_all+seedmean": the mean of that recipe's seeds' heads


def _folder(name: str) -> Path:
    from detector.settings import WEIGHTS_DIR

    return WEIGHTS_DIR if name in SHIPPED_NAMES else cache_dir() / "clip_candidates" / name


def _shipped_config() -> ClipTrainConfig:
    from detector.settings import WEIGHTS_DIR

    return ClipTrainConfig.of_manifest(
        json.loads((WEIGHTS_DIR / f"{MEMBER}.json").read_text("utf-8"))
    )


def _config(name: str) -> dict:
    """The recipe's settings as its candidate manifest records them."""
    path = _folder(name) / "clip_vit_b16.json"
    conf = json.loads(path.read_text("utf-8"))["config"]
    keys = (
        "recipe",
        "layers",
        "patch_layers",
        "tune_from",
        "train_precision",
        "epochs",
        "seed",
        "size",
    )
    out = {k: conf.get(k) for k in keys}
    if "averaged_seeds" in conf:
        out["averaged_seeds"] = conf["averaged_seeds"]  # a seed-mean head
    if conf.get("pool", {}).get("codec"):
        out["pool_codec"] = conf["pool"]["codec"]  # share of the pool re-encoded as H.264
    return out


def _load(out: Path, cfg: ClipTrainConfig):
    import torch
    from safetensors.torch import load_file

    det = new_detector(cfg)
    det.load_state_dict(load_file(str(out / "clip_vit_b16.safetensors")), strict=False)
    det.eval()
    torch.set_grad_enabled(True)
    return det, json.loads((out / "clip_vit_b16.json").read_text("utf-8"))


if __name__ == "__main__":
    raise SystemExit(main())
