"""Train the two-stream members (paper 004) on videos: face crops and the next raw frame's flow.

``python -m detector train-two-stream --real DIR --fake DIR [--real DIR ...]``

Optical flow needs consecutive raw frames, which only videos give (the ``ffpp_frames`` crops are
spread over each video). Every clip goes through the pipeline's own face extraction
(:meth:`detector.pipeline.Analyzer.extract_faces`, ``even:N`` sampling, with the next raw frame
of each sample), so training sees exactly the crops and flow the app computes. Besides the real
and fake clips, real pairs are turned into temporal synthetic fakes: a self-blend with the same
parameters on both crops of a pair (``sbi_track``), or on one crop only (``sbi_flicker``: the
blend appears or vanishes between consecutive frames, which the flow stream can see).

The RGB stream is the trained EfficientNet-Lite0 member's trunk, frozen (features computed once);
the flow CNN and the classifier are trained from scratch. The per-frame variant classifies each
pair; the per-video variant averages the features of a window of up to 10 pairs of one person.

Evaluation is leave-one-group-out cross-validation over the clips, grouped by target identity
(a real clip and the fakes made on it share a group), pooled over folds: per-pair AUC, per-video
AUC with a bootstrap interval, and the RGB-only per-frame member on the same pairs for reference.
The shipped weights are then trained on every clip. With a handful of clips these numbers are
thin, and the manifest says so.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.evaluation.metrics import binary_metrics, bootstrap_auc_ci, json_ready
from detector.io.files import VIDEO_SUFFIXES
from detector.models.registry import get_spec, list_models
from detector.models.spec import SEQUENCE_LENGTH
from detector.settings import cache_dir
from detector.training.config import TrainConfig
from detector.training.dataset import augment
from detector.training.fakes import self_blend
from detector.training.manifest import data_terms_of, fmt_s
from detector.training.storage import choose_storage, save_weights
from detector.training.trainables import load_trunk

# The two-stream members are the registry's members that also take optical flow.
TWO_STREAM_NAMES = tuple(n for n in list_models() if get_spec(n).inputs == "crop_and_flow")
WINDOW = SEQUENCE_LENGTH  # pairs per window of the per-video member


@dataclass(frozen=True)
class Pair:
    """A face crop, the same box in the next raw frame, and where it came from."""

    crop: np.ndarray
    next_crop: np.ndarray
    video: str
    group: str
    track: int
    label: int
    kind: str  # real, fake, sbi_track, sbi_flicker


def clip_group(path: Path) -> str:
    """Target identity of a clip: ``004.mp4`` -> 004; ``Deepfakes_519_515.mp4`` -> 519."""
    stem = path.stem
    if m := re.match(r"^[A-Za-z]+_(\d+)_\d+$", stem):
        return m.group(1)
    return stem


def extract_pairs(path: Path, label: int, samples: int, cache: Path | None = None) -> list[Pair]:
    """Faces of ``samples`` evenly spaced frames of a clip, each with its next-frame crop (cached)."""
    from detector.pipeline import Analyzer, ExtractionSettings

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cache = cache or cache_dir() / "two_stream"
    cached = cache / f"{path.stem}-{digest}-{samples}.npz"
    if cached.is_file():
        z = np.load(cached)
        crops, nexts, tracks = z["crops"], z["nexts"], z["tracks"]
    else:
        settings = ExtractionSettings(sampling=f"even:{samples}", isolate_decoding=False)
        _, faces = Analyzer(models=("efficientnet_lite0",)).extract_faces(
            path, settings, with_next=True
        )
        faces = [f for f in faces if f.next_crop is not None]
        crops = np.stack([f.crop for f in faces])
        nexts = np.stack([f.next_crop for f in faces])
        tracks = np.array([f.track_id for f in faces])
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cached, crops=crops, nexts=nexts, tracks=tracks)
    kind = "fake" if label else "real"
    group = clip_group(path)
    return [
        Pair(c, n, path.stem, group, int(t), label, kind)
        for c, n, t in zip(crops, nexts, tracks, strict=True)
    ]


def synthetic_pairs(pairs: list[Pair], seed: int) -> list[Pair]:
    """sbi_track and sbi_flicker fakes from real pairs (alternating), one per real pair.

    sbi_track blends both crops with the same parameters; sbi_flicker blends one of the two only.
    """
    rng = np.random.default_rng([seed, 5])
    out = []
    for k, p in enumerate(x for x in pairs if x.label == 0):
        s = int(rng.integers(2**31))
        a = self_blend(p.crop, None, np.random.default_rng(s))[0]
        b = self_blend(p.next_crop, None, np.random.default_rng(s))[0]
        if k % 2 == 0:
            kind = "sbi_track"
        else:
            kind = "sbi_flicker"
            a, b = (a, p.next_crop) if rng.random() < 0.5 else (p.crop, b)
        out.append(Pair(a, b, f"{kind}_{p.video}", p.group, p.track, 1, kind))
    return out


def pair_inputs(pairs: list[Pair], size: int, rng: np.random.Generator | None, spec):
    """Packed (N, 5, S, S) tensors; with ``rng``, one augmentation per pair on both crops."""
    import torch

    from detector.models.preprocess import preprocess

    a, b = [], []
    for p in pairs:
        if rng is None:
            a.append(p.crop)
            b.append(p.next_crop)
        else:
            seed = int(rng.integers(2**31))
            a.append(augment(p.crop, size, np.random.default_rng(seed)))
            b.append(augment(p.next_crop, size, np.random.default_rng(seed)))
    same = {x.shape for x in a} | {x.shape for x in b}
    if len(same) > 1:
        from detector.training.dataset import resize_square

        a = [resize_square(x, size) for x in a]
        b = [resize_square(x, size) for x in b]
    return preprocess(np.stack(a), spec, torch.device("cpu"), b)


def windows_of(pairs: list[Pair]) -> list[list[int]]:
    """Indices of up to WINDOW consecutive pairs of one person in one video."""
    by: dict[tuple, list[int]] = {}
    for i, p in enumerate(pairs):
        by.setdefault((p.video, p.track), []).append(i)
    out = []
    for idx in by.values():
        n = max(1, -(-len(idx) // WINDOW))
        out.extend([list(w) for w in np.array_split(np.array(idx), n) if len(w)])
    return out


class Features:
    """Frozen RGB-trunk features and packed flow of every pair (several augmented views)."""

    def __init__(self, net, pairs: list[Pair], spec, views: int, seed: int, log=print) -> None:
        import torch

        self.pairs = pairs
        self.views = views
        rng = np.random.default_rng(seed)
        self.rgb, self.flow = [], []
        net.eval()
        t0 = time.time()
        for v in range(views):
            rgbs, flows = [], []
            for s in range(0, len(pairs), 32):
                x = pair_inputs(pairs[s : s + 32], spec.input_size, rng if v else None, spec)
                with torch.inference_mode():
                    rgbs.append(net.rgb(x[:, :3].contiguous()).float())
                flows.append(x[:, 3:].float().clone())
            self.rgb.append(torch.cat(rgbs))
            self.flow.append(torch.cat(flows))
            log(f"view {v + 1}/{views}: {len(pairs)} pairs [{time.time() - t0:.0f} s]")


def _train_head(net, feats: Features, idx: list[int], per_video: bool, epochs: int, seed: int):
    """Train the flow CNN and classifier on the pairs ``idx`` (all views)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    for m in (net.flow, net.classifier):
        for layer in m.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    params = [*net.flow.parameters(), *net.classifier.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-3)
    labels = torch.tensor([feats.pairs[i].label for i in idx])
    pos = float(labels.float().mean())
    weight = torch.tensor([0.5 / (1 - pos), 0.5 / pos]) if 0 < pos < 1 else None
    rng = np.random.default_rng(seed)
    sub = [feats.pairs[i] for i in idx]
    wins = [[idx[j] for j in w] for w in windows_of(sub)] if per_video else [[i] for i in idx]
    batch_size = 16 if per_video else 64
    for _ in range(epochs):
        net.flow.train()
        net.classifier.train()
        order = rng.permutation(len(wins))
        for s in range(0, len(wins), batch_size):
            batch = [wins[k] for k in order[s : s + batch_size]]
            zs, ys = [], []
            for w in batch:
                v = int(rng.integers(feats.views))
                if per_video and len(w) > 3:  # a random run of the window
                    a = int(rng.integers(0, len(w) - 2))
                    w = w[a : a + int(rng.integers(3, len(w) - a + 1))]
                f = torch.cat([feats.rgb[v][w], net.flow(feats.flow[v][w])], dim=1)
                zs.append(net.classifier(f.mean(0, keepdim=True)))
                ys.append(feats.pairs[w[0]].label)
            z = torch.cat(zs)
            loss = F.cross_entropy(z, torch.tensor(ys), weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net


def _predict(net, feats: Features, idx: list[int], per_video: bool) -> dict[str, np.ndarray]:
    """p_fake per pair (per-frame: each pair; per-video: each pair gets its window's score)."""
    import torch

    net.flow.eval()
    net.classifier.eval()
    out = np.zeros(len(idx))
    pos = {i: k for k, i in enumerate(idx)}
    sub = [feats.pairs[i] for i in idx]
    wins = [[idx[j] for j in w] for w in windows_of(sub)] if per_video else [[i] for i in idx]
    with torch.inference_mode():
        for w in wins:
            f = torch.cat([feats.rgb[0][w], net.flow(feats.flow[0][w])], dim=1)
            z = net.classifier(f.mean(0, keepdim=True))
            p = torch.softmax(z, 1)[0, 1].item()
            for i in w:
                out[pos[i]] = p
    return out


def full_scores(net, pairs: list[Pair], spec) -> np.ndarray:
    """p_fake per pair through the whole module, exactly as the ensemble runs it."""
    import torch

    from detector.scoring.ensemble import track_windows

    net.eval()
    out = np.zeros(len(pairs))
    if spec.kind == "track":
        keys = {}
        ids = np.array([keys.setdefault((p.video, p.track), len(keys)) for p in pairs])
        wins = track_windows(ids, WINDOW)
    else:
        wins = [np.array([i]) for i in range(len(pairs))]
    with torch.inference_mode():
        for w in wins:
            x = pair_inputs([pairs[i] for i in w], spec.input_size, None, spec)
            if spec.kind == "track":
                x = x[None]
            out[w] = torch.sigmoid(net(x).float().reshape(-1)).numpy()
    return out


def _metrics(pairs: list[Pair], idx: list[int], scores: np.ndarray) -> dict:
    y = np.array([pairs[i].label for i in idx])
    frame = binary_metrics(y, scores)
    videos = sorted({pairs[i].video for i in idx})
    vy = np.array([next(pairs[i].label for i in idx if pairs[i].video == v) for v in videos])
    vs = np.array(
        [
            np.mean([s for i, s in zip(idx, scores, strict=True) if pairs[i].video == v])
            for v in videos
        ]
    )
    video = binary_metrics(vy, vs)
    return {
        "frame_auc": frame["auc"],
        "frame_auc_ci95": bootstrap_auc_ci(y, scores, [pairs[i].video for i in idx], n=1000),
        "video_auc": video["auc"],
        "video_auc_ci95": bootstrap_auc_ci(vy, vs, n=1000),
        "accuracy": frame["accuracy"],
        "tpr": frame["tpr"],
        "tnr": frame["tnr"],
        "confusion": frame["confusion"],
        "video_accuracy": video["accuracy"],
        "n_pairs": len(idx),
        "n_videos": len(videos),
        "per_video": {v: round(float(s), 4) for v, s in zip(videos, vs, strict=True)},
    }


def run(args, log=print) -> dict:
    import torch

    from detector.models import create_model, get_spec

    t0 = time.time()
    torch.set_num_threads(args.threads)
    weights = Path(args.weights_dir)
    clips = [
        (p, 0) for d in args.real for p in sorted(Path(d).iterdir()) if p.suffix in VIDEO_SUFFIXES
    ]
    clips += [
        (p, 1) for d in args.fake for p in sorted(Path(d).iterdir()) if p.suffix in VIDEO_SUFFIXES
    ]
    pairs: list[Pair] = []
    for path, label in clips:
        got = extract_pairs(path, label, args.samples)
        log(f"{path.name}: {len(got)} face pairs")
        pairs.extend(got)
    pairs += synthetic_pairs(pairs, args.seed)
    groups = sorted({p.group for p in pairs})
    log(f"{len(pairs)} pairs (with synthetic fakes) in {len(groups)} groups: {groups}")

    trunk_name = get_spec(TWO_STREAM_NAMES[0]).trunk
    trunk, man = load_trunk(trunk_name, weights)
    rgb_only = create_model(trunk_name, weights_dir=weights)
    base_scores = np.zeros(len(pairs))
    spec0 = get_spec(trunk_name)
    from detector.models.preprocess import preprocess

    with torch.inference_mode():
        for s in range(0, len(pairs), 32):
            x = preprocess(
                np.stack([p.crop for p in pairs[s : s + 32]]), spec0, torch.device("cpu")
            )
            base_scores[s : s + 32] = torch.sigmoid(rgb_only(x)).reshape(-1).numpy()

    results = {}
    for name in args.models:
        spec = get_spec(name)
        per_video = spec.kind == "track"
        net = spec.factory()
        net.rgb.load_state_dict(trunk)
        for p in net.rgb.parameters():
            p.requires_grad_(False)
        feats = Features(net, pairs, spec, args.views, args.seed, log)
        cv = np.zeros(len(pairs))
        for g in groups:
            train_idx = [i for i, p in enumerate(pairs) if p.group != g]
            test_idx = [i for i, p in enumerate(pairs) if p.group == g]
            _train_head(net, feats, train_idx, per_video, args.epochs, args.seed)
            cv[test_idx] = _predict(net, feats, test_idx, per_video)
            log(f"{name}: fold {g} done")
        every = list(range(len(pairs)))
        clip_idx = [i for i, p in enumerate(pairs) if p.kind in ("real", "fake")]
        cv_metrics = _metrics(pairs, clip_idx, cv[clip_idx])
        cv_all = _metrics(pairs, every, cv)
        base_metrics = _metrics(pairs, clip_idx, base_scores[clip_idx])
        log(
            f"{name}: leave-one-group-out pair AUC {cv_metrics['frame_auc']:.3f}, video AUC "
            f"{cv_metrics['video_auc']:.3f}; RGB-only member on the same pairs "
            f"{base_metrics['frame_auc']:.3f} / {base_metrics['video_auc']:.3f}"
        )
        _train_head(net, feats, every, per_video, args.epochs, args.seed)
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        y = np.array([p.label for p in pairs])
        ref = binary_metrics(y, full_scores(net, pairs, spec))["auc"]
        fit = binary_metrics(y, _predict(net, feats, every, per_video))["auc"]
        log(f"{name}: training-set AUC {ref:.4f} by the module, {fit:.4f} by cached features")
        storage, stored = choose_storage(
            net,
            state,
            lambda net=net, spec=spec, y=y: binary_metrics(y, full_scores(net, pairs, spec))["auc"],
            ref,
            allow_int8=args.int8,
        )
        out = Path(args.out)
        dtype = {"float32": torch.float32, "float16": torch.float16}.get(storage, storage)
        sha = save_weights(state, out / f"{name}.safetensors", dtype)
        n_real = sum(1 for p in pairs if p.kind == "real")
        n_fake = sum(1 for p in pairs if p.kind == "fake")
        manifest = {
            "name": name,
            "kind": spec.kind,
            "architecture": spec.description,
            "input_size": spec.input_size,
            "inputs": "RGB crop (EfficientNet-Lite0 normalisation) + Farneback flow to the same "
            "box in the next raw frame, 2 channels, pixels / 4 clipped to +-5",
            "output": "z_fake - z_real of the 2-way layer (sigmoid = softmax P(fake))",
            "sha256": sha,
            "dtype": storage,
            "init_from": f"RGB stream: the trained member weights/efficientnet_lite0.safetensors "
            f"(sha256 {man['sha256']}), frozen; flow CNN and classifier: random initialisation",
            "licence": "trained here; the data terms apply; the RGB stream inherits "
            "weights/efficientnet_lite0.json's terms",
            "data_terms": data_terms_of(
                TrainConfig(model=name, real=tuple(args.real), fake=tuple(args.fake))
            ),
            "trained_on": f"{n_real} real and {n_fake} fake face pairs from "
            f"{len(clips)} clips ({', '.join(p.name for p, _ in clips)}), {args.samples} evenly "
            "spaced frames each, faces cut by the pipeline; plus one sbi_track or sbi_flicker "
            "fake per real pair",
            "training_command": "python -m detector " + shlex.join(sys.argv[1:]),
            "wall_time_s": round(time.time() - t0, 1),
            "metrics": json_ready(
                {
                    "cv": cv_metrics,
                    "cv_with_synthetic_fakes": {
                        k: v for k, v in cv_all.items() if k != "per_video"
                    },
                    "rgb_only_member_same_pairs": base_metrics,
                    "storage_check_train_auc": {"float32": ref, **stored},
                    "cv_protocol": f"leave-one-group-out over {len(groups)} target identities "
                    f"{groups} (a real clip and the fakes made on it share a group); pooled "
                    "predictions; 'cv' counts the real and fake clips only, "
                    "'cv_with_synthetic_fakes' adds the held-out group's SBI pairs",
                },
                4,
            ),
            "notes": (
                f"DATA IS THIN: {len(clips)} clips, so the cross-validated numbers have wide "
                "intervals (see the ci95 fields). When the clips are the shared FaceForensics++ "
                "ones, they share identities with ffpp_frames, on part of which the frozen RGB "
                "stream was trained, so its features may have seen these faces. The flow stream "
                "sees motion between consecutive raw "
                "frames only. Augmentation is drawn once per pair and applied to both crops. "
                f"{args.views} views per pair (1 clean), {args.epochs} epochs, AdamW lr 1e-3."
            ),
        }
        (out / f"{name}.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        log(f"wrote {out / name}.safetensors (sha256 {sha[:12]})")
        results[name] = manifest
    log(f"done in {fmt_s(time.time() - t0)}")
    return results
