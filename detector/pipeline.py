"""Video file -> sampled frames -> faces and tracks -> per-model scores -> verdict.

The shape is the DFDC winner's inference path (read sampled frames, detect faces on downscaled
frames, batch all crops once, run every model, aggregate with a pluggable strategy) without its
failure mode: problems with the input end as a typed, worded ``Analysis.status``, never a score.
Frames are streamed: only the face crops are kept, so memory does not grow with the video's size.
Untrusted files are decoded in a separate, memory-capped process with time limits
(:mod:`detector.io.isolated.decoder`); the name a file is shown under is cleaned for display and never used as
a path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.audio.decode import AudioLimits
from detector.errors import (
    BadSettingsError,
    DetectorError,
    NoFacesFoundError,
    NoVideoStreamError,
    VideoTooShortError,
)
from detector.faces.collect import FaceCollector, read_ahead_depth
from detector.faces.detect import FaceSettings, MTCNNDetector
from detector.faces.quality import no_faces_message, rejection_summary
from detector.faces.track import FaceTracker, tracks_of
from detector.io.isolated.decoder import DecodeLimits, InProcessDecoder, IsolatedDecoder
from detector.io.probe import (
    MAX_SAMPLES,
    check_real_length,
    expected_samples,
    parse_sampling,
    sampling_cap_note,
)
from detector.io.uploads import display_name
from detector.provenance.model import Provenance, TrustAnchors
from detector.provenance.read import inspect_file
from detector.settings import weights_dir as default_weights_dir
from detector.threads import CoreWorkers, InThread, ReadAhead, cpu_workers
from detector.types import (
    Analysis,
    CropsOf,
    DecodeGap,
    Face,
    FaceDetector,
    FrameRecord,
    ScoreTable,
    ScoringSettings,
)
from detector.verdict.scoring import default_models, resolve_scoring
from detector.verdict.verdict import compute_verdict

if TYPE_CHECKING:
    from detector.audio.records import AudioAnalysis, AudioTrack
    from detector.audio.score import VoiceMember
    from detector.faces.identity import FaceEmbedder
    from detector.scoring.ensemble import Ensemble

log = logging.getLogger(__name__)

MAX_GAPS = 100  # decode gaps kept in an analysis (a badly damaged file can have thousands)

Progress = Callable[[str, float, str], None]
"""``progress(stage, fraction_done, message)``; stages: "probe", "faces", "scoring", "done"."""


@dataclass(frozen=True)
class ExtractionSettings:
    """What decides which faces are scored by which models (changing it means new inference).

    Attributes:
        sampling: "1fps" (default, paper 000), "even:N", "first:N" or "all".
        min_duration_s: shorter videos are "too_short" (a single frame is a still, not a video).
        faces: detection, quality gate, cropping and tracking.
        max_samples: cap on sampled frames for very long videos (600: ten minutes at 1 fps); longer
            videos are sampled evenly and the notes say so.
        isolate_decoding: decode in a separate, memory-capped process with time limits (untrusted
            files); False decodes in-process (trusted files, benchmarks of the decoder itself).
        limits: the decoder's time and memory limits (the provenance reader runs under them too).
        provenance: also read the file's content credentials and container metadata
            (:mod:`detector.provenance`; evidence beside the faces, never part of the score).
        trust_anchors: the CA certificates whose signers count as trusted for content
            credentials; None trusts nobody (the signer is then "unknown").
        voice: also judge the audio track's voice (:mod:`detector.audio`), apart from the
            faces; ``audio`` bounds its decoding.
    """

    sampling: str = "1fps"
    faces: FaceSettings = field(default_factory=FaceSettings)
    min_duration_s: float = 0.5
    max_samples: int = MAX_SAMPLES
    isolate_decoding: bool = True
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    provenance: bool = True
    trust_anchors: TrustAnchors | None = None
    voice: bool = True
    audio: AudioLimits = field(default_factory=AudioLimits)


class Analyzer:
    """Holds the face detector, the face-identity embedder and the ensemble; ``analyze`` runs one
    video.

    Build once and reuse (the app caches one per model selection). Analyses share nothing mutable,
    so one analyzer can serve several threads. The constructor only stores its settings: the face
    detector, the embedder and the models are loaded (weights checked against their manifests) the
    first time an analysis needs them, so a file that cannot be read is refused without loading
    any network. ``spare_children=True`` (long-lived callers: the app, ``scan``) starts the next
    file's decoder and metadata reader after :meth:`load` and after each analysis
    (:mod:`detector.io.isolated.spares`).
    """

    def __init__(
        self,
        models: Sequence[str] | None = None,
        *,
        device: str = "auto",
        weights_dir: Path | None = None,
        face_settings: FaceSettings | None = None,
        detector: FaceDetector | None = None,
        embedder: FaceEmbedder | None = None,
        ensemble: Ensemble | None = None,
        spare_children: bool = False,
    ) -> None:
        self.weights_dir = weights_dir or default_weights_dir()
        self.model_names = tuple(models) if models else default_models(self.weights_dir)
        self.device = device
        self.face_settings = face_settings or FaceSettings()
        self._detector = detector
        self._embedder = embedder
        self._face_workers: CoreWorkers | None = None  # the faces stage's, started on first use
        self._ensemble = ensemble
        self._voice: VoiceMember | None = None
        self._locks = {part: threading.Lock() for part in ("ensemble", "faces", "voice")}
        self.spare_children = spare_children

    @property
    def ensemble(self) -> Ensemble:
        """The models, loaded and verified on first use (raises the weights errors)."""
        with self._locks["ensemble"]:
            if self._ensemble is None:
                from detector.scoring.ensemble import Ensemble

                self._ensemble = Ensemble(
                    self.model_names, device=self.device, weights_dir=self.weights_dir
                )
            return self._ensemble

    @property
    def detector(self) -> FaceDetector:
        """The face detector, built on first use."""
        with self._locks["faces"]:
            if self._detector is None:
                from detector.scoring.device import resolve_device

                device = str(resolve_device(self.device))
                self._face_workers = self._face_workers or cpu_workers(device)
                self._detector = MTCNNDetector(self.face_settings, device, self._face_workers)
            return self._detector

    @property
    def embedder(self) -> FaceEmbedder:
        """The face-identity embedder that links a person's faces, loaded and verified on first
        use (raises the weights errors; it ships in ``weights/``)."""
        with self._locks["faces"]:
            if self._embedder is None:
                from detector.faces.identity import FaceEmbedder
                from detector.scoring.device import resolve_device

                device = str(resolve_device(self.device))
                self._face_workers = self._face_workers or cpu_workers(device)
                self._embedder = FaceEmbedder(self.weights_dir, device, workers=self._face_workers)
            return self._embedder

    @property
    def voice(self) -> VoiceMember:
        """The speech detector and the audio member, loaded and verified on first use."""
        with self._locks["voice"]:
            if self._voice is None:
                from detector.audio.score import VoiceMember

                self._voice = VoiceMember(weights_dir=self.weights_dir)
            return self._voice

    def _voice_part(self, track: AudioTrack | None, audio_only: bool = False) -> AudioAnalysis:
        """The audio part; its own failures end as its own status, never the faces'."""
        from detector.audio.score import not_analysed

        if track is None:
            return not_analysed("the audio was not read")
        try:
            return self.voice.analyze(track, audio_only=audio_only)
        except DetectorError as exc:
            return not_analysed(f"the voice member could not be loaded: {exc}")

    def load(self) -> Analyzer:
        """Load the face detector, the embedder and the models now rather than at the first
        analysis.

        For long-lived processes (the app loads once, behind a spinner). Raises the weights errors.
        The models load in a thread while the face networks load here, as in :meth:`analyze`
        (hence one lock per part).
        """
        loading = InThread(lambda: self.ensemble)
        _ = self.detector, self.embedder
        loading.result()
        if self.spare_children:
            self._prepare_spares()
        return self

    def _model_cards(self) -> tuple:
        """Cards of the models that were loaded (none when the analysis stopped before scoring)."""
        loaded = self._ensemble
        if loaded is None:
            return ()
        ran = loaded.precisions
        return tuple(replace(m.card, precision=ran[n]) for n, m in loaded.members.items())

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
        it is cleaned for display (no folders, no control characters) and never used as a path.
        """
        settings = settings or ExtractionSettings(faces=self.face_settings)
        report = progress or (lambda stage, frac, msg: None)
        path = Path(path)
        timings: dict[str, float] = {}
        info = None
        frames, faces, rejected, gaps, notes = (), (), (), (), ()
        provenance = reading = None
        audio = None
        decoder = None
        try:
            plan = parse_sampling(settings.sampling)
            scoring = scoring or resolve_scoring(self.model_names, weights_dir=self.weights_dir)
            label = display_name(name or path.name)
            if settings.provenance:  # read beside the frames (its own process); never raises
                report("probe", 0.0, "Reading the file's credentials and metadata")
                reading = InThread(lambda: self._timed_provenance(path, settings, label, timings))
            t0 = time.perf_counter()
            report("probe", 0.0, "Reading the file")
            decoder_cls = IsolatedDecoder if settings.isolate_decoding else InProcessDecoder
            from detector.models import needs_next_frames

            with_next = needs_next_frames(self.model_names)
            decoder = decoder_cls(
                path,
                label,
                plan,
                settings.max_samples,
                settings.limits,
                with_next,
                audio=settings.audio if settings.voice else None,
            )
            with decoder:
                info = decoder.info
                timings["probe_s"] = time.perf_counter() - t0
                if info.duration_s and info.duration_s < settings.min_duration_s:
                    raise VideoTooShortError(
                        f"{info.name}: the video lasts {info.duration_s:.2f} s; at least "
                        f"{settings.min_duration_s:.1f} s is needed to judge a video"
                    )
                # A video: the models load (verified) in a thread while the faces are found;
                # their errors are raised below, before any other refusal.
                report("probe", 0.5, f"Loading {len(self.model_names)} models")
                loading = InThread(lambda: self.ensemble)
                _ = self.embedder
                frames, faces, rejected, gaps, notes = self._extract(
                    decoder, info, plan, settings, report, timings
                )
                if settings.voice:
                    report("scoring", 0.0, "Judging the voice")
                    t0 = time.perf_counter()
                    audio = self._voice_part(decoder.read_audio())
                    timings["voice_s"] = time.perf_counter() - t0
                ensemble = loading.result()
            provenance = reading.result() if reading else None
            check_real_length(decoder.stats, info, settings.min_duration_s)
            if not frames:
                raise VideoTooShortError(f"{info.name}: no frame could be sampled from the video")
            if len(frames) < 2 and not info.duration_s and plan.kind != "first":
                raise VideoTooShortError(
                    f"{info.name}: only one frame could be decoded; a single frame is a still "
                    "image, not a video"
                )
            if not faces:
                raise NoFacesFoundError(no_faces_message(info.name, len(frames), rejected))
            report("scoring", 0.0, f"Scoring {len(faces)} faces with {len(ensemble.names)} models")
            t0 = time.perf_counter()
            p = ensemble.score(
                CropsOf(faces),
                np.array([f.track_id for f in faces]),
                [f.next_crop for f in faces] if with_next else None,
            )
            if with_next:
                if n := sum(f.next_crop is None for f in faces):
                    notes = (
                        *notes,
                        f"{n} of {len(faces)} faces had no following frame to compute motion "
                        "from (the last frame of the video, a frame that failed to decode, or "
                        "a change of frame size): the two-stream members saw no motion there",
                    )
                # the next-frame crops served the optical flow; do not keep them in the analysis
                faces = tuple(replace(f, next_crop=None) for f in faces)
            timings["scoring_s"] = time.perf_counter() - t0
            table = ScoreTable(
                models=ensemble.names,
                face_ids=np.array([f.face_id for f in faces]),
                track_ids=np.array([f.track_id for f in faces]),
                frame_indices=np.array([f.frame_index for f in faces]),
                timestamps_s=np.array([f.timestamp_s for f in faces]),
                p_fake=p,
                precisions=ensemble.precisions,
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
                tracks=tracks_of(faces),
                scores=table,
                verdict=verdict,
                models=self._model_cards(),
                gaps=gaps,
                timings_s=timings,
                notes=notes,
                rejected=rejected,
                provenance=provenance,
                audio=audio,
            )
        except DetectorError as exc:
            provenance = reading.result() if reading else None
            extra = {}
            if isinstance(exc, NoFacesFoundError):
                extra = {"frames": frames, "gaps": gaps, "notes": notes, "rejected": rejected}
            if settings.voice and audio is None:
                audio = self._audio_after_refusal(exc, decoder)
            return Analysis(
                status=exc.status,
                message=str(exc),
                video=info,
                sampling=settings.sampling,
                models=self._model_cards(),
                timings_s=timings,
                provenance=provenance,
                audio=audio,
                **extra,
            )
        finally:
            if self.spare_children and settings.isolate_decoding:
                self._prepare_spares(settings.provenance)

    def _prepare_spares(self, provenance: bool = True) -> None:
        """Start the next file's decoder (and metadata reader) now, while the CPU is free. A
        spare that cannot be started is logged and left to be started on demand, as without
        spares; it never changes the analysis that just ended."""
        from detector.io.isolated.decoder import prepare_spare
        from detector.provenance.read import prepare_spare as prepare_reader

        try:
            prepare_spare()
            if provenance:
                prepare_reader()
        except OSError as exc:
            log.warning("a spare child process could not be started: %s", exc)

    def _audio_after_refusal(self, exc: DetectorError, decoder) -> AudioAnalysis:
        """The audio part when the video side refused the file: an audio-only file is still
        judged as a voice (with a note); otherwise the audio was not reached."""
        from detector.audio.score import not_analysed

        if isinstance(exc, NoVideoStreamError) and decoder is not None:
            track = decoder.read_audio()
            if track is not None and track.status != "no_audio":
                return self._voice_part(track, audio_only=True)
        return not_analysed(f"the audio was not analysed: {exc}")

    def provenance(
        self, path: Path, settings: ExtractionSettings | None = None, name: str | None = None
    ) -> Provenance:
        """The file's content credentials, metadata and findings (no models needed)."""
        settings = settings or ExtractionSettings(faces=self.face_settings)
        return inspect_file(
            Path(path),
            display_name(name or Path(path).name),
            trust=settings.trust_anchors,
            limits=settings.limits,
            isolate=settings.isolate_decoding,
        )

    def _timed_provenance(self, path, settings, label, timings: dict) -> Provenance:
        t0 = time.perf_counter()
        found = self.provenance(path, settings, label)
        timings["provenance_s"] = time.perf_counter() - t0
        return found

    def extract_faces(
        self, path: Path, settings: ExtractionSettings | None = None, with_next: bool = False
    ) -> tuple[tuple[FrameRecord, ...], tuple[Face, ...]]:
        """Decode, detect, screen and track only (no models): the faces an analysis would score
        (rejected detections are left out).

        For building training data from videos exactly as the pipeline crops them. Raises the
        typed input errors instead of returning a status.
        """
        settings = settings or ExtractionSettings(faces=self.face_settings)
        plan = parse_sampling(settings.sampling)
        decoder_cls = IsolatedDecoder if settings.isolate_decoding else InProcessDecoder
        name = display_name(Path(path).name)
        with decoder_cls(
            Path(path), name, plan, settings.max_samples, settings.limits, with_next
        ) as decoder:
            frames, faces, _, _, _ = self._extract(
                decoder, decoder.info, plan, settings, lambda *a: None, {}
            )
        return frames, faces

    def _fit_scoring(self, scoring: ScoringSettings) -> ScoringSettings:
        """``scoring`` if it weighs only loaded members; a scoring naming others is refused."""
        unknown = sorted(set(scoring.weights) - set(self.model_names))
        if unknown:
            raise BadSettingsError(
                f"the scoring weighs models that are not loaded: {', '.join(unknown)} "
                f"(loaded: {', '.join(self.model_names)})"
            )
        return scoring

    def _extract(self, decoder, info, plan, settings, report, timings):
        faces = FaceCollector(
            self.detector, self.embedder, FaceTracker(settings.faces.tracking), settings.faces
        )
        frames: list[FrameRecord] = []
        gaps: list[DecodeGap] = []
        notes: list[str] = []
        expected = expected_samples(plan, info, settings.max_samples)
        if note := sampling_cap_note(plan, info, settings.max_samples):
            notes.append(note)
        decode_s = detect_s = 0.0
        t_dec = time.perf_counter()
        # the next frames decode while these are searched; the frames that have come are
        # searched together whenever the decoder has no other ready (see FaceCollector)
        frames_in = ReadAhead(decoder, depth=read_ahead_depth(info))
        for item in frames_in:
            decode_s += time.perf_counter() - t_dec
            if isinstance(item, DecodeGap):
                gaps.append(item)
                t_dec = time.perf_counter()
                continue
            t_det = time.perf_counter()
            done = faces.add(item) + ([] if frames_in.ready() else faces.flush())
            if done:
                frames.extend(done)
                report(
                    "faces",
                    min(1.0, len(frames) / max(expected, 1)),
                    f"Frame {len(frames)} of ~{expected}: {faces.found} faces so far",
                )
            detect_s += time.perf_counter() - t_det
            t_dec = time.perf_counter()
        t_det = time.perf_counter()
        frames.extend(faces.flush())
        person = faces.finish()  # one person's tracks across cuts become one
        found = [replace(f, track_id=person[f.track_id]) for f in faces.faces]
        timings["decode_s"] = decode_s
        timings["faces_s"] = detect_s + time.perf_counter() - t_det
        if gaps:
            shown = "; ".join(f"at {g.after_timestamp_s:.1f} s, {g.message}" for g in gaps[:3])
            more = f"; and {len(gaps) - 3} more" if len(gaps) > 3 else ""
            notes.append(f"{len(gaps)} decoding problem(s), the rest was analysed: {shown}{more}")
        rejected = faces.rejected
        if rejected and found:
            notes.append(
                f"{len(rejected)} detection(s) were not scored: {rejection_summary(rejected)}"
            )
        return tuple(frames), tuple(found), tuple(rejected), tuple(gaps[:MAX_GAPS]), tuple(notes)
