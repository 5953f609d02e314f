"""Cross-dataset validation set: faces of every clip the members never trained on, and their scores.

The set (all under ``DEEPFAKE_DATA_DIR``, default ``../shared/data``; never trained on):

- ``celebdf``: Celeb-DF v2 test clips, 7 real + 7 fake (another dataset, another face-swap method);
- ``talking_heads``: 11 real talking-head clips (HDTF, interviews);
- ``ffpp_c23`` / ``ffpp_c40``: FaceForensics++ clips of Deepfakes, FaceSwap and NeuralTextures
  (c23: 4; c40: 30) and their real sources (3 + 10), with 10 real DeepFakeDetection actor clips and
  the multi-person stage clip. Members now train on crops of these methods, so these clips are
  "same methods, other videos and compression", reported apart from the cross-dataset sets;
- ``ffpp_val``: the real FaceForensics++ videos of the validation ids (10 frames each, cut as the
  pipeline cuts faces): real footage for calibrating the threshold.

Faces are found by the pipeline itself (``Analyzer.extract_faces``: the same detector, quality
checks and tracker as an analysis), with ``1fps`` sampling for clips of 8 s or more and ``even:8``
for shorter ones (the Celeb-DF clips last 1 s). Crops are cached under ``<cache>/crossval/``,
keyed by the content of the face code, and each member's scores by its weights' sha256 and the
precision path (``PATHS``), so adding a member scores only that member.

    python -m scripts.crossval [--models a,b] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.io.files import VIDEO_SUFFIXES
from detector.settings import PROJECT_ROOT, cache_dir, data_dir
from detector.training.splits import FFPP_SPLIT_FILE


@dataclass(frozen=True)
class Clip:
    """One video of the validation set (``path`` None for the FF++ frame folders)."""

    key: str
    label: int
    source: str
    path: Path | None = None


def clips(root: Path | None = None) -> list[Clip]:
    d = root or data_dir()
    out: list[Clip] = []

    def add(folder: Path, label: int, source: str, skip: Callable[[str], bool] = lambda n: False):
        if not folder.is_dir():
            return
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in VIDEO_SUFFIXES and not skip(p.name):
                out.append(Clip(f"{source}/{folder.name}/{p.stem}", label, source, p))

    add(d / "crossval" / "celebdf_seg" / "real", 0, "celebdf")
    add(d / "crossval" / "celebdf_seg" / "fake", 1, "celebdf")
    add(d / "crossval" / "real_talking_heads", 0, "talking_heads")
    add(d / "clips" / "ffpp_c23" / "real", 0, "ffpp_c23")
    add(d / "clips" / "ffpp_c23" / "fake", 1, "ffpp_c23", lambda n: n.startswith("Face2Face"))
    add(d / "clips" / "misc", 0, "ffpp_c23")
    c40 = d / "ffpp_methods" / "clips_c40"
    for m in ("Deepfakes", "FaceSwap", "NeuralTextures"):
        add(c40 / m, 1, "ffpp_c40")
    add(c40 / "real", 0, "ffpp_c40")
    add(c40 / "real_dfd_actors", 0, "ffpp_c40")
    return out


def ffpp_val_videos() -> dict[str, np.ndarray]:
    """Real FF++ validation-id videos as stacks of pipeline-cut crops (10 frames each)."""
    from detector.training.clip_pool import align_folder
    from detector.training.splits import ffpp_target_id, ffpp_video_id

    split = json.loads(FFPP_SPLIT_FILE.read_text("utf-8"))
    val = set(split["val"])
    a = align_folder(data_dir() / "ffpp_frames" / "real", ffpp_target_id)
    vids: dict[str, list[np.ndarray]] = {}
    for img, name, group in zip(a.images, a.names, a.groups, strict=True):
        if group in val:
            vids.setdefault(ffpp_video_id(name), []).append(img)
    return {k: np.stack(v) for k, v in sorted(vids.items())}


def sampling_for(path: Path) -> str:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        dur = float(s.duration * s.time_base) if s.duration else float(c.duration or 0) / 1e6
    return "1fps" if dur >= 8 else "even:8"


def _face_code_key() -> str:
    """A hash of the code that finds, crops and tracks the faces (the face package and the
    pipeline's extraction loop), not of the whole pipeline, and of its code only (comments and
    docstrings left out): an edit to scoring, the verdict or the words keeps the cached faces."""
    import inspect
    import textwrap

    from detector.pipeline import Analyzer

    h = hashlib.sha256()
    for f in sorted((PROJECT_ROOT / "detector" / "faces").glob("*.py")):
        h.update(_code_only(f.read_text("utf-8")).encode())
    for fn in (Analyzer.extract_faces, Analyzer._extract):
        h.update(_code_only(textwrap.dedent(inspect.getsource(fn))).encode())
    return h.hexdigest()[:12]


def _code_only(source: str) -> str:
    """The syntax tree of Python ``source`` without its docstrings (comments never enter it)."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@dataclass(frozen=True)
