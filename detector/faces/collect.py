"""The faces of a stream of sampled frames, each tied to a person.

Per frame: MTCNN's detections, the quality gate, the crops that will be scored. Frames wait for
detection in small groups (at most :data:`BATCH_FRAMES` and :data:`BATCH_FRAME_MB` of pixels),
which MTCNN runs through its networks together: its small pyramid scales cost about as much for
several frames as for one (measured on a 2-core Xeon: ten 720p frames one by one 0.50 s, in
fours 0.39 s, in eights 0.37 s; the same boxes to float rounding). The analysis detects the
frames that have come whenever the decoder has no other ready (:meth:`FaceCollector.flush`),
while the decoder, read ahead by a thread (:func:`read_ahead_depth` frames), decodes the next
ones. The identity embedding that links one person's faces (:mod:`detector.faces.identity`)
runs on several frames' faces at once: its network costs about the same for one face as for
ten on two cores (measured on a 2-core Xeon: ten faces one by one 0.50 s, in one batch 0.18 s),
so the faces of a few frames wait, then are embedded together and given to the tracker frame
by frame, in order: the tracker sees the same faces in the same order (their embeddings equal
to float rounding); only the number of network calls changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from detector.faces.crop import square_crop
from detector.faces.detect import FaceSettings
from detector.faces.identity import EMBEDDING_SIZE, identity_crops
from detector.faces.quality import quality_gate, rejected_record
from detector.faces.track import FaceTracker
from detector.reporting.visual import frame_preview
from detector.types import (
    Face,
    FaceDetector,
    FrameRecord,
    PackedImage,
    RejectedDetection,
    SampledFrame,
)

BATCH_FRAMES = 8
"""Frames that wait to be detected together (fewer when they are large: :data:`BATCH_FRAME_MB`)."""

BATCH_FRAME_MB = 12
"""Pixels the waiting frames may hold: four 720p frames, two 1080p, a single 4K frame. 23 MiB
(eight 720p frames) found a 10 s 720p clip's faces 0.04 s sooner (0.74 against 0.78 s with the
decoding, interleaved runs on a 2-core Xeon) and held the 10-minute 1080p clip 35 MiB higher
while decoding (``scripts.bench`` memory runs at 4d1b3e8 and 0f5bdb7: 1,308 against 1,273
MiB), which the float32 paths, at 1,480 of their 1,536 MiB, cannot spare."""

BATCH_FACES = 16
"""Faces that wait for one identity-embedding call (a few frames' worth; their crops are small)."""

RAW_CROPS = 64
"""Crops an analysis holds as arrays (64 x 320 x 320 x 3 bytes = 20 MB); the faces after them hold
theirs packed (PNG, lossless: :class:`detector.types.PackedImage`), about a third of the memory
for 5 ms each. A 10-minute 1080p clip's 600 crops took 184 MB raw; a short clip pays nothing."""


@dataclass
class _Waiting:
    boxes: list[tuple[float, float, float, float]]
    faces: list[Face]
    crops: list[np.ndarray]


@dataclass
class FaceCollector:
    """Collects the faces of frames given in order (:meth:`add`, then :meth:`flush` and
    :meth:`finish`).

    ``faces`` holds the faces whose people are known (provisional track ids, as
    :meth:`FaceTracker.update` gives them), in face-id order; ``rejected`` the detections the
    quality gate refused.
    """

    detector: FaceDetector
    embedder: object  # identity_crops' crops -> embeddings: FaceEmbedder.embed_crops
    tracker: FaceTracker
    settings: FaceSettings
    batch_faces: int = BATCH_FACES
    raw_crops: int = RAW_CROPS
    batch_frames: int = BATCH_FRAMES
    faces: list[Face] = field(default_factory=list)
    rejected: list[RejectedDetection] = field(default_factory=list)
    found: int = 0  # faces accepted so far (the next face id)
    _waiting: list[_Waiting] = field(default_factory=list)
    _frames: list[SampledFrame] = field(default_factory=list)

    def add(self, frame: SampledFrame) -> list[FrameRecord]:
        """Take one frame; the records (face ids, preview) of the frames detected by now, in
        order (none while the frame waits for others to be detected with)."""
        self._frames.append(frame)
        held = sum(_nbytes(f) for f in self._frames)
        if len(self._frames) >= self.batch_frames or held + _nbytes(frame) > BATCH_FRAME_MB << 20:
            return self.flush()
        return []

    def flush(self) -> list[FrameRecord]:
        """Detect the frames still waiting; their records, in order."""
        frames, self._frames = self._frames, []
        if not frames:
            return []
        found = self.detector.detect_many([f.image for f in frames])
        return [self._collect(f, d) for f, d in zip(frames, found, strict=True)]

    def _collect(self, frame: SampledFrame, detections) -> FrameRecord:
        fs = self.settings
        accepted, refused = quality_gate(detections, frame.image.shape[:2], fs.quality)
        self.rejected.extend(rejected_record(frame, r) for r in refused)
        boxes = [d.box_xyxy for d in accepted]
        same_size = frame.next_image is not None and frame.next_image.shape == frame.image.shape
        faces = []
        for det in accepted:
            faces.append(
                Face(
                    face_id=self.found,
                    frame_index=frame.index,
                    timestamp_s=frame.timestamp_s,
                    box_xyxy=det.box_xyxy,
                    confidence=det.confidence,
                    landmarks_xy=det.landmarks_xy,
                    stored_crop=self._held(
                        square_crop(frame.image, det.box_xyxy, fs.crop_margin, fs.crop_size)
                    ),
                    next_crop=square_crop(
                        frame.next_image, det.box_xyxy, fs.crop_margin, fs.crop_size
                    )
                    if same_size
                    else None,
                )
            )
            self.found += 1
        self._waiting.append(_Waiting(boxes, faces, identity_crops(frame.image, boxes)))
        if sum(len(w.faces) for w in self._waiting) >= self.batch_faces:
            self._embed_waiting()
        preview, scale = frame_preview(frame.image)
        return FrameRecord(
            frame.index, frame.timestamp_s, tuple(f.face_id for f in faces), preview, scale
        )

    def _held(self, crop: np.ndarray) -> np.ndarray | PackedImage:
        return crop if self.found < self.raw_crops else PackedImage.of(crop)

    def finish(self) -> dict[int, int]:
        """Track the faces still waiting, then join one person's tracks across cuts:
        provisional track id -> final (:meth:`FaceTracker.finish`). Frames still waiting for
        detection are an error: their records come from :meth:`flush`."""
        if self._frames:
            raise RuntimeError("FaceCollector.finish() with frames not yet detected: flush() first")
        self._embed_waiting()
        return self.tracker.finish()

    def _embed_waiting(self) -> None:
        crops = [c for w in self._waiting for c in w.crops]
        embeddings = (
            self.embedder.embed_crops(crops) if crops else np.zeros((0, EMBEDDING_SIZE), np.float32)
        )
        start = 0
        for w in self._waiting:  # the tracker sees the frames in order, as they came
            ids = self.tracker.update(w.boxes, embeddings[start : start + len(w.boxes)])
            start += len(w.boxes)
            self.faces.extend(replace(f, track_id=t) for f, t in zip(w.faces, ids, strict=True))
        self._waiting = []


def _nbytes(frame: SampledFrame) -> int:
    return frame.image.nbytes + (frame.next_image.nbytes if frame.next_image is not None else 0)


def read_ahead_depth(info) -> int:
    """Frames the decoder may run ahead of detection (:class:`detector.threads.ReadAhead`): up
    to :data:`BATCH_FRAMES`, and no more than :data:`BATCH_FRAME_MB` of pixels of this video."""
    frame = max(1, int(info.width) * int(info.height) * 3)
    return max(1, min(BATCH_FRAMES, (BATCH_FRAME_MB << 20) // frame))
