"""Measure models and the ensemble on labelled data: frame- and video-level AUC, accuracy, the
confusion matrix at the threshold, and paper 000's Table 5 (accuracy per ensemble setting).

``python -m detector evaluate --real DIR --fake DIR [--models a,b] [--json]``

A folder holds either face crops (each image a frame; frames are grouped into videos by their id
prefix, FaceForensics++ style: ``TTT_k`` -> ``TTT``, ``TTT_SSS_k`` -> ``TTT_SSS``) or video clips
(each clip runs through :class:`detector.pipeline.Analyzer`; its frames are the faces of the
deciding track in the clip's score table). :func:`evaluate_scores` does the arithmetic on a score
matrix and is what the app and the ensemble fitting call.

Latipova & Yadryshnikova (paper 000) report Table 5 as accuracy of equal and 0.6/0.4 weightings
under mean and median frame aggregation; the same settings are computed here, in both orders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.errors import BadSettingsError
from detector.evaluation.metrics import binary_metrics, bootstrap_auc_ci, json_ready
from detector.io.files import VIDEO_SUFFIXES
from detector.verdict.aggregate import combine, reduce_frames

if TYPE_CHECKING:
    from detector.types import Analysis


@dataclass(frozen=True)
class ItemScore:
    """One frame (or one clip's frame) with its label and per-model p_fake."""

    video: str
    name: str
    label: int
    p_fake: dict[str, float]


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of every model and of the weighted ensemble on one labelled set.

    Attributes:
        models: model names, in column order.
        weights: the ensemble's normalised weights.
        aggregation: frame -> video reducer of the ensemble ("mean" or "median").
        order: "aggregate_then_combine" or "combine_then_aggregate".
        threshold: p_fake at or above which an item is called fake.
        frame: per model and "ensemble": auc, accuracy, tpr, tnr, precision, recall, confusion.
        video: the same at video level (video score = the aggregation over its frames).
        table5: paper 000's Table 5 rows as dicts.
        video_scores: per video: label and per-model and ensemble score.
        items: per-frame scores.
        skipped: inputs that gave no score, with the reason (clips with no face ...).
    """

    models: tuple[str, ...]
    weights: dict[str, float]
    aggregation: str
    order: str
    threshold: float
    frame: dict[str, dict]
    video: dict[str, dict]
    table5: tuple[dict, ...]
    video_scores: dict[str, dict]
    items: tuple[ItemScore, ...] = ()
    skipped: tuple[str, ...] = field(default_factory=tuple)

    @property
    def frame_auc(self) -> float:
        return self.frame["ensemble"]["auc"]

    @property
    def video_auc(self) -> float:
        return self.video["ensemble"]["auc"]


def default_weightings(models: Sequence[str]) -> list[dict[str, float]]:
    """Paper 000's settings: equal weights, and 0.6 / 0.4 on the first two models."""
    out = [{m: 1.0 for m in models}]
    if len(models) >= 2:
        out.append({models[0]: 0.6, models[1]: 0.4})
    return out


def evaluate_scores(
    videos: Sequence[str],
    labels: Sequence[int],
    scores: np.ndarray,
    models: Sequence[str],
    *,
    weights: Mapping[str, float] | None = None,
    aggregation: str = "mean",
    order: str = "aggregate_then_combine",
    threshold: float = 0.5,
    extra_weightings: Sequence[Mapping[str, float]] = (),
    names: Sequence[str] | None = None,
) -> EvaluationResult:
    """Metrics from a (frames x models) p_fake matrix with a video key and a label per frame.

    Args:
        videos: video key of each frame; a video's frames must share one label.
        labels: 1 = fake, 0 = real, per frame.
        scores: p_fake, shape (frames, models).
        models: column names.
        weights: ensemble weights (normalised; default equal).
        aggregation: "mean" or "median", frames -> video.
        order: how the ensemble's video score is formed (see :mod:`detector.reporting.tables`).
        threshold: decision threshold for accuracy and the confusion matrix.
        extra_weightings: more Table 5 settings besides the paper's.
        names: per-frame names for the item list.
    """
    from detector.reporting.tables import normalise_weights, table5

    models = tuple(models)
    s = np.asarray(scores, dtype=float).reshape(len(videos), len(models))
    y = np.asarray(labels).astype(int)
    if len(y) != len(videos) or len(y) == 0:
        raise BadSettingsError("need one label and one video key per frame, and some frames")
    if aggregation not in ("mean", "median"):
        raise BadSettingsError(f"aggregation must be mean or median, not {aggregation!r}")
    w_map = normalise_weights(dict(weights) if weights else {m: 1.0 for m in models}, models)
    w = np.array([w_map[m] for m in models])

    frame = {m: binary_metrics(y, s[:, j], threshold) for j, m in enumerate(models)}
    frame["ensemble"] = binary_metrics(y, s @ w, threshold)
    for j, m in enumerate([*models, "ensemble"]):
        col = s @ w if m == "ensemble" else s[:, j]
        frame[m]["auc_ci95"] = bootstrap_auc_ci(y, col, groups=videos)

    keys = sorted(set(videos))
    rows: dict[str, list[int]] = {k: [] for k in keys}
    for i, v in enumerate(videos):
        rows[v].append(i)
    v_label = np.array([y[rows[k][0]] for k in keys])
    mixed = [k for k in keys if len(set(y[rows[k]].tolist())) > 1]
    if mixed:
        raise BadSettingsError(f"videos with both real and fake frames: {mixed[:5]}")
    per_model = np.array([reduce_frames(s[rows[k]], aggregation, axis=0) for k in keys])
    ens = np.array([combine(s[rows[k]], w, aggregation, order) for k in keys])
    video = {m: binary_metrics(v_label, per_model[:, j], threshold) for j, m in enumerate(models)}
    video["ensemble"] = binary_metrics(v_label, ens, threshold)
    for j, m in enumerate([*models, "ensemble"]):
        video[m]["auc_ci95"] = bootstrap_auc_ci(
            v_label, ens if m == "ensemble" else per_model[:, j]
        )

    table = table5(
        [
            (int(v_label[i]), {m: s[rows[k], j] for j, m in enumerate(models)})
            for i, k in enumerate(keys)
        ],
        weightings=[*default_weightings(models), *extra_weightings, w_map],
        aggregations=("mean", "median"),
        orders=("aggregate_then_combine", "combine_then_aggregate"),
        threshold=threshold,
    )
    seen, t5 = set(), []
    for r in table:
        key = (tuple(sorted(r.weights.items())), r.aggregation, r.order)
        if key not in seen:
            seen.add(key)
            t5.append(asdict(r))
    items = tuple(
        ItemScore(
            video=videos[i],
            name=names[i] if names else str(i),
            label=int(y[i]),
            p_fake={m: float(s[i, j]) for j, m in enumerate(models)},
        )
        for i in range(len(y))
    )
    vs = {
        k: {
            "label": int(v_label[i]),
            "n_frames": len(rows[k]),
            "p_fake": {m: float(per_model[i, j]) for j, m in enumerate(models)},
            "ensemble": float(ens[i]),
        }
        for i, k in enumerate(keys)
    }
    return EvaluationResult(
        models=models,
        weights=w_map,
        aggregation=aggregation,
        order=order,
        threshold=threshold,
        frame=frame,
        video=video,
        table5=tuple(t5),
        video_scores=vs,
        items=items,
    )


# --- scoring inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredSet:
    """Per-frame scores of labelled inputs, ready for :func:`evaluate_scores`."""

    models: tuple[str, ...]
    videos: tuple[str, ...]
    labels: tuple[int, ...]
    names: tuple[str, ...]
    scores: np.ndarray
    skipped: tuple[str, ...] = ()


def _is_clip_folder(folder: Path) -> bool:
    return any(p.suffix.lower() in VIDEO_SUFFIXES for p in Path(folder).iterdir())


def score_image_folders(
    folders: Sequence[tuple[Path, int]],
    models: Sequence[str],
    *,
    device: str = "auto",
    weights_dir: Path | None = None,
    batch_size: int = 32,
    keep_ids: set[str] | None = None,
    precision: str = "auto",
    optimize: bool = True,
) -> ScoredSet:
    """Score every face image in the folders with every model (images of one size batched).

    ``keep_ids`` keeps only images whose target id (``TTT`` of ``TTT_k`` / ``TTT_SSS_k``) is in
    it: one part of an id split. Temporal members see each video's frames, ordered by ``k``, as
    one person's track.
    """
    from detector.models import get_spec
    from detector.scoring.ensemble import Ensemble
    from detector.training.images import list_images, read_rgb
    from detector.training.splits import ffpp_target_id, ffpp_video_id

    flow = [m for m in models if get_spec(m).inputs == "crop_and_flow"]
    if flow:
        raise BadSettingsError(
            f"{', '.join(flow)} need consecutive video frames (optical flow): evaluate them on "
            "folders of clips, not of face images"
        )
    ens = Ensemble(
        list(models),
        device=device,
        weights_dir=weights_dir,
        batch_size=batch_size,
        precision=precision,
        optimize=optimize,
    )
    videos, labels, names, images = [], [], [], []
    prefixes = _folder_prefixes(folders)
    for (folder, label), prefix in zip(folders, prefixes, strict=True):
        for p in sorted(list_images(folder), key=_video_then_frame):
            if keep_ids is not None and ffpp_target_id(p) not in keep_ids:
                continue
            images.append(read_rgb(p))
            videos.append(f"{'fake' if label else 'real'}/{prefix}{ffpp_video_id(p)}")
            labels.append(label)
            names.append(f"{folder.name}/{p.name}")
    scores = np.zeros((len(images), len(models)))
    by_shape: dict[tuple, list[int]] = {}
    for i, img in enumerate(images):
        by_shape.setdefault(img.shape, []).append(i)
    video_number = {v: k for k, v in enumerate(dict.fromkeys(videos))}
    for idx in by_shape.values():
        tracks = np.array([video_number[videos[i]] for i in idx])
        scores[idx] = ens.score([images[i] for i in idx], tracks)
    return ScoredSet(tuple(models), tuple(videos), tuple(labels), tuple(names), scores)


def _folder_prefixes(folders: Sequence[tuple[Path, int]]) -> list[str]:
    """What goes before a video's name so that videos of different folders never merge: the
    folder's name where several folders share a label (FaceForensics++ names its clips alike in
    every method's folder), and its place in the list where those names repeat too."""
    out = []
    for i, (folder, label) in enumerate(folders):
        same = [f for f, lab in folders if lab == label]
        if len(same) == 1:
            out.append("")
        elif [f.name for f in same].count(folder.name) == 1:
            out.append(f"{folder.name}/")
        else:
            out.append(f"{i + 1}:{folder.name}/")
    return out


def _video_then_frame(path: Path) -> tuple[str, int, str]:
    """Sort key: video id, then the frame number ``k`` of ``..._k`` (numerically)."""
    from detector.training.splits import ffpp_video_id

    tail = path.stem.rpartition("_")[2]
    return ffpp_video_id(path), int(tail) if tail.isdigit() else -1, path.name


def scores_from_analyses(
    analysed: Sequence[tuple[str, int, Analysis]], models: Sequence[str], log=print
) -> ScoredSet:
    """Per-frame scores of analysed clips: each clip's frames are its deciding person's faces.

    ``analysed`` holds (clip name, label, analysis); clips without a verdict are listed in
    ``skipped`` with their status and message.
    """
    videos, labels, names, rows, skipped = [], [], [], [], []
    keys: list[str] = []  # each analysed clip its own video, even where names repeat
    for name, label, _ in analysed:
        base = f"{'fake' if label else 'real'}/{Path(name).with_suffix('').as_posix()}"
        key, n = base, 1
        while key in keys:
            n += 1
            key = f"{base} ({n})"
        keys.append(key)
    for k, (name, label, analysis) in enumerate(analysed):
        if not analysis.ok or analysis.scores is None:
            skipped.append(f"{name}: {analysis.status}: {analysis.message}")
            log(f"skipped {name}: {analysis.status}")
            continue
        table = analysis.scores
        keep = table.track_ids == analysis.verdict.deciding_track_id
        cols = [table.models.index(m) for m in models]
        for r in np.flatnonzero(keep):
            videos.append(keys[k])
            labels.append(label)
            names.append(f"{name}@{float(table.timestamps_s[r]):.2f}s")
            rows.append(table.p_fake[r, cols])
        log(f"scored {name}: {int(keep.sum())} faces of the deciding track")
    scores = np.array(rows).reshape(len(rows), len(models))
    return ScoredSet(
        tuple(models), tuple(videos), tuple(labels), tuple(names), scores, tuple(skipped)
    )


def score_clip_folders(
    folders: Sequence[tuple[Path, int]],
    models: Sequence[str],
    *,
    device: str = "auto",
    weights_dir: Path | None = None,
    sampling: str = "1fps",
    log=print,
) -> ScoredSet:
    """Run the full pipeline on every clip; its frames are the deciding track's faces."""
    from detector.pipeline import Analyzer, ExtractionSettings

    analyzer = Analyzer(list(models), device=device, weights_dir=weights_dir)
    analysed = []
    for (folder, label), prefix in zip(folders, _folder_prefixes(folders), strict=True):
        clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        for clip in clips:
            analysis = analyzer.analyze(clip, ExtractionSettings(sampling=sampling))
            analysed.append((f"{prefix}{clip.name}", label, analysis))
    return scores_from_analyses(analysed, models, log=log)


def score_folders(
    real: Sequence[Path], fake: Sequence[Path], models: Sequence[str], **kw
) -> ScoredSet:
    """Score folders of face images or of clips (all folders of one kind)."""
    folders = [(Path(p), 0) for p in real] + [(Path(p), 1) for p in fake]
    for f, _ in folders:
        if not f.is_dir():
            raise BadSettingsError(f"{f}: not a folder")
    kinds = {_is_clip_folder(f) for f, _ in folders}
    if len(kinds) > 1:
        raise BadSettingsError("mix of clip folders and image folders: evaluate them separately")
    if kinds.pop():
        if kw.pop("keep_ids", None) is not None:
            raise BadSettingsError("--split applies to folders of face images, not clips")
        return score_clip_folders(folders, models, **kw)
    kw.pop("sampling", None)
    kw.pop("log", None)
    return score_image_folders(folders, models, **kw)


def split_ids_of(split_file: Path, part: str) -> set[str]:
    """The ids of one part ("train", "val", "test") of a split file written by training."""
    split = json.loads(Path(split_file).read_text(encoding="utf-8"))
    if part not in split:
        raise BadSettingsError(f"{split_file} has no part {part!r}")
    return set(split[part])


# --- command line -------------------------------------------------------------------------------


def result_to_dict(res: EvaluationResult, with_items: bool = True) -> dict:
    """JSON-ready document (NaN -> null)."""

    doc = {
        "models": list(res.models),
        "weights": res.weights,
        "aggregation": res.aggregation,
        "order": res.order,
        "threshold": res.threshold,
        "frame_auc": res.frame_auc,
        "video_auc": res.video_auc,
        "accuracy": res.video["ensemble"]["accuracy"],
        "frame_accuracy": res.frame["ensemble"]["accuracy"],
        "confusion": res.video["ensemble"]["confusion"],
        "frame_confusion": res.frame["ensemble"]["confusion"],
        "frame": res.frame,
        "video": res.video,
        "table5": list(res.table5),
        "video_scores": res.video_scores,
        "skipped": list(res.skipped),
    }
    if with_items:
        doc["items"] = [asdict(i) for i in res.items]
    return json_ready(doc)
