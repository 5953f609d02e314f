"""Speech windows -> per-window spoofing scores -> the voice's verdict, with its own threshold.

The audio track (decoded by :mod:`detector.audio.decode`) is searched for speech with Silero VAD
(:mod:`detector.audio.vad`); stretches of speech closer than ``merge_gap_s`` are joined, and each
stretch is cut into windows of the member's input length (AASIST: 64,600 samples, 4.04 s):
a stretch longer than one window gets evenly spaced, possibly overlapping full windows; a shorter
one is tiled to fill one window, as the model's authors do. No peak normalisation. Every window
is scored; the clip's voice score is a named reduction of the window scores, and the verdict uses
the member's own threshold, calibrated like the faces' on real recordings (at most about 5 %
flagged; ``scripts/voice_eval.py`` writes it into the member's manifest).

No audio, no speech and an unreadable track are statuses with a sentence, never a score; a
track that failed to decode never stops the face analysis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from detector import settings as paths
from detector.audio.records import AudioAnalysis, AudioTrack, VoiceSegment, VoiceVerdict
from detector.audio.vad import VadSettings, load_vad, speech_probabilities, speech_stretches
from detector.errors import UnknownModelError
from detector.models.registry import create_model, get_spec, list_models, model_card, read_manifest
from detector.models.spec import ModelSpec

REDUCTIONS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": lambda p: float(np.mean(p)),
    "median": lambda p: float(np.median(p)),
    "max": lambda p: float(np.max(p)),
}


DEFAULT_AUDIO_MODEL = "aasist"


@dataclass(frozen=True)
class VoiceSettings:
    """How the voice is judged (defaults are the shipped ones).

    Attributes:
        model: the audio member.
        vad: speech-detection rules.
        min_speech_s: less speech than this in the whole track is "no speech found".
        merge_gap_s: speech stretches closer than this are scored as one.
        max_windows: at most this many windows are scored (evenly chosen; the notes say so).
        threshold: overrides the calibrated threshold (marked uncalibrated) when set.
        precision: "auto" (bf16 autocast where the CPU has native bf16 and the member's
            manifest shows it holds: :func:`voice_bf16_holds`), "fp32" or "bf16".
    """

    model: str = DEFAULT_AUDIO_MODEL
    vad: VadSettings = field(default_factory=VadSettings)
    min_speech_s: float = 0.5
    merge_gap_s: float = 0.5
    max_windows: int = 150
    threshold: float | None = None
    precision: str = "auto"


def voice_bf16_holds(manifest: dict, tolerance: float = 0.005) -> bool:
    """Whether bf16 autocast was measured to keep the member's AUC on real vs each synthetic
    system within ``tolerance`` of float32 (``precision_check``, by ``scripts/voice_eval.py
    precision``). Not measured: no."""
    check = manifest.get("precision_check") or {}
    diffs = check.get("bf16_minus_fp32_auc")
    if not diffs or check.get("bf16_holds") is False:
        return False
    return all(abs(float(d)) <= tolerance for d in diffs.values())


def audio_spec(name: str) -> ModelSpec:
    """The registry's spec of an audio member (a face member's name is refused, in words)."""
    spec = get_spec(name)
    if spec.kind != "audio":
        raise UnknownModelError(
            f"{name!r} is a face member, not an audio one; audio members: "
            f"{', '.join(list_models(kinds=('audio',)))}"
        )
    return spec


@dataclass(frozen=True)
class VoiceCalibration:
    """The shipped threshold of an audio member (from its manifest's ``calibration``)."""

    threshold: float
    inconclusive_from: float
    reduction: str
    real_scores: tuple[float, ...]
    pool: str


def read_calibration(manifest: dict) -> VoiceCalibration | None:
    cal = manifest.get("calibration")
    if not cal:
        return None
    return VoiceCalibration(
        threshold=float(cal["threshold"]),
        inconclusive_from=float(cal["inconclusive_from"]),
        reduction=str(cal["reduction"]),
        real_scores=tuple(float(s) for s in cal.get("real_scores", ())),
        pool=str(cal.get("pool", "")),
    )


class VoiceMember:
    """The speech detector and one audio member, loaded once; ``analyze(track)`` judges a voice.

    Loading checks both weights files against their recorded sha256; analyses share nothing
    mutable, so one member can serve several threads.
    """

    def __init__(
        self, settings: VoiceSettings | None = None, weights_dir: Path | None = None
    ) -> None:
        self.settings = settings or VoiceSettings()
        self.spec = audio_spec(self.settings.model)
        wdir = weights_dir or paths.weights_dir()
        # channels-last 4-D activations: the same scores (to 1e-6), about 1.5x faster on the CPU
        self.model = create_model(self.spec.name, weights_dir=wdir).to(
            memory_format=torch.channels_last
        )
        self.vad = load_vad()
        self.manifest = read_manifest(self.spec.name, wdir)
        self.calibration = read_calibration(self.manifest)
        self.card = model_card(self.spec.name, wdir)
        self.precision = self._precision(self.settings.precision)

    def _precision(self, asked: str) -> str:
        from detector.scoring.device import native_bf16

        if asked not in ("auto", "fp32", "bf16"):
            raise ValueError(f"unknown precision {asked!r}: auto, fp32 or bf16")
        if asked == "auto":
            return "bf16" if native_bf16() and voice_bf16_holds(self.manifest) else "fp32"
        return asked

    @property
    def score_scale(self) -> float:
        """Margins are divided by this before the sigmoid (the manifest's ``score_scale``)."""
        return float(self.manifest.get("score_scale", 1.0))

    def margins(self, windows: np.ndarray) -> np.ndarray:
        """Spoof-minus-bona-fide logit per window, for windows (n, input_size samples) at 16 kHz."""
        out = []
        low = self.precision == "bf16"
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=low):
            for i in range(0, len(windows), self.spec.batch_size):
                batch = torch.from_numpy(
                    np.ascontiguousarray(windows[i : i + self.spec.batch_size])
                )
                out.append(self.model(batch).reshape(-1).double().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float64)

    def analyze(self, track: AudioTrack, *, audio_only: bool = False) -> AudioAnalysis:
        """The audio part of an analysis for one decoded track."""
        return analyze_track(track, self, audio_only=audio_only)


