"""Find every face in a frame, keep those that look like faces, follow each person over time.

MTCNN (Zhang et al. 2016, via facenet-pytorch, whose wheel ships the P/R/O-net weights) runs on a
downscaled copy of the frame, as in the DFDC winner's pipeline; boxes are mapped back and crops are
cut from the full-resolution frame. All faces above a confidence are candidates, not just the
largest.

MTCNN also fires on things that are not faces (a dark shirt, a necklace, a logo) and on faces too
small to judge, sometimes at a confidence above 0.99, and such a box can decide a verdict. So every
candidate passes a quality gate (:func:`quality_gate`) before it is scored: detector confidence,
the geometry of MTCNN's five landmarks (inside the box, plausible eye distance, eyes above nose
above mouth, nose not far outside the eyes), its place (not on the body of the person whose face
is above it) and size (in pixels, in the frame, beside the frame's main face). A rejected
detection is kept with a plain-words reason, never scored. A second network as a check (the
mediapipe face landmarker) was considered and left out: PyPI's mediapipe 1.2.3 ships no model
(the landmarker's ``.task`` file comes from a model hub) and requires opencv-contrib-python beside
this project's OpenCV; the body check caught what the landmarks could not (hands, jewellery).

Tracking (:class:`FaceTracker`) links the faces of successive sampled frames by appearance and
position: a face-identity embedding (FaceNet, :mod:`detector.faces.identity`) says who it is, the box
says where. A face joins an open track only when it looks like that person; after the whole video,
tracks of one person (split by a cut or a long absence) are merged, but never two tracks seen in
the same frame. Position alone (the method before) split people at every cut and let one track
pass from one person to another when they stood in the same place.

torch and SciPy are imported when a detector is built or a tracker links boxes, so that code that
only needs the settings (and a CLI refusing a broken file) starts without them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np


@dataclass(frozen=True)
class Detection:
    """A face box in full-frame pixel coordinates."""

    box_xyxy: tuple[float, float, float, float]
    confidence: float
    landmarks_xy: tuple[tuple[float, float], ...]


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one RGB uint8 frame."""


@dataclass(frozen=True)
class QualitySettings:
    """What a detection must look like to be scored. Each threshold is a reason to reject.

    Set by looking at the crops of MTCNN's detections in the 94 shared clips (FaceForensics++,
    Celeb-DF, talking heads, the stage clip; first with MTCNN's floor at 0.5, 1,638 boxes, then
    at the pipeline's 0.9, 1,558 boxes: ``python -m scripts.track_report --sheets DIR
    --geometry``). The geometry bounds lie well outside what the 1,491 faces that pass showed
    (profiles and raised heads included), so they reject only landmark sets that cannot be a
    face. What removed the non-faces seen (necklaces, hands, a logo, a caption, a costume's
    mask, the back of a head) and blurred background people was confidence, the width beside the main face and
    the body check: of the 30 boxes (at MTCNN's floor of 0.5) that lay on the torso of a larger
    face's person, all were hands, necklaces, clothing or a logo, 4 of them at 0.95 or more.

    Attributes:
        min_confidence: MTCNN probability below which a detection is not trusted. The faces that
            pass scored 0.97 or more; non-faces between 0.90 and 0.95 were common.
        landmark_margin: how far (share of the box's longer side) a landmark may lie outside the
            box (faces that pass: 0.005 at most; a profile beside a larger face reached 0.05).
        eye_distance: allowed range of the distance between the eyes as a share of the box width
            (faces that pass: 0.24 turned aside to 0.58 frontal).
        min_feature_drop: the nose must lie at least this far below the eye line and the mouth
            this far below the nose, in eye distances, measured square to the eye line, so a
            tilted head passes (faces that pass: 0.19 and 0.25 or more).
        max_nose_offset: left/right symmetry: how far the nose may lie from the eyes' midpoint,
            along the eye line, in eye distances (faces that pass: up to 0.94; a full profile
            beside a larger face reached 1.5).
        mouth_width: allowed range of the mouth's width in eye distances (faces that pass:
            0.59-1.07).
        min_side_px: smallest face width in pixels that is scored (a 30 px face still is).
        min_frame_share: smallest face width as a share of the frame's shorter side.
        min_main_face_share: smallest face width as a share of the widest face of the same frame
            that passed the other checks (people far behind the main face, things beside it;
            faces that pass: 0.59 or more). Per frame, not per video: a wide shot after a
            close-up is not "too small".
        body_half_width: a detection narrower than a face of the same frame whose centre lies
            below that face's chin, within this many face widths of its centre line and
            ``body_depth`` face heights of its chin, is on that person's body (hands, shirt,
            jewellery): anything behind a torso is hidden by it. A small face held in front of a
            person (a child in someone's arms) would be rejected too.
        body_depth: see ``body_half_width``.
    """

    min_confidence: float = 0.95
    landmark_margin: float = 0.1
    eye_distance: tuple[float, float] = (0.15, 0.75)
    min_feature_drop: float = 0.05
    max_nose_offset: float = 1.75
    mouth_width: tuple[float, float] = (0.3, 2.0)
    min_side_px: float = 24.0
    min_frame_share: float = 0.03
    min_main_face_share: float = 0.4
    body_half_width: float = 1.5
    body_depth: float = 3.0

    @classmethod
    def off(cls) -> QualitySettings:
        """Every candidate passes: the pipeline before the gate existed (for measurements)."""
        inf = math.inf
        return cls(0.0, inf, (0.0, inf), -inf, inf, (0.0, inf), 0.0, 0.0, 0.0, 0.0, 0.0)


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


