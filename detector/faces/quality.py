"""MTCNN (Zhang et al. 2016, via facenet-pytorch, whose wheel ships the P/R/O-net weights) runs on a
downscaled copy of the frame, as in the DFDC winner's pipeline; boxes are mapped back and crops are
cut from the full-resolution frame. All faces above a confidence are candidates, not just the
largest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.types import Detection, RejectedDetection, SampledFrame


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


def rejected_record(frame: SampledFrame, r: Rejection) -> RejectedDetection:
    d = r.detection
    return RejectedDetection(
        frame.index, frame.timestamp_s, d.box_xyxy, d.confidence, r.reason, r.check
    )


def rejection_summary(rejected: Sequence[RejectedDetection]) -> str:
    """Counts per kind of rejection, most frequent first (e.g. "3 low detector confidence")."""
    counts: dict[str, int] = {}
    for r in rejected:
        words = REJECTION_KINDS[r.check]
        counts[words] = counts.get(words, 0) + 1
    return ", ".join(f"{n} {w}" for w, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def no_faces_message(name: str, n_frames: int, rejected: Sequence[RejectedDetection]) -> str:
    if not rejected:
        return (
            f"{name}: no face was found in any of the {n_frames} sampled frames, so there is "
            "nothing to judge"
        )
    return (
        f"{name}: {len(rejected)} detection(s) were found in the {n_frames} sampled frames but "
        f"none looked like a face that can be judged ({rejection_summary(rejected)}), so there "
        "is nothing to judge"
    )