class Faces:
    crops: np.ndarray  # N x 320 x 320 x 3
    track_ids: np.ndarray
    frame_indices: np.ndarray
    timestamps_s: np.ndarray
    n_frames: int


@functools.cache
def face_analyzer():
    """One analyzer for every clip's faces stage (its face detector and embedder load once;
    extracting faces loads no scoring member)."""
    from detector.pipeline import Analyzer

    return Analyzer(["efficientnet_lite0"])


def faces_of(clip: Clip, analyzer=None) -> Faces:
    """The clip's faces as an analysis finds them (cached)."""
    folder = cache_dir() / "crossval" / f"faces_{_face_code_key()}"
    file = folder / (clip.key.replace("/", "__") + ".npz")
    if file.is_file():
        z = np.load(file)
        return Faces(
            z["crops"], z["track_ids"], z["frame_indices"], z["timestamps_s"], int(z["n_frames"])
        )
    if clip.path is None:
        raise ValueError(clip.key)
    from detector.pipeline import ExtractionSettings

    analyzer = analyzer or face_analyzer()
    frames, faces = analyzer.extract_faces(
        clip.path, ExtractionSettings(sampling=sampling_for(clip.path))
    )
    res = Faces(
        np.stack([f.crop for f in faces]) if faces else np.zeros((0, 320, 320, 3), np.uint8),
        np.array([f.track_id for f in faces], int),
        np.array([f.frame_index for f in faces], int),
        np.array([f.timestamp_s for f in faces], float),
        len(frames),
    )
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(file, **{k: getattr(res, k) for k in res.__dataclass_fields__})
    return res


def all_faces(log=print) -> dict[str, tuple[Clip, Faces]]:
    """Every validation video's faces: clips through the pipeline, FF++ val ids as one track."""
    analyzer = face_analyzer()
    out = {}
    for c in clips():
        f = faces_of(c, analyzer)
        out[c.key] = (c, f)
        log(f"{c.key}: {len(f.crops)} faces in {len(set(f.track_ids.tolist()))} tracks")
    for vid, crops in ffpp_val_videos().items():
        from detector.training.dataset import resize_square

        crops = np.stack([resize_square(c, 320) for c in crops])
        n = len(crops)
        c = Clip(f"ffpp_val/{vid}", 0, "ffpp_val")
        out[c.key] = (c, Faces(crops, np.zeros(n, int), np.arange(n), np.arange(n, dtype=float), n))
    return out