@dataclass(frozen=True)
class FaceSettings:
    """Detection, quality, cropping and tracking parameters.

    Attributes:
        min_confidence: MTCNN probability below which a box is not even a candidate (candidates
            then face ``quality.min_confidence``; only those above this floor are listed as
            rejected, so the list stays about boxes that were once scored).
        detect_max_side: frames are downscaled so the longer side is at most this for detection.
        min_face_px: smallest face side (in detection pixels) MTCNN searches for.
        retry_full_resolution: when the downscaled frame shows no face, search again at full size
            (finds small faces in large frames; costs time only on face-less frames).
        crop_margin: added on each side of the face box, as a share of its longer side.
        crop_size: side of the stored square crops (resized per model later).
        quality: what a detection must look like to be scored.
        tracking: how faces are linked into people.
    """

    min_confidence: float = 0.9
    detect_max_side: int = 640
    min_face_px: int = 20
    retry_full_resolution: bool = True
    crop_margin: float = 0.0
    crop_size: int = 320
    quality: QualitySettings = field(default_factory=QualitySettings)
    tracking: TrackSettings = field(default_factory=TrackSettings)


class MTCNNDetector:
    """facenet-pytorch MTCNN returning every face above ``min_confidence``."""

    def __init__(self, settings: FaceSettings | None = None, device: str = "cpu") -> None:
        import torch
        from facenet_pytorch import MTCNN

        self.settings = settings or FaceSettings()
        self._mtcnn = MTCNN(
            keep_all=True,
            select_largest=False,
            min_face_size=self.settings.min_face_px,
            post_process=False,
            device=torch.device(device),
        )

    def _detect_scaled(self, image: np.ndarray, max_side: int | None) -> list[Detection]:
        h, w = image.shape[:2]
        scale = 1.0
        small = image
        if max_side and max(h, w) > max_side:
            scale = max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < self.settings.min_face_px:
            return []  # no face of the smallest size searched for fits (MTCNN fails on these)
        import torch

        with torch.inference_mode():
            boxes, probs, points = self._mtcnn.detect(small, landmarks=True)
        if boxes is None:
            return []
        found = []
        for box, prob, pts in zip(boxes, probs, points, strict=True):
            if prob is None or float(prob) < self.settings.min_confidence:
                continue
            x1, y1, x2, y2 = (float(v) / scale for v in box)
            x1, y1 = max(0.0, x1), max(0.0, y1)
            x2, y2 = min(float(w), x2), min(float(h), y2)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            marks = tuple((float(px) / scale, float(py) / scale) for px, py in pts)
            found.append(Detection((x1, y1, x2, y2), float(prob), marks))
        return found

    def detect(self, image: np.ndarray) -> list[Detection]:
        found = self._detect_scaled(image, self.settings.detect_max_side)
        downscaled = max(image.shape[:2]) > self.settings.detect_max_side
        if not found and downscaled and self.settings.retry_full_resolution:
            found = self._detect_scaled(image, None)
        return found


def square_crop(
    image: np.ndarray, box_xyxy: Sequence[float], margin: float, size: int
) -> np.ndarray:
    """A square crop centred on the box, ``margin`` of its longer side added on each side.

    Parts outside the frame (faces at the border) are filled by replicating the edge, so the face
    keeps its place and scale in the crop.
    """
    x1, y1, x2, y2 = box_xyxy
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left, top = round(cx - side / 2.0), round(cy - side / 2.0)
    side_px = max(2, round(side))
    h, w = image.shape[:2]
    pad_l, pad_t = max(0, -left), max(0, -top)
    pad_r, pad_b = max(0, left + side_px - w), max(0, top + side_px - h)
    patch = image[max(0, top) : min(h, top + side_px), max(0, left) : min(w, left + side_px)]
    if pad_l or pad_t or pad_r or pad_b:
        patch = cv2.copyMakeBorder(patch, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if side_px > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interp)


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


