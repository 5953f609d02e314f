"""Frozen records of the audio side: the decoded track, scored speech segments, the voice verdict.

They cross module boundaries (decoder child -> pipeline -> report, PDF, pages) like the records in
:mod:`detector.types`, and keep the project's conventions: unit-bearing names, ``p_fake`` in
[0, 1] with higher meaning more likely synthetic, and worded states instead of sentinel scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

TrackStatus = Literal["ok", "no_audio", "audio_unreadable"]
AudioStatus = Literal["ok", "no_audio", "no_speech", "audio_unreadable", "not_analysed"]
VoiceLabel = Literal["fake", "uncertain", "real"]

VOICE_WORDS: dict[str, str] = {
    "fake": "Synthetic voice likely",
    "uncertain": "Inconclusive",
    "real": "No synthetic voice found by this model",
}


@dataclass(frozen=True)
class AudioGap:
    """A stretch of the audio track that could not be decoded (filled with silence)."""

    at_s: float
    duration_s: float
    message: str


@dataclass(frozen=True)
class AudioTrack:
    """The first audio stream of a file, decoded to 16 kHz mono float32 (or why not).

    Attributes:
        status: "ok"; "no_audio" (the file has no audio stream, or it holds no sound);
            "audio_unreadable" (an audio stream whose packets could not be decoded).
        samples: the waveform, empty unless the status is "ok".
        duration_s: length of ``samples`` in seconds.
        source_duration_s: the length the container declares (0 when it declares none).
        truncated: the track was longer than the decoder's limit; only its start was decoded.
        gaps: stretches that failed to decode (their time is kept, as silence).
        bad_packets: audio packets the codec refused.
    """

    status: TrackStatus
    message: str = ""
    sample_rate: int = 16_000
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    duration_s: float = 0.0
    source_duration_s: float = 0.0
    codec: str = ""
    channels: int = 0
    source_rate: int = 0
    truncated: bool = False
    gaps: tuple[AudioGap, ...] = ()
    bad_packets: int = 0


@dataclass(frozen=True)
class VoiceSegment:
    """One scored window of speech.

    ``start_s``/``end_s`` are times in the file; a window shorter than the model's input was
    tiled (repeated) to fill it (``tiled``), as the model's authors do. ``margin`` is the
    member's raw evidence (spoof minus bona fide logit); ``p_fake`` maps it to [0, 1].
    """

    start_s: float
    end_s: float
    p_fake: float
    tiled: bool = False
    margin: float = 0.0


@dataclass(frozen=True)
class VoiceVerdict:
    """The voice's verdict, kept apart from the faces' (its own threshold and evidence).

    Attributes:
        label: "fake" (at or above ``threshold``), "uncertain" (at or above
            ``inconclusive_from``), else "real" (worded "no synthetic voice found by this model").
        p_fake: the clip's voice score: the reduction ``reduction`` of the segment scores.
        calibrated: the threshold came from real recordings (see the member's manifest).
        real_percentile: share of the calibration's real recordings scoring below ``p_fake``.
    """

    label: VoiceLabel
    p_fake: float
    threshold: float
    inconclusive_from: float
    reduction: str
    rule: str
    calibrated: bool
    real_percentile: float | None = None

    @property
    def words(self) -> str:
        return VOICE_WORDS[self.label]


@dataclass(frozen=True)
class AudioAnalysis:
    """The audio part of an analysis: status in words, scored segments and the voice verdict.

    ``verdict`` is None unless ``status`` is "ok": no audio, no speech, an unreadable track or an
    audio part that was not analysed never carries a score.
    """

    status: AudioStatus
    message: str
    member: str = ""
    segments: tuple[VoiceSegment, ...] = ()
    speech: tuple[tuple[float, float], ...] = ()
    verdict: VoiceVerdict | None = None
    duration_s: float = 0.0
    speech_s: float = 0.0
    notes: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    card: object | None = None  # the member's ModelCard when it was loaded
    audio_only: bool = False
    precision: str = ""  # what the member ran in: "fp32" or "bf16" (autocast)