def next_crops_of(clip: Clip, faces: Faces, analyzer=None) -> list[np.ndarray | None]:
    """Each of the clip's faces cut from the next raw frame at the same box (None at the
    clip's end), for the two-stream members' optical flow. The clip is decoded again with its
    next frames, and the faces found must be the cached ones, crop for crop. Cached beside
    them. A frame-folder video (the FF++ validation ids) has no next frame: ValueError."""
    folder = cache_dir() / "crossval" / f"next_{_face_code_key()}"
    file = folder / (clip.key.replace("/", "__") + ".npz")
    if file.is_file():
        z = np.load(file)
        return [c if ok else None for c, ok in zip(z["next"], z["has"], strict=True)]
    if clip.path is None:
        raise ValueError(f"{clip.key} is a folder of frames: it has no next raw frame")
    from detector.pipeline import ExtractionSettings

    analyzer = analyzer or face_analyzer()
    _, found = analyzer.extract_faces(
        clip.path, ExtractionSettings(sampling=sampling_for(clip.path)), with_next=True
    )
    crops = [f.crop for f in found]
    if len(crops) != len(faces.crops) or not all(
        np.array_equal(a, b) for a, b in zip(crops, faces.crops, strict=True)
    ):
        raise RuntimeError(f"{clip.key}: decoded with its next frames, other faces were found")
    has = np.array([f.next_crop is not None for f in found], bool)
    nxt = [f.next_crop if f.next_crop is not None else np.zeros_like(f.crop) for f in found]
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(file, next=np.stack(nxt) if nxt else np.zeros((0, 320, 320, 3), np.uint8), has=has)
    return [c if ok else None for c, ok in zip(nxt, has, strict=True)]


def with_next_frames(faces: dict[str, tuple[Clip, Faces]]) -> dict[str, tuple[Clip, Faces]]:
    """The videos a member that needs each face's next raw frame can be measured on: the clips
    (the FF++ validation videos are folders of frames, with no next frame)."""
    return {k: v for k, v in faces.items() if v[0].path is not None}


Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


PATHS = {
    "fp32": "CPUs without native bf16 (every member in float32)",
    "bf16cpu": "CPUs with AVX-512 BF16 and no AMX, such as AMD EPYC 9004 (each member in bf16 "
    "where its precision check admits it)",
    "bf16amx": "CPUs with AMX, Intel Xeon 4th generation and later (each member in bf16 where "
    "its precision check admits it, on AMX tiles)",
}
# the bf16 kernels (detector.scoring.device.bf16_kernels) a path's bf16 members need: AMX and
# AVX-512 BF16 round differently, so a score cached on one is not the other's
PATH_KERNELS = {"bf16cpu": "AVX512_BF16", "bf16amx": "AMX"}


def precision_on(name: str, path: str) -> str:
    """The precision ("fp32" or "bf16") a member runs in on a precision path: on a bf16 path
    (``bf16cpu``, ``bf16amx``), bf16 where its manifest's precision check admits it on that
    path's kernels, as :class:`Ensemble` decides on such a CPU."""
    from detector.models import get_spec, model_card
    from detector.scoring.ensemble import bf16_holds, frozen_on_cpu

    if path not in PATHS:
        raise ValueError(f"unknown precision path {path!r}: one of {sorted(PATHS)}")
    if path not in PATH_KERNELS:
        return "fp32"
    card, frozen = model_card(name), frozen_on_cpu(get_spec(name))
    return "bf16" if bf16_holds(card, frozen=frozen, kernels=PATH_KERNELS[path]) else "fp32"


def ran_as(name: str, path: str) -> str:
    """A member's precision on a path in the words an analysis records it in
    (:attr:`detector.scoring.ensemble.Ensemble.precisions`): "fp32", "bf16", "bf16 (AMX)"."""
    from detector.scoring.ensemble import precision_word

    return precision_word(precision_on(name, path) == "bf16", PATH_KERNELS.get(path))


def score_tag(sha256: str, precision: str, kernels: str | None, revision: int = 1) -> str:
    """The name of a member's crossval score cache: its weights, its precision and, for bf16,
    the kernels (AMX rounds otherwise than AVX-512 BF16) and the revision of its frozen bf16
    graph (:func:`detector.scoring.graphs.bf16_graph_revision`, named from 2 on):
    ``<sha12>_fp32``, ``<sha12>_bf16``, ``<sha12>_bf16amx``, ``<sha12>_bf16amx_r2``."""
    amx = "amx" if precision == "bf16" and kernels == "AMX" else ""
    rev = f"_r{revision}" if precision == "bf16" and revision > 1 else ""
    return f"{sha256[:12]}_{precision}{amx}{rev}"


