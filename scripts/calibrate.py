"""Choose the default ensemble on cross-dataset validation and calibrate its verdict on real footage.

Everything here runs on the cross-dataset validation set of :mod:`scripts.crossval` (clips the
members never trained on), never on training data:

1. every candidate member scores every face once (cached);
2. each video's score is what an analysis would report: :func:`detector.verdict.verdict.compute_verdict`
   on the video's faces (people, brief tracks and all);
3. weightings of the candidates (a grid, step 0.1) and frame aggregations are ranked by the share
   of fakes caught while at most ~5 % of the real videos are flagged (the alarm threshold is set
   from the real videos for every weighting), averaged over the two fake sets (Celeb-DF; the
   FaceForensics++ clips of Deepfakes, FaceSwap and NeuralTextures), then by video AUC, then by
   fewer members;
4. the chosen ensemble's threshold is the score that at most 5 % of the real videos reach; the
   "Inconclusive" band starts at the score 85 % of the real videos stay under. Both are set on
   every precision path measured (:data:`scripts.crossval.PATHS`: all float32, and as a CPU with
   native bf16 runs the members, measured where the CPU has it) and the higher is kept, so the
   verdict's false-alarm rate holds whichever path the analyst's CPU takes;
5. ``weights/ensemble.json`` gets the ensemble, the threshold, the band, the real scores they came
   from, the pool and the measured rates with bootstrap CIs; each member's manifest gets its own
   cross-dataset AUCs (``metrics.crossval``).

The same videos choose and measure, so the figures are optimistic (they are what the issue calls
"validation"); the held-out truth is data this project does not have.

    python -m scripts.calibrate [--candidates a,b,...] [--dry-run]
    python -m scripts.calibrate --measure a,b,...   # members alone, into their manifests only
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detector.evaluation.metrics import bootstrap_auc_ci
from detector.scoring.device import ISA_CAPS, bf16_kernels
from detector.settings import weights_dir
from detector.types import ScoreTable, ScoringSettings
from detector.verdict.verdict import compute_verdict
from scripts.crossval import (
    PATH_KERNELS,
    PATHS,
    Faces,
    PathNotHere,
    all_faces,
    member_scores,
    ran_as,
    with_next_frames,
)

TARGET_FALSE_ALARM = 0.05
INCONCLUSIVE_QUANTILE = 0.85
FAKE_SETS = {
    "celebdf": "Celeb-DF v2 (another dataset and face-swap method)",
    "ffpp_clips": "FaceForensics++ Deepfakes / FaceSwap / NeuralTextures clips (c23 and c40)",
}
POOL = (
    "{n} real videos none of the members trained on: FaceForensics++ originals of the "
    "validation ids (10 frames each), FF++ c23 / c40 originals and DeepFakeDetection actor "
    "clips, the multi-person stage clip, Celeb-DF v2 real clips and real talking-head footage "
    "(HDTF, interviews)"
)


def fake_set(source: str) -> str | None:
    if source == "celebdf":
        return "celebdf"
    if source in ("ffpp_c23", "ffpp_c40"):
        return "ffpp_clips"
    return None


def video_scores(
    faces: dict[str, tuple], scores: dict[str, dict[str, np.ndarray]], settings: ScoringSettings
) -> dict[str, float]:
    """The video score an analysis would report, for every clip with faces."""
    models = tuple(settings.weights)
    out = {}
    for key, (_, f) in faces.items():
        if len(f.crops) == 0:
            continue
        p = np.stack([scores[m][key] for m in models], axis=1)
        table = ScoreTable(
            models, np.arange(len(p)), f.track_ids, f.frame_indices, f.timestamps_s, p
        )
        out[key] = compute_verdict(table, settings).p_fake
    return out


def threshold_for(real: Sequence[float], target: float = TARGET_FALSE_ALARM) -> float:
    """The lowest score that at most ``target`` of the real videos reach: midway between the
    highest real score that must stay under it and the next strictly higher one (ties stay
    under together)."""
    r = np.sort(np.asarray(real))[::-1]
    k = math.floor(target * len(r))  # reals allowed at or above the threshold
    above = r[r > r[k]]
    return float((r[k] + above.min()) / 2) if len(above) else float(r[k] + 1e-6)


def rates(
    vs: dict[str, float], faces: dict[str, tuple], threshold: float, low: float
) -> dict[str, dict]:
    """Shares flagged / inconclusive per set at a threshold, with counts."""
    groups: dict[str, list[float]] = {"real": []}
    for key, s in vs.items():
        clip = faces[key][0]
        name = "real" if clip.label == 0 else fake_set(clip.source)
        groups.setdefault(name, []).append(s)
    out = {}
    for name, xs in groups.items():
        x = np.asarray(xs)
        out[name] = {
            "n": len(x),
            "flagged": round(float(np.mean(x >= threshold)), 4),
            "inconclusive": round(float(np.mean((x >= low) & (x < threshold))), 4),
            "flagged_count": int(np.sum(x >= threshold)),
        }
    fakes = np.concatenate([np.asarray(v) for k, v in groups.items() if k != "real"])
    out["all_fakes"] = {
        "n": len(fakes),
        "flagged": round(float(np.mean(fakes >= threshold)), 4),
        "inconclusive": round(float(np.mean((fakes >= low) & (fakes < threshold))), 4),
        "flagged_count": int(np.sum(fakes >= threshold)),
    }
    return out


def aucs(vs: dict[str, float], faces: dict[str, tuple], boot: int = 1000) -> dict[str, dict]:
    """Video AUC with a 95 % bootstrap CI: each fake set and all fakes against all reals, and
    Celeb-DF against its own reals."""
    from sklearn.metrics import roc_auc_score

    keys = list(vs)
    label = {k: faces[k][0].label for k in keys}
    src = {k: faces[k][0].source for k in keys}
    out = {}
    subsets = {
        "celebdf_vs_all_reals": [k for k in keys if label[k] == 0 or src[k] == "celebdf"],
        "celebdf_vs_celebdf_reals": [k for k in keys if src[k] == "celebdf"],
        "ffpp_clips_vs_all_reals": [
            k for k in keys if label[k] == 0 or fake_set(src[k]) == "ffpp_clips"
        ],
        "all": keys,
    }
    for name, ks in subsets.items():
        y = [label[k] for k in ks]
        s = [vs[k] for k in ks]
        if len(set(y)) < 2:
            continue
        ci = bootstrap_auc_ci(y, s, n=boot)
        out[name] = {
            "auc": round(float(roc_auc_score(y, s)), 4),
            "ci95": [round(c, 4) for c in ci],
            "n_fake": int(sum(y)),
            "n_real": len(y) - int(sum(y)),
        }
    return out


def proportion_ci(k: int, n: int) -> list[float]:
    """Wilson 95 % interval of a proportion."""
    if n == 0:
        return []
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def objective(vs: dict[str, float], faces: dict[str, tuple]) -> tuple[float, float]:
    """(mean share of fakes flagged over the two fake sets at the ~5 % threshold, video AUC)."""
    from sklearn.metrics import roc_auc_score

    real = [s for k, s in vs.items() if faces[k][0].label == 0]
    thr = threshold_for(real)
    caught = []
    for name in FAKE_SETS:
        xs = [
            s
            for k, s in vs.items()
            if faces[k][0].label == 1 and fake_set(faces[k][0].source) == name
        ]
        caught.append(float(np.mean(np.asarray(xs) >= thr)) if xs else 0.0)
    y = [faces[k][0].label for k in vs]
    return float(np.mean(caught)), float(roc_auc_score(y, list(vs.values())))


def clip_scorer(check: int = 12):
    """Scores of the shipped CLIP member from cached backbone features (the frozen part of the
    network is the same for every recipe, so it runs once per crop, not once per candidate).
    Checked against the app's own path (:class:`detector.scoring.ensemble.Ensemble`) on ``check`` crops:
    the largest difference is printed and must stay under 0.01."""
    import functools

    import torch

    from detector.models import create_model, read_manifest
    from detector.scoring.ensemble import Ensemble
    from detector.training.clip import CachedHead, ClipTrainConfig, predict_cached
    from detector.training.clip_pool import backbone, cached_features

    cfg = ClipTrainConfig.of_manifest(read_manifest("clip_vit_b16"))
    det = create_model("clip_vit_b16").net.eval()
    head = CachedHead(det, cfg)
    checked = []
    net = functools.cache(backbone)  # built once, and only when a crop is not cached

    def scorer(crops, tracks):
        stacked = cached_features(crops, cfg.tune_from - 1, net)
        with torch.enable_grad():
            p = predict_cached(head, stacked, cfg.recipe == "ln")
        if not checked:
            ref = Ensemble(["clip_vit_b16"], precision="fp32").score(crops[:check])[:, 0]
            diff = float(np.abs(ref - p[:check]).max())
            print(
                f"clip_vit_b16: cached path vs the app's path on {len(ref)} crops: max |dp| {diff:.4f}"
            )
            if diff > 0.01:
                raise RuntimeError("the cached CLIP path does not reproduce the app's scores")
            checked.append(diff)
        return p

    return scorer


def simplex(n: int, step: float):
    k = round(1 / step)
    for cut in itertools.combinations(range(k + n - 1), n - 1):
        parts = np.diff([-1, *cut, k + n - 1]) - 1
        yield parts / k


def search(faces, scores: dict[str, dict[str, np.ndarray]], step: float = 0.1) -> list[tuple]:
    """Every weighting of the members on a ``step`` grid, mean or median over frames, ranked
    best first: (share of fakes caught at the 5 % false-alarm threshold, video AUC, -members,
    aggregation, weights)."""
    cands = list(scores)
    results = []
    for aggregation in ("mean", "median"):
        for w in simplex(len(cands), step):
            weights = {m: float(x) for m, x in zip(cands, w, strict=True) if x > 0}
            s = ScoringSettings(weights=weights, aggregation=aggregation)
            vs = video_scores(faces, {m: scores[m] for m in weights}, s)
            caught, auc = objective(vs, faces)
            results.append((caught, auc, -len(weights), aggregation, weights))
    results.sort(key=lambda r: (round(r[0], 4), round(r[1], 4), r[2]), reverse=True)
    return results


def alone(name: str, faces, scores: dict[str, dict[str, np.ndarray]]) -> dict:
    """One member measured alone, as an analysis with only it would score each video (mean
    over frames): share of fakes caught at its own 5 % threshold and video AUCs with CIs."""
    vs = video_scores(faces, scores, ScoringSettings(weights={name: 1.0}))
    out = {"objective": objective(vs, faces), "auc": aucs(vs, faces, boot=1000)}
    print(name, out["objective"], {k: v["auc"] for k, v in out["auc"].items()})
    return out


def trained_clips(name: str, faces) -> set[str]:
    """The validation clips a member trained on: those its manifest names in ``trained_on``
    (the two-stream members trained on the FF++ c23 clips and the stage clip)."""
    import re

    from detector.models import read_manifest

    text = read_manifest(name).get("trained_on", "")
    return {
        k
        for k, (c, _) in faces.items()
        if c.path is not None and re.search(rf"(?<![\w.-]){re.escape(c.path.name)}", text)
    }


def measure_alone(name: str, faces) -> dict:
    """:func:`alone` on the videos the member may be measured on: never a clip it trained on,
    and for a member that needs each face's next raw frame (two-stream optical flow) the clips
    only. ``pool`` says what was left out."""
    from detector.models import get_spec

    usable, left_out = faces, []
    if get_spec(name).inputs == "crop_and_flow":
        usable = with_next_frames(usable)
        left_out.append(
            "the FF++ validation videos (folders of frames, with no next raw frame for the "
            "optical flow)"
        )
    if trained := trained_clips(name, usable):
        usable = {k: v for k, v in usable.items() if k not in trained}
        names = ", ".join(sorted(faces[k][0].path.name for k in trained))
        left_out.append(f"the {len(trained)} clips it trained on ({names})")
    out = alone(name, usable, {name: member_scores(name, usable)})
    if left_out:
        reals = sum(c.label == 0 for c, _ in usable.values())
        out["pool"] = (
            f"{reals} real and {len(usable) - reals} fake videos of the set; left out: "
            + "; ".join(left_out)
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--candidates",
        default="clip_vit_b16,efficientnet_lite0,xception,inception_resnet_v2,mesoinception4_f2f",
    )
    p.add_argument("--step", type=float, default=0.1)
    p.add_argument("--dry-run", action="store_true", help="print, do not write weights/")
    p.add_argument(
        "--partial",
        action="store_true",
        help="write a threshold set on the precision paths this CPU can measure (recorded as "
        "such); an AMX CPU measures all three",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write (default: the weights scored, DEEPFAKE_WEIGHTS_DIR or weights/)",
    )
    p.add_argument(
        "--measure",
        default="",
        help="comma-separated members to measure alone and record in their manifests "
        "(metrics.crossval), without choosing or calibrating the ensemble",
    )
    args = p.parse_args(argv)
    args.out = args.out or weights_dir()  # never a candidate's figures into the shipped weights
    measure = [m for m in args.measure.split(",") if m]
    faces: dict[str, tuple[object, Faces]] = all_faces(log=lambda *a: None)
    if measure:
        per_member = {m: measure_alone(m, faces) for m in measure}
        if not args.dry_run:
            record_crossval(
                args.out, per_member, f"python -m scripts.calibrate --measure {','.join(measure)}"
            )
        return 0
    cands = [c for c in args.candidates.split(",") if c]
    if seen := [c for c in cands if trained_clips(c, faces)]:  # the default never chosen on them
        p.error(f"{', '.join(seen)} trained on validation clips: not a candidate")
    scores = {
        m: member_scores(m, faces, scorer=clip_scorer() if m == "clip_vit_b16" else None)
        for m in cands
    }
    per_member = {m: alone(m, faces, scores) for m in cands}
    results = search(faces, scores, args.step)
    for r in results[:10]:
        print(f"caught {r[0]:.3f} auc {r[1]:.3f} {r[3]} {r[4]}")
    *_, aggregation, weights = results[0]
    chosen = ScoringSettings(weights=weights, aggregation=aggregation)
    paths = {"fp32": scores}
    not_measured = {}
    for path in PATH_KERNELS:  # the bf16 paths: each measurable only on a CPU with its kernels
        try:
            paths[path] = bf16_path_scores(path, list(weights), faces)
        except PathNotHere as exc:
            not_measured[path] = str(exc)
    if not_measured and not (args.dry_run or args.partial):
        raise SystemExit(
            "the threshold would hold only on the precision paths measured; not measurable "
            f"here: {'; '.join(not_measured.values())}. Calibrate on a CPU with AMX (it "
            "measures all three paths), or pass --partial (recorded as such)"
        )
    cal = calibrate_paths(faces, paths, chosen)
    for p in cal["paths"]:  # the precision each member ran in on that path, as recorded
        cal["paths"][p]["precisions"] = {m: ran_as(m, p) for m in weights}
    thr, low = cal["threshold"], cal["low"]
    vs, real = cal["video_scores"]["fp32"], sorted(cal["real"]["fp32"])
    measured = rates(vs, faces, thr, low)
    for v in measured.values():
        v["flagged_ci95"] = proportion_ci(v["flagged_count"], v["n"])
    auc_table = aucs(vs, faces)
    extra = {
        "threshold_rule": THRESHOLD_RULE,
        "paths": cal["paths"],
        **({"paths_not_measured": not_measured} if not_measured else {}),
        # the other operating point, by the same rule; not the verdict's threshold
        "at_10pct_false_alarm": cal["at_10pct_false_alarm"],
    }
    print(
        json.dumps(
            {"threshold": thr, "low": low, "rates": measured, "auc": auc_table, **extra}, indent=1
        )
    )
    if args.dry_run:
        return 0
    return write(args.out, chosen, thr, low, real, measured, auc_table, per_member, results, extra)


def bf16_path_scores(path: str, models: list[str], faces) -> dict[str, np.ndarray]:
    """Each member's cached scores on a bf16 ``path``; computed here when this process has the
    path's kernels, or, on an AMX CPU, for the AVX-512 BF16 path in a child process with AMX
    capped away (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``). Raises :class:`PathNotHere`."""
    try:
        return {m: member_scores(m, faces, path=path) for m in models}
    except PathNotHere:
        if not (path == "bf16cpu" and bf16_kernels() == "AMX"):
            raise
    import os
    import subprocess
    import sys

    args = ["-m", "scripts.crossval", "--path", path, "--models", ",".join(models)]
    env = {**os.environ, **ISA_CAPS["AVX512_CORE_BF16"]}
    done = subprocess.run([sys.executable, *args], env=env)
    if done.returncode != 0:
        raise PathNotHere(
            f"scoring the {path} path with AMX capped away failed (`ONEDNN_MAX_CPU_ISA="
            f"AVX512_CORE_BF16 python {' '.join(args)}` exited with {done.returncode})"
        )
    return {m: member_scores(m, faces, path=path) for m in models}


THRESHOLD_RULE = (
    "the higher of the thresholds set on each precision path measured (the score at most 5 % "
    "of the real videos reach on that path): whichever of those paths a CPU runs, at most about "
    "5 % of the real videos reach it; the same for the Inconclusive band's start. The rates "
    "and real_video_scores are those of the fp32 path (paths: each path's own counts and real "
    "video scores; an analysis's score is placed against its own path's). A GPU runs another "
    "mix of precisions, not calibrated"
)


def counts(measured: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """(flagged, of n) per set, from :func:`rates`."""
    return {k: (v["flagged_count"], v["n"]) for k, v in measured.items()}


def calibrate_paths(faces, paths: dict[str, dict], chosen: ScoringSettings) -> dict:
    """The verdict's threshold and band start, valid on every precision path in ``paths``
    (name -> member scores): on each path the score at most 5 % of the real videos reach (and
    the 85 % quantile), then the higher of them. Also each path's own figures at the shared
    threshold, and the 10 % false-alarm operating point by the same rule."""
    vs = {p: video_scores(faces, s, chosen) for p, s in paths.items()}
    real = {p: [s for k, s in v.items() if faces[k][0].label == 0] for p, v in vs.items()}
    own = {p: threshold_for(r) for p, r in real.items()}
    thr = max(own.values())
    low = max(float(np.quantile(r, INCONCLUSIVE_QUANTILE)) for r in real.values())
    thr10 = max(threshold_for(r, 0.10) for r in real.values())
    return {
        "threshold": thr,
        "low": low,
        "video_scores": vs,
        "real": real,
        "paths": {
            p: {
                "what": PATHS[p],
                "threshold_alone": round(own[p], 4),
                "flagged": counts(rates(v, faces, thr, low)),
                "video_auc_all": aucs(v, faces, boot=200)["all"]["auc"],
                "real_video_scores": [round(float(x), 5) for x in sorted(real[p])],
            }
            for p, v in vs.items()
        },
        "at_10pct_false_alarm": {
            "threshold": round(thr10, 4),
            "flagged": {p: counts(rates(v, faces, thr10, thr10)) for p, v in vs.items()},
        },
    }


def write(
    out: Path,
    chosen,
    thr,
    low,
    real,
    measured,
    auc_table,
    per_member,
    results,
    extra: dict | None = None,
) -> int:
    path = out / "ensemble.json"
    conf = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    conf = {
        "members": {m: round(w, 4) for m, w in chosen.weights.items()},
        "aggregation": chosen.aggregation,
        "order": chosen.order,
        "threshold": round(thr, 4),
        "inconclusive_band": round(thr - low, 4),
        "chosen_by": (
            "python -m scripts.calibrate: candidates weighted on a 0.1 grid (mean or median over "
            "frames), each ranked by the share of fakes flagged at the threshold that at most 5 % "
            "of the real videos reach, averaged over Celeb-DF and the FF++ Deepfakes / FaceSwap / "
            "NeuralTextures clips, then by video AUC, then by fewer members. Cross-dataset "
            "validation (scripts/crossval.py), never training data; the same videos choose and "
            "measure, so the rates are optimistic."
        ),
        "calibration": {
            "target_false_alarm": TARGET_FALSE_ALARM,
            "inconclusive_from_quantile": INCONCLUSIVE_QUANTILE,
            "pool": POOL.format(n=len(real)),
            "real_video_scores": [round(float(x), 5) for x in real],
            "rates": measured,
            **(extra or {}),
            "video_auc": auc_table,
            "fake_sets": FAKE_SETS,
            "command": "python -m scripts.calibrate",
        },
        "members_crossval": per_member,
        "runners_up": [
            {
                "flagged_share": round(r[0], 4),
                "video_auc": round(r[1], 4),
                "aggregation": r[3],
                "members": r[4],
            }
            for r in results[1:6]
        ],
        "presets": conf.get("presets", PRESETS),
        "previous_default": conf.get("previous_default", _previous(conf)),
    }
    path.write_text(json.dumps(conf, indent=2) + "\n", "utf-8")
    record_crossval(out, per_member)
    print(f"wrote {path}")
    return 0


def record_crossval(
    out: Path, per_member: dict, command: str = "python -m scripts.calibrate"
) -> None:
    """Each member's cross-dataset video AUCs (:func:`alone`, float32) into its manifest."""
    for m, d in per_member.items():
        man_path = out / f"{m}.json"
        if man_path.is_file():
            man = json.loads(man_path.read_text("utf-8"))
            man.setdefault("metrics", {})["crossval"] = {
                "video_auc": d["auc"],
                "command": command,
                "note": "member alone, default aggregation (mean over frames), float32; "
                "cross-dataset validation",
                **({"pool": d["pool"]} if d.get("pool") else {}),
            }
            man_path.write_text(json.dumps(man, indent=2, ensure_ascii=False) + "\n", "utf-8")
            print(f"wrote {man_path}")


PRESETS = {
    "paper000": {
        "label": "Core paper (Pan et al.): Inception-ResNet-v2 + Xception, 0.5 / 0.5, mean",
        "members": {"inception_resnet_v2": 0.5, "xception": 0.5},
        "aggregation": "mean",
        "order": "aggregate_then_combine",
        "threshold": 0.5,
        "note": "not calibrated: the paper's threshold of 0.5",
    },
    "paper000_median": {
        "label": "Core paper: Inception-ResNet-v2 + Xception, 0.6 / 0.4, median",
        "members": {"inception_resnet_v2": 0.6, "xception": 0.4},
        "aggregation": "median",
        "order": "aggregate_then_combine",
        "threshold": 0.5,
        "note": "not calibrated: the paper's threshold of 0.5",
    },
}


def _previous(conf: dict) -> dict:
    return {k: conf[k] for k in ("members", "aggregation", "threshold") if k in conf}


if __name__ == "__main__":
    raise SystemExit(main())