# --- quality gate -------------------------------------------------------------------------------


REJECTION_KINDS = {
    "confidence": "low detector confidence",
    "landmarks": "not a face (landmarks outside the box)",
    "eye_distance": "not a face (eye distance implausible for the box)",
    "feature_order": "not a face (eyes, nose and mouth out of order)",
    "symmetry": "not a face (lopsided landmarks)",
    "size": "too small to judge",
    "frame_share": "too small in the frame",
    "body": "not a face (on the body of a person: a hand, clothing)",
    "main_face": "too small beside the main face",
}
"""Each check of :func:`quality_gate` and what a rejection by it means, in a few words."""


@dataclass(frozen=True)
class Rejection:
    """A detection the quality gate kept from scoring, and why.

    Attributes:
        check: which check failed (``confidence``, ``landmarks``, ``eye_distance``,
            ``feature_order``, ``symmetry``, ``size``, ``frame_share``, ``body``, ``main_face``).
        reason: the same in plain words, with the measured value and the limit.
    """

    detection: Detection
    check: str
    reason: str


@dataclass(frozen=True)
class LandmarkMeasures:
    """How MTCNN's five landmarks sit in their box; what the geometry checks compare.

    MTCNN's points are, in order: the eye on the image's left, the other eye, the nose tip, the
    mouth corner on the left, the other corner. Distances after the first two are in eye
    distances, measured along and square to the eye line, so a tilted head measures as upright.

    Attributes:
        outside: how far the farthest landmark lies outside the box, as a share of its longer
            side (0 when all are inside).
        eye_share: distance between the eyes as a share of the box width.
        nose_drop: how far the nose lies below the eye line.
        mouth_drop: how far the mouth's centre lies below the nose.
        nose_offset: how far the nose lies to one side of the eyes' midpoint.
        mouth_width: distance between the mouth corners.
    """

    outside: float
    eye_share: float
    nose_drop: float
    mouth_drop: float
    nose_offset: float
    mouth_width: float


def landmark_measures(det: Detection) -> LandmarkMeasures | None:
    """The measures of a detection's landmarks, or None when it has not five of them or its eyes
    coincide."""
    if len(det.landmarks_xy) != 5:
        return None
    x1, y1, x2, y2 = det.box_xyxy
    pts = np.asarray(det.landmarks_xy, dtype=np.float64)
    beyond = max(
        0.0,
        float((x1 - pts[:, 0]).max()),
        float((pts[:, 0] - x2).max()),
        float((y1 - pts[:, 1]).max()),
        float((pts[:, 1] - y2).max()),
    )
    left_eye, right_eye, nose, mouth_l, mouth_r = pts
    eye_vec = right_eye - left_eye
    eye_dist = float(np.hypot(*eye_vec))
    if eye_dist < 1e-6:
        return None
    along = eye_vec / eye_dist
    down = np.array([-along[1], along[0]])  # square to the eye line, pointing to the chin
    eyes_mid, mouth_mid = (left_eye + right_eye) / 2.0, (mouth_l + mouth_r) / 2.0
    return LandmarkMeasures(
        outside=beyond / max(x2 - x1, y2 - y1, 1e-6),
        eye_share=eye_dist / max(x2 - x1, 1e-6),
        nose_drop=float((nose - eyes_mid) @ down) / eye_dist,
        mouth_drop=float((mouth_mid - nose) @ down) / eye_dist,
        nose_offset=abs(float((nose - eyes_mid) @ along)) / eye_dist,
        mouth_width=float(np.hypot(*(mouth_r - mouth_l))) / eye_dist,
    )


