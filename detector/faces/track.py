"""MTCNN also fires on things that are not faces (a dark shirt, a necklace, a logo) and on faces too
small to judge, sometimes at a confidence above 0.99, and such a box can decide a verdict. So every
candidate passes a quality gate (:func:`quality_gate`) before it is scored: detector confidence,
the geometry of MTCNN's five landmarks (inside the box, plausible eye distance, eyes above nose
above mouth, nose not far outside the eyes), its place (not on the body of the person whose face
is above it) and size (in pixels, in the frame, beside the frame's main face). A rejected
detection is kept with a plain-words reason, never scored. A second network as a check (the
mediapipe face landmarker) was considered and left out: PyPI's mediapipe 1.2.3 ships no model
(the landmarker's ``.task`` file comes from a model hub) and requires opencv-contrib-python beside
this project's OpenCV; the body check caught what the landmarks could not (hands, jewellery).

Tracks are linked to faces by a minimum-cost assignment (:mod:`detector.faces.assign`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.faces.assign import min_cost_assignment
from detector.types import Face, Track


@dataclass(frozen=True)
class TrackSettings:
    """How faces are linked into people (see :class:`FaceTracker`).

    Similarities are cosines of FaceNet embeddings, measured on the faces that pass the gate in
    the shared clips (``python -m scripts.track_report --similarities``): one person's face
    against the mean of that person's earlier faces in the clip: 1 % below 0.61, lowest 0.35 (a
    FaceSwap fake, whose identity flickers); two different people (38 identities), face against
    face: 99 % below 0.39, 99.9 % below 0.53, highest 0.64; mean against mean: highest 0.58 of
    703 pairs; one person's means of 3 faces against 3 others: lowest 0.58, 1 % below 0.76. So
    a new track is cheap (it may be merged later) and a wrong link is not (it is never undone).

    Attributes:
        max_gap: sampled frames a person may be missed in and still be linked on the spot.
        min_similarity_near: a face near the track's last box joins it only above this.
        min_similarity_far: a face far from the track's last box (a cut, a fast move) joins it
            only above this.
        position_weight: weight of the position cost (0 = same box, 1 = too far) beside the
            appearance distance (1 - cosine) when faces compete for tracks.
        merge_min_similarity: after the video, two tracks never seen in the same frame become
            one person when their mean embeddings are at least this similar.
    """

    max_gap: int = 2
    min_similarity_near: float = 0.4
    min_similarity_far: float = 0.6
    position_weight: float = 0.5
    merge_min_similarity: float = 0.6


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _link_cost(a: Sequence[float], b: Sequence[float]) -> float:
    """0 for identical boxes, >= 1 when they cannot be the same person."""
    overlap = iou(a, b)
    size = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
    dist = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2.0, (a[1] + a[3] - b[1] - b[3]) / 2.0)
    scale = min(a[2] - a[0], b[2] - b[0]) / max(a[2] - a[0], b[2] - b[0], 1e-6)
    if overlap <= 0 and (dist > 1.5 * size or scale < 0.5):
        return 1.0
    return 1.0 - 0.5 * overlap - 0.5 * max(0.0, 1.0 - dist / (1.5 * size)) * scale


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


@dataclass
class _Track:
    """A person being followed: last box, sum of unit embeddings, the sampled frames it is in."""

    track_id: int
    box: tuple[float, float, float, float]
    last_step: int
    embedding_sum: np.ndarray
    steps: set[int]

    @property
    def prototype(self) -> np.ndarray:
        return _unit(self.embedding_sum)


class FaceTracker:
    """Assigns track ids to the faces of successive sampled frames by appearance and position.

    Online, frame by frame: each open track (seen within ``max_gap`` sampled frames) is matched to
    at most one face by an optimal assignment (the Hungarian method) on
    ``(1 - cosine) + position_weight * position_cost``. A pair may be linked only when the face
    looks like the track's person: cosine to the mean of the track's embeddings at least
    ``min_similarity_near`` when the box is near the track's last box, ``min_similarity_far``
    otherwise. Any other face starts a track. :meth:`finish` then merges tracks of one person
    across cuts and absences (greedy, most similar pair first) and numbers the result in order
    of appearance.

    Args:
        settings: thresholds; the defaults were measured on the shared clips.
    """

    def __init__(self, settings: TrackSettings | None = None) -> None:
        self.settings = settings or TrackSettings()
        self._tracks: list[_Track] = []
        self._step = -1

    def update(self, boxes: Sequence[Sequence[float]], embeddings: np.ndarray) -> list[int]:
        """Provisional track ids for this frame's faces, in order (final ids: :meth:`finish`).

        Args:
            boxes: the faces' boxes (xyxy, full-frame pixels).
            embeddings: (len(boxes), D) unit identity embeddings of the same faces.
        """
        s = self.settings
        self._step += 1
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if len(embeddings) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(embeddings)} embeddings")
        open_tracks = [t for t in self._tracks if self._step - t.last_step <= s.max_gap + 1]
        ids = [-1] * len(boxes)
        if open_tracks and len(boxes):
            sim = np.array([t.prototype for t in open_tracks]) @ embeddings.T
            pos = np.array([[_link_cost(t.box, b) for b in boxes] for t in open_tracks])
            near = pos < 1.0
            allowed = (near & (sim >= s.min_similarity_near)) | (sim >= s.min_similarity_far)
            cost = (1.0 - sim) + s.position_weight * np.minimum(pos, 1.0)
            big = 1e6  # forbidden pairs: taken only where nothing else is left, then skipped
            rows, cols = min_cost_assignment(np.where(allowed, cost, big))
            for r, c in zip(rows, cols, strict=True):
                if allowed[r, c]:
                    ids[c] = open_tracks[r].track_id
                    self._extend(open_tracks[r], boxes[c], embeddings[c])
        for i, box in enumerate(boxes):
            if ids[i] < 0:
                track = _Track(
                    len(self._tracks), tuple(box), self._step, embeddings[i].copy(), set()
                )
                track.steps.add(self._step)
                self._tracks.append(track)
                ids[i] = track.track_id
        return ids

    def _extend(self, track: _Track, box: Sequence[float], embedding: np.ndarray) -> None:
        track.box = tuple(box)
        track.last_step = self._step
        track.embedding_sum = track.embedding_sum + embedding
        track.steps.add(self._step)

    def finish(self) -> dict[int, int]:
        """Final id of every provisional id: one person's tracks merged, numbered 0, 1, ... in
        order of first appearance.

        Two tracks merge when their mean embeddings have a cosine of at least
        ``merge_min_similarity`` and no sampled frame holds both (two faces in one frame are two
        people, however alike); the most similar pair merges first and means are updated.
        """
        n = len(self._tracks)
        if n == 0:
            return {}
        sums = np.array([t.embedding_sum for t in self._tracks])
        together = np.zeros((n, n), dtype=bool)  # seen in one frame: never one person
        by_step: dict[int, list[int]] = {}
        for i, t in enumerate(self._tracks):
            for step in t.steps:
                by_step.setdefault(step, []).append(i)
        for ids in by_step.values():
            together[np.ix_(ids, ids)] = True
        protos = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        sim = np.where(together, -np.inf, protos @ protos.T)  # the diagonal is "together" too
        members = [[t.track_id] for t in self._tracks]
        while True:
            a, b = np.unravel_index(int(np.argmax(sim)), sim.shape)
            if sim[a, b] < self.settings.merge_min_similarity:
                break
            members[a], members[b] = members[a] + members[b], []  # b lives on in a
            sums[a] += sums[b]
            together[a] |= together[b]
            together[b] = True  # nothing merges with b any more
            together[:, a], together[:, b] = together[a], True
            protos[a] = _unit(sums[a])
            sim[a] = sim[:, a] = np.where(together[a], -np.inf, protos @ protos[a])
            sim[b] = sim[:, b] = -np.inf
        groups = sorted((m for m in members if m), key=min)  # ids grow in order of appearance
        return {tid: final for final, group in enumerate(groups) for tid in group}


def tracks_of(faces: Sequence[Face]) -> tuple[Track, ...]:
    """The people of an analysis: each track's faces and frames, by track id."""
    by_id: dict[int, list[Face]] = {}
    for f in faces:
        by_id.setdefault(f.track_id, []).append(f)
    return tuple(
        Track(tid, tuple(f.face_id for f in fs), tuple(f.frame_index for f in fs))
        for tid, fs in sorted(by_id.items())
    )
