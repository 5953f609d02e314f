"""People and rejected detections on every shared clip, before and after the face quality gate and
appearance tracking (issue 13), so the numbers in the docs can be reproduced.

For each clip (``clips/ffpp_c23``, ``clips/misc``, ``crossval``, ``ffpp_methods/clips_c40``;
1 frame/s, the 1-s Celeb-DF clips ``even:8``) the pipeline runs twice on the same MTCNN
detections (detected once, replayed):

- *before*: every detection above the detector's floor is scored, tracks linked by position only
  (Hungarian on overlap and distance, a gap of 2 sampled frames), as the pipeline did until then;
- *after*: the default settings: quality gate, then appearance + position tracking and merging.

It prints one row per clip: sampled frames, detections, rejected detections (and why), tracks
before and after. Options:

- ``--sheets DIR``: a contact sheet per clip and mode (``<clip>.after.png``: one row of crops per
  track, then the rejected boxes; ``<clip>.before.png``), for checking people by eye;
- ``--geometry``: the range of every quality measure over the faces that passed the gate (the
  limits of ``QualitySettings`` lie outside them);
- ``--similarities``: the identity-embedding statistics ``TrackSettings``' thresholds were set
  from (one person within a clip; different people across clips);
- ``--timing``: the faces stage (detection, gate, embedding, tracking; decoding excluded) on a
  10 s 720p synthetic clip and on the stage clip, before and after, runs alternated.

    python -m scripts.track_report [--only SUBSTRING] [--sheets DIR] [--geometry] [--similarities]
        [--timing]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.faces.detect import FaceSettings
from detector.faces.quality import QualitySettings
from detector.faces.track import TrackSettings
from detector.pipeline import Analyzer, ExtractionSettings
from detector.settings import data_dir
from detector.types import Analysis, Detection

MODELS = ("meso4_df",)  # the cheapest member: scoring is not what is measured here
POSITION_ONLY = TrackSettings(
    min_similarity_near=-math.inf, min_similarity_far=math.inf, merge_min_similarity=math.inf
)
BEFORE = FaceSettings(quality=QualitySettings.off(), tracking=POSITION_ONLY)
AFTER = FaceSettings()
STAGE_CLIP = "clips/misc/short_hamilton_clip.mp4"


def shared_clips(root: Path) -> list[tuple[str, str]]:
    """(path relative to the data folder, sampling) of every clip measured."""
    found = []
    for sub in ("clips/ffpp_c23", "clips/misc", "crossval", "ffpp_methods/clips_c40"):
        for p in sorted((root / sub).rglob("*.mp4")):
            rel = str(p.relative_to(root))
            found.append((rel, "even:8" if "celebdf" in rel else "1fps"))
    return found


class ReplayDetector:
    """Runs MTCNN once per distinct frame and replays its boxes when the frame comes again."""

    def __init__(self, detector) -> None:
        self._detector = detector
        self._seen: dict[str, list[Detection]] = {}

    def detect(self, image: np.ndarray) -> list[Detection]:
        key = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + str(image.shape)
        if key not in self._seen:
            self._seen[key] = self._detector.detect(image)
        return self._seen[key]

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        return [self.detect(image) for image in images]

    def clear(self) -> None:
        self._seen.clear()


class SameFace:
    """An "embedder" that makes every face look alike: with it tracking uses position only."""

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return np.ones((len(crops), 1))


class RecordingEmbedder:
    """Passes through to the real embedder and keeps what it returned, in face order."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.rows: list[np.ndarray] = []

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        out = self._embedder.embed_crops(crops)
        self.rows.extend(out)
        return out


@dataclass(frozen=True)
class Row:
    clip: str
    sampling: str
    frames: int
    detections: int
    rejected: Counter
    tracks_before: int
    tracks_after: int


def _analyze(analyzer: Analyzer, path: Path, sampling: str, faces: FaceSettings) -> Analysis:
    settings = ExtractionSettings(sampling=sampling, faces=faces, isolate_decoding=False)
    a = analyzer.analyze(path, settings)
    if a.status not in ("ok", "no_faces"):
        raise RuntimeError(f"{path}: {a.status}: {a.message}")
    return a