def _geometry_problem(det: Detection, q: QualitySettings) -> tuple[str, str] | None:
    """(check, reason) when the five landmarks cannot belong to a face in this box, else None."""
    m = landmark_measures(det)
    if m is None:
        return "landmarks", "not a face: the detector gave no usable landmarks"
    if m.outside > q.landmark_margin:
        return "landmarks", "not a face: landmarks outside the box"
    lo, hi = q.eye_distance
    if not lo <= m.eye_share <= hi:
        return (
            "eye_distance",
            f"not a face: eyes {m.eye_share:.2f} of the box width apart (a face: "
            f"{lo:.2f}-{hi:.2f})",
        )
    if m.nose_drop < q.min_feature_drop or m.mouth_drop < q.min_feature_drop:
        return "feature_order", "not a face: eyes, nose and mouth are not above one another"
    if m.nose_offset > q.max_nose_offset:
        return (
            "symmetry",
            f"not a face: the nose lies {m.nose_offset:.1f} eye distances to one side of the eyes",
        )
    if not q.mouth_width[0] <= m.mouth_width <= q.mouth_width[1]:
        return (
            "symmetry",
            f"not a face: a mouth {m.mouth_width:.1f} times as wide as the eyes are apart",
        )
    return None


def _width(det: Detection) -> float:
    return det.box_xyxy[2] - det.box_xyxy[0]


def _on_a_body(det: Detection, faces: Sequence[Detection], q: QualitySettings) -> bool:
    """Whether ``det``'s centre lies in the torso region of a wider face (see QualitySettings)."""
    x1, y1, x2, y2 = det.box_xyxy
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    for face in faces:
        fx1, fy1, fx2, fy2 = face.box_xyxy
        width, height = fx2 - fx1, fy2 - fy1
        if face is det or width <= x2 - x1:
            continue
        if abs(cx - (fx1 + fx2) / 2.0) <= q.body_half_width * width and (
            fy2 <= cy <= fy2 + q.body_depth * height
        ):
            return True
    return False


def quality_gate(
    detections: Sequence[Detection], frame_hw: tuple[int, int], q: QualitySettings
) -> tuple[list[Detection], list[Rejection]]:
    """Split one frame's detections into those that look like faces and rejections with reasons.

    Checks run in order and the first failure is the reason: confidence, landmark geometry, width
    in pixels, width in the frame; then, against the detections that passed those (so a non-face
    cannot reject a face), lying on another person's body, and width beside the frame's main face
    (the widest remaining detection). Accepted detections keep their order.
    """
    rejected: dict[int, Rejection] = {}
    short_side = float(min(frame_hw))
    for i, det in enumerate(detections):
        problem = None
        if det.confidence < q.min_confidence:
            problem = (
                "confidence",
                f"low detector confidence ({det.confidence:.2f}; at least "
                f"{q.min_confidence:.2f} needed)",
            )
        elif (geo := _geometry_problem(det, q)) is not None:
            problem = geo
        elif _width(det) < q.min_side_px:
            problem = (
                "size",
                f"too small: {_width(det):.0f} px wide (at least {q.min_side_px:.0f} px)",
            )
        elif _width(det) < q.min_frame_share * short_side:
            problem = (
                "frame_share",
                f"too small in the frame: {100 * _width(det) / short_side:.1f} % of its shorter side "
                f"(at least {100 * q.min_frame_share:.0f} %)",
            )
        if problem is not None:
            rejected[i] = Rejection(det, *problem)
    passed = [i for i in range(len(detections)) if i not in rejected]
    for i in passed:
        if _on_a_body(detections[i], [detections[j] for j in passed], q):
            rejected[i] = Rejection(
                detections[i],
                "body",
                "not a face: on the body of the person whose face is above it (a hand, "
                "clothing or jewellery)",
            )
    passed = [i for i in passed if i not in rejected]
    main = max((_width(detections[i]) for i in passed), default=0.0)
    for i in passed:
        share = _width(detections[i]) / main
        if share < q.min_main_face_share:
            rejected[i] = Rejection(
                detections[i],
                "main_face",
                f"too small beside the main face: {100 * share:.0f} % of its width "
                f"(at least {100 * q.min_main_face_share:.0f} %)",
            )
    accepted = [d for i, d in enumerate(detections) if i not in rejected]
    return accepted, [rejected[i] for i in sorted(rejected)]


# --- tracking -----------------------------------------------------------------------------------


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
            from scipy.optimize import linear_sum_assignment

            sim = np.array([t.prototype for t in open_tracks]) @ embeddings.T
            pos = np.array([[_link_cost(t.box, b) for b in boxes] for t in open_tracks])
            near = pos < 1.0
            allowed = (near & (sim >= s.min_similarity_near)) | (sim >= s.min_similarity_far)
            cost = (1.0 - sim) + s.position_weight * np.minimum(pos, 1.0)
            big = 1e6  # forbidden pairs: taken only where nothing else is left, then skipped
            rows, cols = linear_sum_assignment(np.where(allowed, cost, big))
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