def plan_windows(
    stretches: list[tuple[int, int]], window: int, merge_gap: int
) -> list[tuple[int, int]]:
    """(start, end) sample ranges to score: stretches joined across short pauses, then cut into
    evenly spaced full windows (a stretch shorter than a window is one window, tiled later)."""
    merged: list[list[int]] = []
    for a, b in stretches:
        if merged and a - merged[-1][1] < merge_gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    plan: list[tuple[int, int]] = []
    for a, b in merged:
        length = b - a
        if length <= window:
            plan.append((a, b))
            continue
        n = math.ceil(length / window)
        starts = np.linspace(a, b - window, n).round().astype(int)
        plan.extend((int(s), int(s) + window) for s in starts)
    return plan


def window_batch(samples: np.ndarray, plan: list[tuple[int, int]], window: int) -> np.ndarray:
    """The windows' waveforms (n, window); short ones tiled (repeated) to the full length."""
    out = np.empty((len(plan), window), np.float32)
    for i, (a, b) in enumerate(plan):
        piece = samples[a:b]
        reps = -(-window // max(1, len(piece)))
        out[i] = np.tile(piece, reps)[:window]
    return out


def to_p_fake(margin: float | np.ndarray, scale: float) -> np.ndarray:
    """The project's ``p_fake`` in [0, 1] from logit margins: ``sigmoid(margin / scale)``.

    A monotone map (rankings, AUCs and thresholds carry over); ``scale`` keeps real recordings
    from all reading 1.00, because AASIST's margins on speech unlike its training data are large.
    """
    return 1.0 / (1.0 + np.exp(-np.asarray(margin, np.float64) / scale))


def voice_verdict(
    margins: np.ndarray,
    calibration: VoiceCalibration | None,
    scale: float = 1.0,
    threshold: float | None = None,
) -> VoiceVerdict:
    """The voice's verdict from its window margins (calibrated unless a threshold is forced)."""
    reduction = calibration.reduction if calibration else "mean"
    p = float(to_p_fake(REDUCTIONS[reduction](margins), scale))
    if threshold is None and calibration is not None:
        thr, band_from, calibrated = calibration.threshold, calibration.inconclusive_from, True
    else:
        thr = 0.5 if threshold is None else float(threshold)
        band_from, calibrated = max(0.0, thr - 0.1), False
    label = "fake" if p >= thr else "uncertain" if p >= band_from else "real"
    percentile = None
    if calibrated and calibration.real_scores:
        percentile = float(np.mean(np.asarray(calibration.real_scores) < p))
    rule = (
        f"{reduction} of {len(margins)} speech window margin(s), as a voice score, against the "
        f"voice threshold {thr:.3f}"
        + (" (calibrated on real recordings)" if calibrated else " (uncalibrated)")
    )
    return VoiceVerdict(label, p, thr, band_from, reduction, rule, calibrated, percentile)


def analyze_track(
    track: AudioTrack, member: VoiceMember, *, audio_only: bool = False
) -> AudioAnalysis:
    """Speech detection, windows, scores and the voice verdict for one decoded track."""
    timings: dict[str, float] = {}
    s = member.settings
    notes = tuple(n for n in (track.message,) if n and track.status == "ok")
    base = {"member": member.spec.name, "duration_s": track.duration_s, "audio_only": audio_only}
    base["card"] = member.card
    base["precision"] = member.precision
    if track.status != "ok":
        return AudioAnalysis(track.status, track.message, **base)
    if not len(track.samples):
        return AudioAnalysis("no_audio", "the audio track holds no sound", **base)
    t0 = time.perf_counter()
    probs = speech_probabilities(member.vad, track.samples)
    stretches = speech_stretches(probs, len(track.samples), s.vad)
    timings["vad_s"] = time.perf_counter() - t0
    sr = member.spec.sample_rate
    speech_s = sum(b - a for a, b in stretches) / sr
    speech = tuple((round(a / sr, 3), round(b / sr, 3)) for a, b in stretches)
    if speech_s < s.min_speech_s:
        found = f"{speech_s:.1f} s of it" if speech_s > 0 else "none"
        return AudioAnalysis(
            "no_speech",
            f"no speech found in the {track.duration_s:.1f} s audio track ({found} sounded like "
            f"speech; at least {s.min_speech_s:.1f} s is needed to judge a voice)",
            speech=speech,
            speech_s=speech_s,
            notes=notes,
            timings_s=timings,
            **base,
        )
    plan = plan_windows(stretches, member.spec.input_size, int(s.merge_gap_s * sr))
    if len(plan) > s.max_windows:
        keep = np.linspace(0, len(plan) - 1, s.max_windows).round().astype(int)
        notes = (*notes, f"{len(plan)} speech windows; {s.max_windows} evenly spaced were scored")
        plan = [plan[i] for i in keep]
    t0 = time.perf_counter()
    margins = member.margins(window_batch(track.samples, plan, member.spec.input_size))
    timings["scoring_s"] = time.perf_counter() - t0
    window = member.spec.input_size
    segments = tuple(
        VoiceSegment(
            round(a / sr, 3),
            round(b / sr, 3),
            float(to_p_fake(m, member.score_scale)),
            (b - a) < window,
            float(m),
        )
        for (a, b), m in zip(plan, margins, strict=True)
    )
    verdict = voice_verdict(margins, member.calibration, member.score_scale, s.threshold)
    message = (
        f"Voice: {verdict.words} (voice score {verdict.p_fake:.2f}, threshold "
        f"{verdict.threshold:.2f}) from {len(segments)} window(s) over {speech_s:.1f} s of speech"
    )
    if audio_only:
        notes = (*notes, "the file has no video stream: only the voice was analysed")
    return AudioAnalysis(
        "ok",
        message,
        segments=segments,
        speech=speech,
        verdict=verdict,
        speech_s=speech_s,
        notes=notes,
        timings_s=timings,
        **base,
    )


def not_analysed(message: str) -> AudioAnalysis:
    """The audio part when it could not run (the file was refused before its audio was read)."""
    return AudioAnalysis("not_analysed", message)