def measure(
    clips: list[tuple[str, str]], sheets: Path | None
) -> tuple[list[Row], dict[str, tuple]]:
    """The table's rows, and per clip the "after" faces with their embeddings (for statistics)."""
    from detector.faces.detect import MTCNNDetector
    from detector.faces.identity import FaceEmbedder

    replay = ReplayDetector(MTCNNDetector(AFTER, device="cpu"))
    embedder = FaceEmbedder(device="cpu")
    recorder = RecordingEmbedder(embedder)
    before = Analyzer(MODELS, device="cpu", detector=replay, embedder=SameFace())
    after = Analyzer(MODELS, device="cpu", detector=replay, embedder=recorder)
    rows, kept = [], {}
    for rel, sampling in clips:
        path = data_dir() / rel
        replay.clear()
        recorder.rows.clear()
        b = _analyze(before, path, sampling, BEFORE)
        a = _analyze(after, path, sampling, AFTER)
        if len(a.faces) + len(a.rejected) != len(b.faces):
            raise RuntimeError(f"{rel}: faces + rejected != detections")
        rows.append(
            Row(
                rel,
                sampling,
                len(a.frames),
                len(b.faces),
                Counter(r.check for r in a.rejected),
                len(b.tracks),
                len(a.tracks),
            )
        )
        kept[rel] = (a, np.array(recorder.rows).reshape(len(a.faces), -1) if a.faces else None)
        print_row(rows[-1], file=sys.stderr)
        if sheets is not None:
            write_sheet(sheets / f"{rel.replace('/', '__')}.after.png", path, sampling, a)
            write_sheet(sheets / f"{rel.replace('/', '__')}.before.png", path, sampling, b)
    return rows, kept


def print_row(r: Row, file=sys.stdout) -> None:
    why = ", ".join(f"{n} {k}" for k, n in r.rejected.most_common()) or "-"
    print(
        f"| {r.clip} | {r.sampling} | {r.frames} | {r.detections} | "
        f"{sum(r.rejected.values())} ({why}) | {r.tracks_before} | {r.tracks_after} |",
        file=file,
        flush=True,
    )


