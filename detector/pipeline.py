"""Video file -> sampled frames -> faces and tracks -> per-model scores -> verdict.

The shape is the DFDC winner's inference path (read sampled frames, detect faces on downscaled
frames, batch all crops once, run every model, aggregate with a pluggable strategy) without its
failure mode: problems with the input end as a typed, worded ``Analysis.status``, never a score.
Frames are streamed: only the face crops are kept, so memory does not grow with the video's size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from detector.aggregate import compute_verdict
from detector.ensemble import Ensemble
from detector.errors import DetectorError, NoFacesFoundError, VideoTooShortError
from detector.faces import FaceDetector, FaceSettings, FaceTracker, MTCNNDetector, square_crop
from detector.paths import WEIGHTS_DIR
from detector.sandbox import DecodeLimits, InProcessDecoder, IsolatedDecoder
from detector.types import (
    Analysis,
    DecodeGap,
    Face,
    FrameRecord,
    SampledFrame,
    ScoreTable,
    ScoringSettings,
    Track,
)
from detector.video import parse_sampling

Progress = Callable[[str, float, str], None]
"""``progress(stage, fraction_done, message)``; stages: "probe", "faces", "scoring", "done"."""


def default_scoring(weights_dir: Path | None = None) -> ScoringSettings:
    """The shipped default ensemble and aggregation, from ``weights/ensemble.json``."""
    conf = json.loads(((weights_dir or WEIGHTS_DIR) / "ensemble.json").read_text("utf-8"))
    return ScoringSettings(
        weights=dict(conf["members"]),
        aggregation=conf.get("aggregation", "mean"),
        order=conf.get("order", "aggregate_then_combine"),
        threshold=float(conf.get("threshold", 0.5)),
    )


def default_models(weights_dir: Path | None = None) -> tuple[str, ...]:
    return tuple(default_scoring(weights_dir).weights)


@dataclass(frozen=True)
class ExtractionSettings:
    """What decides which faces are scored by which models (changing it means new inference).

    Attributes:
        sampling: "1fps" (default, paper 000), "even:N", "first:N" or "all".
        min_duration_s: shorter videos are "too_short" (a single frame is a still, not a video).
        max_samples: cap on sampled frames for very long videos; the cap is reported in notes.
        track_max_gap: sampled frames a person may be missed in and keep their track.
        isolate_decoding: decode in a separate, memory-capped process with time limits (untrusted
            files); False decodes in-process (trusted files, benchmarks of the decoder itself).
        limits: the decoder's time and memory limits.
    """

    sampling: str = "1fps"
    faces: FaceSettings = field(default_factory=FaceSettings)
    min_duration_s: float = 0.5
    max_samples: int = 3600
    track_max_gap: int = 2
    isolate_decoding: bool = True
    limits: DecodeLimits = field(default_factory=DecodeLimits)


class Analyzer:
    """Holds the face detector and the loaded ensemble; ``analyze`` runs one video.

    Build once and reuse (the app caches one per model selection). Analyses share nothing mutable,
    so one analyzer can serve several threads.
    """

    def __init__(
        self,
        models: Sequence[str] | None = None,
        *,
        device: str = "auto",
        weights_dir: Path | None = None,
        face_settings: FaceSettings | None = None,
        detector: FaceDetector | None = None,
        ensemble: Ensemble | None = None,
    ) -> None:
        self.weights_dir = weights_dir
        names = tuple(models) if models else default_models(weights_dir)
        self.ensemble = ensemble or Ensemble(names, device=device, weights_dir=weights_dir)
        self.face_settings = face_settings or FaceSettings()
        self.detector = detector or MTCNNDetector(
            self.face_settings, device=str(self.ensemble.device)
        )

    def analyze(
        self,
        path: Path,
        settings: ExtractionSettings | None = None,
        scoring: ScoringSettings | None = None,
        progress: Progress | None = None,
        name: str | None = None,
    ) -> Analysis:
        """Analyse one video file. Input problems come back as a non-ok status, not an exception.

        ``name`` is how the file is called in messages and reports (an upload's original name);
        it is never used as a path.
        """
        settings = settings or ExtractionSettings(faces=self.face_settings)
        report = progress or (lambda stage, frac, msg: None)
        path = Path(path)
        timings: dict[str, float] = {}
        info = None
        frames, faces, gaps, notes = (), (), (), ()
        try:
            plan = parse_sampling(settings.sampling)
            scoring = scoring or self._default_scoring()
            t0 = time.perf_counter()
            report("probe", 0.0, "Reading the file")
            decoder_cls = IsolatedDecoder if settings.isolate_decoding else InProcessDecoder
            with decoder_cls(
                path, name or path.name, plan, settings.max_samples, settings.limits
            ) as decoder:
                info = decoder.info
                timings["probe_s"] = time.perf_counter() - t0
                if info.duration_s and info.duration_s < settings.min_duration_s:
                    raise VideoTooShortError(
                        f"{info.name}: the video lasts {info.duration_s:.2f} s; at least "
                        f"{settings.min_duration_s:.1f} s is needed to judge a video"
                    )
                frames, faces, gaps, notes = self._extract(
                    decoder, info, plan, settings, report, timings
                )
            if not frames:
                raise VideoTooShortError(f"{info.name}: no frame could be sampled from the video")
            if len(frames) < 2 and not info.duration_s and plan.kind != "first":
                raise VideoTooShortError(
                    f"{info.name}: only one frame could be decoded; a single frame is a still "
                    "image, not a video"
                )
            if not faces:
                raise NoFacesFoundError(
                    f"{info.name}: no face was found in any of the {len(frames)} sampled frames, "
                    "so there is nothing to judge"
                )
            report(
                "scoring", 0.0, f"Scoring {len(faces)} faces with {len(self.ensemble.names)} models"
            )
            t0 = time.perf_counter()
            p = self.ensemble.score(np.stack([f.crop for f in faces]))
            timings["scoring_s"] = time.perf_counter() - t0
            table = ScoreTable(
                models=self.ensemble.names,
                face_ids=np.array([f.face_id for f in faces]),
                track_ids=np.array([f.track_id for f in faces]),
                frame_indices=np.array([f.frame_index for f in faces]),
                timestamps_s=np.array([f.timestamp_s for f in faces]),
                p_fake=p,
            )
            t0 = time.perf_counter()
            verdict = compute_verdict(table, self._fit_scoring(scoring))
            timings["aggregate_s"] = time.perf_counter() - t0
            report("done", 1.0, "Done")
            return Analysis(
                status="ok",
                message=verdict.explanation,
                video=info,
                sampling=plan.spec,
                frames=frames,
                faces=faces,
                tracks=_tracks(faces),
                scores=table,
                verdict=verdict,
                models=tuple(m.card for m in self.ensemble.members.values()),
                gaps=gaps,
                timings_s=timings,
                notes=notes,
            )
        except DetectorError as exc:
            extra = {}
            if isinstance(exc, NoFacesFoundError):
                extra = {"frames": frames, "gaps": gaps, "notes": notes}
            return Analysis(
                status=exc.status,
                message=str(exc),
                video=info,
                sampling=settings.sampling,
                models=tuple(m.card for m in self.ensemble.members.values()),
                timings_s=timings,
                **extra,
            )

    def _default_scoring(self) -> ScoringSettings:
        """The shipped default scoring if it fits the loaded models, else equal weights."""
        base = default_scoring(self.weights_dir)
        if set(base.weights) == set(self.ensemble.names):
            return base
        return replace(base, weights={m: 1.0 for m in self.ensemble.names})

    def _fit_scoring(self, scoring: ScoringSettings) -> ScoringSettings:
        if set(scoring.weights) <= set(self.ensemble.names):
            return scoring
        return replace(scoring, weights={m: 1.0 for m in self.ensemble.names})

    def _extract(self, decoder, info, plan, settings, report, timings):
        tracker = FaceTracker(max_gap=settings.track_max_gap)
        frames: list[FrameRecord] = []
        faces: list[Face] = []
        gaps: list[DecodeGap] = []
        notes: list[str] = []
        expected = _expected_samples(plan, info, settings.max_samples)
        if plan.kind == "fps" and info.duration_s * plan.value > settings.max_samples:
            notes.append(
                f"{plan.spec} would need {int(info.duration_s * plan.value)} frames; "
                f"{settings.max_samples} were sampled evenly instead"
            )
        decode_s = detect_s = 0.0
        t_dec = time.perf_counter()
        fs = settings.faces
        for item in decoder:
            decode_s += time.perf_counter() - t_dec
            if isinstance(item, DecodeGap):
                gaps.append(item)
                t_dec = time.perf_counter()
                continue
            t_det = time.perf_counter()
            frames.append(self._faces_in(item, tracker, faces, fs))
            detect_s += time.perf_counter() - t_det
            report(
                "faces",
                min(1.0, len(frames) / max(expected, 1)),
                f"Frame {len(frames)} of ~{expected}: {len(faces)} faces so far",
            )
            t_dec = time.perf_counter()
        timings["decode_s"] = decode_s
        timings["faces_s"] = detect_s
        if gaps:
            notes.append(f"{len(gaps)} undecodable stretch(es) were skipped; the rest was analysed")
        return tuple(frames), tuple(faces), tuple(gaps), tuple(notes)

    def _faces_in(
        self, frame: SampledFrame, tracker: FaceTracker, faces: list[Face], fs: FaceSettings
    ) -> FrameRecord:
        found = self.detector.detect(frame.image)
        ids = tracker.update([d.box_xyxy for d in found])
        face_ids = []
        for det, tid in zip(found, ids, strict=True):
            face = Face(
                face_id=len(faces),
                frame_index=frame.index,
                timestamp_s=frame.timestamp_s,
                box_xyxy=det.box_xyxy,
                confidence=det.confidence,
                landmarks_xy=det.landmarks_xy,
                crop=square_crop(frame.image, det.box_xyxy, fs.crop_margin, fs.crop_size),
                track_id=tid,
            )
            faces.append(face)
            face_ids.append(face.face_id)
        return FrameRecord(frame.index, frame.timestamp_s, tuple(face_ids))


def _expected_samples(plan, info, max_samples: int) -> int:
    if plan.kind == "fps":
        return max(1, min(max_samples, int(info.duration_s * plan.value)))
    if plan.kind in ("even", "first"):
        return int(plan.value)
    return max(1, info.frame_count)


def _tracks(faces: Sequence[Face]) -> tuple[Track, ...]:
    by_id: dict[int, list[Face]] = {}
    for f in faces:
        by_id.setdefault(f.track_id, []).append(f)
    return tuple(
        Track(tid, tuple(f.face_id for f in fs), tuple(f.frame_index for f in fs))
        for tid, fs in sorted(by_id.items())
    )


def analyze_video(
    path: Path,
    models: Sequence[str] | None = None,
    *,
    sampling: str = "1fps",
    scoring: ScoringSettings | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> Analysis:
    """One-shot convenience: build an :class:`Analyzer` and analyse ``path``."""
    analyzer = Analyzer(models, device=device)
    return analyzer.analyze(path, ExtractionSettings(sampling=sampling), scoring, progress)