def size_mark(name: str) -> str:
    """The score cache's mark of a member that runs at another input size than its manifest
    says it was trained at ("_s192": e.g. a head kept as trained at 224 px, run at 192), so that
    its scores are not taken for the cached ones of the same weights at the old size; "" for a
    member at the size it was trained at."""
    from detector.models import get_spec, read_manifest

    runs = get_spec(name).input_size
    manifest = read_manifest(name)
    trained = (manifest.get("config") or {}).get("size", manifest.get("input_size", runs))
    return "" if runs == trained else f"_s{runs}"


class PathNotHere(RuntimeError):
    """A precision path's scores are not cached and this process cannot compute them."""


def member_scores(
    name: str,
    faces: dict[str, tuple[Clip, Faces]],
    scorer: Scorer | None = None,
    tag: str = "",
    path: str = "fp32",
) -> dict[str, np.ndarray]:
    """p_fake of every face for one member on a precision ``path`` (:data:`PATHS`), cached by
    its weights' sha256 and the precision it runs in there (or by ``tag``)."""
    from detector.models import get_spec, read_manifest
    from detector.scoring.graphs import bf16_graph_revision

    precision = precision_on(name, path)
    if not tag:  # keyed by the precision (and bf16 kernels, graph) it runs in on that path
        tag = score_tag(
            read_manifest(name)["sha256"],
            precision,
            PATH_KERNELS.get(path),
            bf16_graph_revision(get_spec(name)),
        ) + size_mark(name)
    file = cache_dir() / "crossval" / f"scores_{_face_code_key()}" / f"{name}_{tag}.json"
    cached = json.loads(file.read_text("utf-8")) if file.is_file() else {}
    todo = [k for k in faces if k not in cached]
    if todo:
        if scorer is None:
            from detector.scoring.device import bf16_kernels, partial_isa_cap
            from detector.scoring.ensemble import Ensemble

            if precision == "bf16" and bf16_kernels() != PATH_KERNELS[path]:
                raise PathNotHere(
                    f"{name} runs in bf16 on the {path} path, on {PATH_KERNELS[path]} kernels; "
                    f"this process has {bf16_kernels() or 'no native bf16'} (measure it on a "
                    "CPU with them; on an AMX CPU, the AVX-512 BF16 path with every switch of "
                    "detector.scoring.device.ISA_CAPS['AVX512_CORE_BF16'] set, as calibrate does)"
                )
            if why := partial_isa_cap():  # MKL or torch's kernels would run another CPU's path
                raise PathNotHere(f"{why}: set every switch of the cap, or none")
            ens = Ensemble([name], device="cpu", precision=precision)

            def scorer(crops, tracks, nxt=None):
                return ens.score(crops, tracks, nxt)[:, 0]

        flow = get_spec(name).inputs == "crop_and_flow"
        for k in todo:
            c, f = faces[k]
            nxt = (next_crops_of(c, f),) if flow else ()
            cached[k] = scorer(f.crops, f.track_ids, *nxt).tolist() if len(f.crops) else []
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(cached), "utf-8")
    return {k: np.asarray(v) for k, v in cached.items() if k in faces}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="", help="comma-separated members to score (default: all)")
    p.add_argument("--json", type=Path, default=None, help="write per-clip video scores here")
    p.add_argument("--path", choices=sorted(PATHS), default="fp32", help="precision path")
    args = p.parse_args(argv)
    from detector.models import list_models

    faces = all_faces()
    names = [m for m in args.models.split(",") if m] or list_models(available_only=True)
    report = {}
    for name in names:
        scores = member_scores(name, faces, path=args.path)
        report[name] = {k: float(np.mean(v)) if len(v) else None for k, v in scores.items()}
        print(name, "scored")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