def print_table(rows: list[Row]) -> None:
    print("| clip | sampling | frames | detections | rejected (why) | tracks before | after |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print_row(r)
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(re.sub(r"/[^/]*$", "", r.clip), []).append(r)
    print("\n| folder | clips | detections | rejected | tracks before | after |")
    print("|---|---|---|---|---|---|")
    for g, rs in [*groups.items(), ("all", rows)]:
        print(
            f"| {g} | {len(rs)} | {sum(r.detections for r in rs)} | "
            f"{sum(sum(r.rejected.values()) for r in rs)} | "
            f"{sum(r.tracks_before for r in rs)} | {sum(r.tracks_after for r in rs)} |"
        )


def write_sheet(out: Path, path: Path, sampling: str, a: Analysis, per_row: int = 12) -> None:
    """One row of 96 px crops per track (label: Person k, faces, first-last time), then the
    rejected boxes cut from their frames (label: the check that failed)."""
    import cv2

    from detector.faces.crop import square_crop
    from detector.io.decode import read_frames
    from detector.io.probe import parse_sampling, probe

    tile = 96
    rows = []
    for t in a.tracks:
        faces = [a.faces[i] for i in t.face_ids]
        step = max(1, math.ceil(len(faces) / per_row))
        crops = [cv2.resize(f.crop, (tile, tile)) for f in faces[::step]]
        label = f"P{t.track_id + 1}: {len(faces)}f {faces[0].timestamp_s:.0f}-{faces[-1].timestamp_s:.0f}s"
        rows.append((label, crops))
    if a.rejected:
        wanted = {r.frame_index for r in a.rejected}
        frames = {
            f.index: f.image
            for f in read_frames(path, probe(path), parse_sampling(sampling))
            if f.index in wanted
        }
        crops = [square_crop(frames[r.frame_index], r.box_xyxy, 0.0, tile) for r in a.rejected]
        checks = ",".join(sorted({r.check for r in a.rejected}))
        for i in range(0, len(crops), per_row):
            rows.append((f"rejected: {checks}", crops[i : i + per_row]))
    if not rows:
        return
    label_w = 200
    sheet = np.full((tile * len(rows), label_w + tile * per_row, 3), 32, np.uint8)
    for k, (label, crops) in enumerate(rows):
        y = k * tile
        cv2.putText(sheet, label, (4, y + tile // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255,) * 3)
        for j, c in enumerate(crops[:per_row]):
            sheet[y : y + tile, label_w + j * tile : label_w + (j + 1) * tile] = c
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet[:, :, ::-1])


# --- what real faces look like ------------------------------------------------------------------


def geometry(kept: dict[str, tuple]) -> None:
    """Range of every quality measure over the faces that passed the gate (the limits in
    ``QualitySettings`` lie outside these ranges, so that no face of this kind is rejected)."""
    from dataclasses import asdict

    from detector.faces.quality import landmark_measures
    from detector.types import Detection

    rows = []
    for a, _ in kept.values():
        short = min(a.video.display_size)
        widest: dict[int, float] = {}
        for f in a.faces:
            w = f.box_xyxy[2] - f.box_xyxy[0]
            widest[f.frame_index] = max(widest.get(f.frame_index, 0.0), w)
        for f in a.faces:
            m = landmark_measures(Detection(f.box_xyxy, f.confidence, f.landmarks_xy))
            w = f.box_xyxy[2] - f.box_xyxy[0]
            rows.append(
                {
                    "confidence": f.confidence,
                    **asdict(m),
                    "width_px": w,
                    "frame_share": w / short,
                    "main_face_share": w / widest[f.frame_index],
                }
            )
    print(f"\nfaces that passed the gate ({len(rows)}): min / 0.1 % / 99.9 % / max")
    for key in rows[0]:
        v = np.array([r[key] for r in rows])
        lo, q1, q9, hi = np.quantile(v, (0, 0.001, 0.999, 1))
        print(f"  {key:16s} {lo:8.3f} {q1:8.3f} {q9:8.3f} {hi:8.3f}")


# --- identity statistics --------------------------------------------------------------------------


def _identity(rel: str) -> str | None:
    """Who is in a clip of real footage, by its name (None: a fake or several people)."""
    for pattern, prefix in (
        (r"real_talking_heads/(.+)\.mp4$", "th:"),
        (r"real_dfd_actors/(\d+)__", "dfd:"),
        (r"(?:ffpp_c23|clips_c40)/real/(\d+)\.mp4$", "ff:"),
        (r"celebdf_seg/real/(id\d+|\d+)_", "cd:"),
    ):
        if m := re.search(pattern, rel):
            return prefix + m.group(1)
    return None


SAME_PEOPLE = {"th:vr_3_v2": "th:hdtf_WDA_AlexandriaOcasioCortez_000"}  # one woman, two datasets
# Clips where one person fills the video (people cut to one another are in real_dfd_actors/misc).
SINGLE_PERSON = re.compile(r"ffpp_c23|clips_c40/(?!real_dfd_actors)|celebdf_seg|real_talking")


def _q(values: Sequence[float], qs=(0.0, 0.001, 0.01, 0.05, 0.5)) -> str:
    v = np.asarray(values)
    return ", ".join(f"{q:g}: {x:.3f}" for q, x in zip(qs, np.quantile(v, qs), strict=True))


def similarities(kept: dict[str, tuple]) -> None:
    """One person: each face against the mean of that clip's faces before it (what the tracker
    compares with). Different people: faces and clip means across real clips of different
    identities. Only frames with exactly one face that passed the gate are used."""
    to_track, per_clip = [], {}
    for rel, (a, emb) in kept.items():
        if emb is None:
            continue
        single = [fr.face_ids[0] for fr in a.frames if len(fr.face_ids) == 1]
        if not single:
            continue
        e = emb[single]
        per_clip[rel] = e
        if SINGLE_PERSON.search(rel):
            csum = np.cumsum(e, axis=0)[:-1]
            means = csum / np.linalg.norm(csum, axis=1, keepdims=True)
            to_track += list(np.sum(means * e[1:], axis=1))
    print(f"\none person, face vs mean of the clip's earlier faces ({len(to_track)} faces):")
    print(f"  quantiles {_q(to_track)}")
    people: dict[str, list[np.ndarray]] = {}
    for rel, e in per_clip.items():
        if who := _identity(rel):
            people.setdefault(SAME_PEOPLE.get(who, who), []).append(e)
    names = sorted(people)
    faces_diff, means_diff = [], []
    for i, p in enumerate(names):
        for q in names[i + 1 :]:
            a, b = np.concatenate(people[p]), np.concatenate(people[q])
            faces_diff += list((a @ b.T).ravel())
            ma, mb = a.mean(0), b.mean(0)
            means_diff.append(float(ma @ mb / np.linalg.norm(ma) / np.linalg.norm(mb)))
    hi = (0.5, 0.95, 0.99, 0.999, 1.0)
    print(f"different people ({len(names)} identities), face vs face ({len(faces_diff)} pairs):")
    print(f"  quantiles {_q(faces_diff, hi)}")
    print(f"different people, mean vs mean ({len(means_diff)} pairs): {_q(means_diff, hi)}")
    rng = np.random.default_rng(0)
    for k in (1, 2, 3):
        halves = []
        for rel, e in per_clip.items():
            if SINGLE_PERSON.search(rel) and len(e) >= 2 * k:
                for _ in range(20):
                    idx = rng.choice(len(e), 2 * k, replace=False)
                    m1, m2 = e[idx[:k]].mean(0), e[idx[k:]].mean(0)
                    halves.append(float(m1 @ m2 / np.linalg.norm(m1) / np.linalg.norm(m2)))
        print(f"one person, mean of {k} faces vs mean of {k} others: {_q(halves)}")


# --- timing ---------------------------------------------------------------------------------------


def timing(runs: int) -> None:
    """Median faces-stage seconds, before and after, runs alternated (the machine is shared)."""
    from detector.io import synthetic

    with tempfile.TemporaryDirectory() as tmp:
        clip = synthetic.astronaut_clip(Path(tmp) / "a720.mp4", seconds=10, width=1280, height=720)
        before = Analyzer(MODELS, device="cpu", embedder=SameFace()).load()
        after = Analyzer(MODELS, device="cpu").load()
        for name, path in (("10 s 720p synthetic", clip), ("stage clip", data_dir() / STAGE_CLIP)):
            t: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(runs):
                for mode, analyzer, faces in (("before", before, BEFORE), ("after", after, AFTER)):
                    a = analyzer.analyze(path, ExtractionSettings(faces=faces))
                    t[mode].append(a.timings_s["faces_s"])
            print(
                f"{name} ({len(a.frames)} frames, {len(a.faces)} faces): faces stage "
                + "; ".join(
                    f"{m} median {statistics.median(v):.2f} s (runs {', '.join(f'{x:.2f}' for x in v)})"
                    for m, v in t.items()
                )
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="measure only clips whose path contains this")
    parser.add_argument("--sheets", type=Path, help="write contact sheets (PNG) here")
    parser.add_argument("--similarities", action="store_true")
    parser.add_argument("--geometry", action="store_true")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--runs", type=int, default=5, help="timing runs per mode")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    root = data_dir()
    if not (root / "clips").is_dir():
        raise SystemExit(f"no shared clips under {root} (set DEEPFAKE_DATA_DIR)")
    clips = [c for c in shared_clips(root) if not args.only or args.only in c[0]]
    rows, kept = measure(clips, args.sheets)
    print_table(rows)
    if args.geometry:
        geometry(kept)
    if args.similarities:
        similarities(kept)
    if args.timing:
        timing(args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
