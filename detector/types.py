"""Frozen records that cross module boundaries. Names carry their units (``timestamp_s``, ``box_xyxy``).

The score convention is the same everywhere: ``p_fake`` in [0, 1], higher = more likely manipulated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from detector.audio.records import AudioAnalysis
    from detector.provenance.model import Provenance

Label = Literal["fake", "real", "uncertain"]
Order = Literal["aggregate_then_combine", "combine_then_aggregate"]


@dataclass(frozen=True)
class VideoInfo:
    """What probing the container told us, and how much of it we trust."""

    name: str
    sha256: str
    size_bytes: int
    container: str
    codec: str
    width: int
    height: int
    rotation_deg: int
    fps: float
    frame_count: int
    frame_count_source: Literal["container", "duration_x_fps", "decoded"]
    duration_s: float

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) after applying the rotation metadata."""
        if self.rotation_deg % 180:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True, eq=False)
class SampledFrame:
    """One decoded, upright RGB frame and where it came from.

    ``next_image`` is the frame that follows it in the stream, when asked for (optical flow for
    the two-stream members) and when there is one.
    """

    index: int
    timestamp_s: float
    image: np.ndarray  # H x W x 3 uint8 RGB
    next_image: np.ndarray | None = None


@dataclass(frozen=True)
class DecodeGap:
    """A stretch of the stream that could not be decoded; the rest was still analysed."""

    after_timestamp_s: float
    message: str


@dataclass(frozen=True)
class PackedImage:
    """An RGB uint8 image held PNG-compressed: lossless (:meth:`pixels` gives back the same
    array), in about a third of the memory for face crops of real video (measured on 55
    cross-dataset crops: 0.37 of the raw size; 5 ms to pack, 3 ms to unpack on the 2-core CPU)."""

    png: bytes

    @classmethod
    def of(cls, image: np.ndarray) -> PackedImage:
        import cv2

        ok, buf = cv2.imencode(
            ".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 H x W x 3 array
            raise ValueError(f"could not pack an image of shape {image.shape}")
        return cls(buf.tobytes())

    def pixels(self) -> np.ndarray:
        import cv2

        # OpenCV takes the array as BGR when packing and gives it back so: the same array
        return cv2.imdecode(np.frombuffer(self.png, np.uint8), cv2.IMREAD_UNCHANGED)


@dataclass(frozen=True, eq=False)
class Face:
    """A face found in a sampled frame, with its crop (square, ``crop_size`` px, RGB uint8).

    ``stored_crop`` is the crop as it is held: the array itself, or packed (lossless) when the
    collector keeps many (a long video's faces, :data:`detector.faces.collect.RAW_CROPS`);
    :attr:`crop` gives the pixels either way.
    """

    face_id: int
    frame_index: int
    timestamp_s: float
    box_xyxy: tuple[float, float, float, float]
    confidence: float
    landmarks_xy: tuple[tuple[float, float], ...]
    stored_crop: np.ndarray | PackedImage
    track_id: int = -1
    next_crop: np.ndarray | None = None  # same box in the following frame (two-stream members)

    @property
    def crop(self) -> np.ndarray:
        """The crop's pixels (unpacked on each read when it is held packed)."""
        s = self.stored_crop
        return s.pixels() if isinstance(s, PackedImage) else s


class CropsOf(Sequence[np.ndarray]):
    """The crops of ``faces`` as a sequence, each unpacked only when it is read: scoring stacks
    a chunk at a time, so a long video's crops are never all unpacked at once."""

    def __init__(self, faces: Sequence[Face]) -> None:
        self._faces = faces

    def __len__(self) -> int:
        return len(self._faces)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [f.crop for f in self._faces[i]]
        return self._faces[i].crop


@dataclass(frozen=True)
class RejectedDetection:
    """A box the face detector reported that did not pass the quality gate: never scored.

    ``check`` names the failed check (``confidence``, ``landmarks``, ``eye_distance``,
    ``feature_order``, ``symmetry``, ``size``, ``frame_share``, ``body``, ``main_face``);
    ``reason`` says the same in plain words, with the measured value and the limit.
    """

    frame_index: int
    timestamp_s: float
    box_xyxy: tuple[float, float, float, float]
    confidence: float
    reason: str
    check: str


@dataclass(frozen=True)
class FrameRecord:
    """A sampled frame: which faces it holds (by id). ``face_ids == ()`` means no face found.

    ``preview_jpeg`` is a small JPEG of the whole frame (longest side at most 640 px) so the app
    and the report can show where each face was; ``preview_scale`` maps frame pixels (the
    coordinates of ``Face.box_xyxy``) to preview pixels. Empty when no preview was made.
    """

    index: int
    timestamp_s: float
    face_ids: tuple[int, ...]
    preview_jpeg: bytes = field(default=b"", repr=False)
    preview_scale: float = 1.0


@dataclass(frozen=True)
class Track:
    """One person followed across sampled frames."""

    track_id: int
    face_ids: tuple[int, ...]
    frame_indices: tuple[int, ...]


def normalised_weights(weights: Mapping[str, float], decimals: int = 6) -> dict[str, float]:
    """The models with a positive weight, their weights summing to 1, rounded (for comparing
    two weightings and for showing one)."""
    total = sum(v for v in weights.values() if v > 0) or 1.0
    return {k: round(v / total, decimals) for k, v in weights.items() if v > 0}


@dataclass(frozen=True)
class Calibration:
    """How the shipped default's threshold was set from real footage (``weights/ensemble.json``).

    Attributes:
        real_scores: the video scores of the real calibration videos, sorted (on the fp32
            path); a new score is placed against them ("higher than 97 % of the real videos
            ...") or against its own path's (``paths[p]["real_video_scores"]``).
        pool: in words, which real videos they are.
        weights, aggregation, order: the scoring the scores were computed with; the placement
            holds only for the same scoring.
        target_false_alarm: the share of real videos allowed at or above the threshold.
        rates: measured rates at the threshold (reals flagged, fakes flagged per set, ...).
        paths: per precision path ("fp32"; "bf16cpu": as a CPU with AVX-512 BF16 and no AMX
            runs the members; "bf16amx": as one with AMX does), what it is, the precision of
            each member, (flagged, of n) per set at the threshold (the higher of the paths' own
            thresholds) and the real videos' scores; a path the calibration could not measure
            holds only ``not_measured``, why.
    """

    real_scores: tuple[float, ...]
    pool: str
    weights: dict[str, float]
    aggregation: str
    order: str
    target_false_alarm: float
    rates: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    def applies_to(self, weights: dict[str, float], aggregation: str, order: str) -> bool:
        """Whether scores computed with these settings are on the calibrated scale."""
        if aggregation != self.aggregation or order != self.order:
            return False
        return normalised_weights(weights) == normalised_weights(self.weights)

    def path_for(self, precisions: Mapping[str, str]) -> str | None:
        """The precision path (a key of :attr:`paths`) on which the calibrated members run in
        ``precisions`` (model -> "fp32" / "bf16" / "bf16 (AMX)", as an analysis records them);
        None for a mix no path measured (a GPU, emulated or forced bf16) or none recorded."""
        members = normalised_weights(self.weights)
        for name, p in self.paths.items():
            want = p.get("precisions") or {}
            if want and all(precisions.get(m) == want.get(m) for m in members):
                return name
        return None

    def path_reals(self, path: str | None) -> tuple[float, ...] | None:
        """The real videos' scores on precision ``path``: its own where recorded, the fp32
        path's in :attr:`real_scores`, all of them when the calibration has no paths (one set
        of scores); None where they are not known (no such path, or not recorded for it)."""
        if not self.paths:
            return self.real_scores
        own = self.paths.get(path, {}).get("real_video_scores") if path else None
        if own:
            return tuple(own)
        return self.real_scores if path == "fp32" else None

    def real_percentile(self, score: float, path: str | None = None) -> float:
        """Share of the real calibration videos scoring strictly below ``score``, on precision
        ``path`` (:meth:`path_reals`); NaN where those scores are not known."""
        reals = self.path_reals(path)
        if not reals:
            return float("nan")
        return sum(s < score for s in reals) / len(reals)


@dataclass(frozen=True)
class ScoringSettings:
    """Everything that turns raw per-model scores into a verdict. Changing it needs no inference.

    Attributes:
        weights: model name -> weight (normalised to sum 1 when used).
        aggregation: name of the frame -> track reducer in ``detector.verdict.aggregate.AGGREGATORS``.
        order: "aggregate_then_combine" (the core paper's: reduce each model over frames, then
            weight the models) or "combine_then_aggregate" (weight the models per face, then reduce).
        threshold: manipulation score at or above which a person (and so the video) is flagged
            "Manipulation likely". The shipped default is calibrated on real footage.
        inconclusive_band: scores in ``[threshold - band, threshold)`` are "Inconclusive": higher
            than most real footage, below the alarm line.
        min_track_share: people seen in fewer than this share of the frames with faces are
            "brief": listed, but they decide only with strong evidence (:attr:`brief_level`).
        exclusions: person (track id) -> the analyst's reason ("not a face", "not relevant"):
            listed, never scored into the verdict; recorded in the report.
        calibration: how the default threshold was calibrated (None for settings without one).
    """

    weights: dict[str, float]
    aggregation: str = "mean"
    order: Order = "aggregate_then_combine"
    threshold: float = 0.5
    inconclusive_band: float = 0.1
    min_track_share: float = 0.2
    exclusions: dict[int, str] = field(default_factory=dict)
    calibration: Calibration | None = None

    @property
    def brief_level(self) -> float:
        """The score a brief person needs to decide: halfway from the threshold to 1."""
        return self.threshold + (1.0 - self.threshold) / 2.0


@dataclass(frozen=True)
class TrackScore:
    """A person's aggregated scores: one per model and the ensemble's.

    ``decisive``: the person could decide the verdict (not excluded; seen often enough, or
    brief with a score of at least the brief level). ``brief``: seen in fewer than
    ``min_track_share`` of the frames with faces.
    """

    track_id: int
    n_faces: int
    first_timestamp_s: float
    last_timestamp_s: float
    per_model: dict[str, float]
    p_fake: float
    decisive: bool
    n_frames: int = 0
    brief: bool = False
    excluded: bool = False
    exclusion_reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """The answer for the video, and the settings and evidence that produced it.

    ``label``: "fake" (shown as "Manipulation likely"), "uncertain" ("Inconclusive") or "real"
    ("No manipulation found by these models"; never a bare "real"). ``real_percentile``: share
    of the real calibration videos that scored below this score, when the scoring is the
    calibrated one and the members ran in the precisions of a calibrated path (else None);
    ``placed_on``: that path ("fp32", "bf16cpu", "bf16amx"; "" when the calibration records no
    paths or the score was not placed); ``placement_note``: why a score on the calibrated
    scoring was not placed, in words. ``rule``: in words, who decides and why.
    """

    label: Label
    p_fake: float
    threshold: float
    deciding_track_id: int
    per_model: dict[str, float]
    tracks: tuple[TrackScore, ...]
    settings: ScoringSettings
    explanation: str = ""
    model_agreement: dict[str, Label] = field(default_factory=dict)
    real_percentile: float | None = None
    calibrated: bool = False
    rule: str = ""
    placed_on: str = ""
    placement_note: str = ""


@dataclass(frozen=True, eq=False)
class ScoreTable:
    """Raw per-model ``p_fake`` for every face: the only thing re-weighting needs.

    Row ``i`` is face ``face_ids[i]`` of track ``track_ids[i]`` at ``timestamps_s[i]``;
    column ``j`` is model ``models[j]``. Track-level models (temporal) give the same value to every
    face of the track they scored.
    """

    models: tuple[str, ...]
    face_ids: np.ndarray
    track_ids: np.ndarray
    frame_indices: np.ndarray
    timestamps_s: np.ndarray
    p_fake: np.ndarray
    precisions: dict[str, str] = field(default_factory=dict)  # model -> the precision it ran in

    def column(self, model: str) -> np.ndarray:
        return self.p_fake[:, self.models.index(model)]


@dataclass(frozen=True, eq=False)
class Analysis:
    """Everything one analysis produced. ``status != "ok"`` means there is no verdict, and says why.

    ``status`` is one of "ok", "no_faces", "unreadable", "no_video_stream", "unsupported_codec",
    "too_short", "too_large", "timeout", "bad_settings", "weights_missing", "weights_tampered".
    ``rejected`` lists the detections that did not look like faces (or were too small) and so
    were never scored; ``faces`` holds only those that passed. ``provenance`` is the file's
    content credentials, metadata and findings (:mod:`detector.provenance`): evidence beside the
    faces that never changes the verdict; None when the step was not run. ``audio`` is the voice,
    judged apart from the faces (:mod:`detector.audio`): its own status, scored speech windows and
    verdict; None when the voice was not asked for.
    """

    status: str
    message: str
    video: VideoInfo | None
    sampling: str
    frames: tuple[FrameRecord, ...] = ()
    faces: tuple[Face, ...] = ()
    tracks: tuple[Track, ...] = ()
    scores: ScoreTable | None = None
    verdict: Verdict | None = None
    models: tuple = ()
    gaps: tuple[DecodeGap, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    rejected: tuple[RejectedDetection, ...] = ()
    provenance: Provenance | None = None
    audio: AudioAnalysis | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def face(self, face_id: int) -> Face:
        return self.faces[face_id]


@dataclass(frozen=True)
class Detection:
    """A face box in full-frame pixel coordinates."""

    box_xyxy: tuple[float, float, float, float]
    confidence: float
    landmarks_xy: tuple[tuple[float, float], ...]


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one RGB uint8 frame."""

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """The faces of each of several frames (detected together where that is faster)."""
