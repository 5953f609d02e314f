"""Decode a file's first audio stream to 16 kHz mono float32, bounded, with its gaps in words.

Runs inside the sandboxed decoder child (:mod:`detector.io.isolated.decoder`) after the video frames, or
before refusing a file that has no video stream (an audio-only file is then analysed as voice
only). The file is opened exactly as the video side opens it: recognised from its bytes, with
that demuxer forced, through the ``file:`` protocol only.

Resampling is FFmpeg's own (libswresample through PyAV's ``AudioResampler``) to 16 kHz float,
keeping the source channels; channels are then averaged in NumPy (swresample's stereo-to-mono
matrix would scale the level, and the spoofing model sees the raw level: no peak normalisation).
Packets the codec refuses are counted and skipped; the time they covered is kept as silence, so
segment times stay true to the file. At most ``max_duration_s`` seconds are decoded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from detector.audio.records import AudioGap, AudioTrack
from detector.errors import DetectorError
from detector.io.probe import check_file
from detector.io.sniff import DEMUXER

SAMPLE_RATE = 16_000
GAP_TOLERANCE_S = 0.05  # a jump in presentation time larger than this is a gap


@dataclass(frozen=True)
class AudioLimits:
    """Bounds for decoding one audio track.

    Attributes:
        max_duration_s: only the first this many seconds are decoded (ten minutes, as the
            video side samples at most ten minutes at 1 frame/s); the analysis says so.
        max_bad_packets: decoding stops after this many refused packets (a corrupt stream).
    """

    max_duration_s: float = 600.0
    max_bad_packets: int = 200

    @property
    def max_samples(self) -> int:
        return int(self.max_duration_s * SAMPLE_RATE)


def decode_audio(path: Path, name: str, limits: AudioLimits | None = None) -> AudioTrack:
    """The file's first audio stream as an :class:`AudioTrack` (a worded state, never raises
    for a bad track; file-level problems raise the same typed errors as the video side)."""
    limits = limits or AudioLimits()
    path = Path(path)
    kind = check_file(path, name)
    try:
        container = av.open(
            f"file:{path.resolve()}",
            mode="r",
            format=DEMUXER[kind],
            options={"protocol_whitelist": "file"},
            metadata_errors="ignore",
        )
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        return AudioTrack("audio_unreadable", f"{name}: the file could not be opened ({_why(exc)})")
    with container:
        if not container.streams.audio:
            return AudioTrack("no_audio", f"{name}: the file has no audio track")
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        if ctx is None:
            return AudioTrack(
                "audio_unreadable", f"{name}: the audio codec is not supported by the decoder"
            )
        declared = 0.0
        if stream.duration and stream.time_base:
            declared = float(stream.duration * stream.time_base)
        elif container.duration:
            declared = container.duration / av.time_base
        facts = {
            "codec": ctx.name or "",
            "channels": int(ctx.channels or 0),
            "source_rate": int(ctx.sample_rate or 0),
            "source_duration_s": max(0.0, declared),
        }
        return _decode_stream(container, stream, name, limits, facts)


def _decode_stream(container, stream, name: str, limits: AudioLimits, facts: dict) -> AudioTrack:
    time_base = float(stream.time_base) if stream.time_base else 0.0
    start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    chunks: list[np.ndarray] = []
    total = 0  # output samples so far (silence for gaps included)
    gaps: list[AudioGap] = []
    bad = decoded = 0
    truncated = False
    stop_reason = ""
    resampler: av.AudioResampler | None = None

    def add(array: np.ndarray) -> None:
        nonlocal total
        chunks.append(array)
        total += len(array)

    def resample(frame) -> None:
        nonlocal resampler
        if resampler is None:
            resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
        try:
            outs = resampler.resample(frame)
        except ValueError:  # the stream changed its layout or rate mid-way: start afresh
            resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
            outs = resampler.resample(frame)
        for out in outs:
            add(out.to_ndarray().astype(np.float32, copy=False).mean(axis=0))

    packets = container.demux(stream)
    while total < limits.max_samples:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError as exc:
            stop_reason = f"reading the audio stopped at {total / SAMPLE_RATE:.1f} s ({_why(exc)})"
            break
        if packet.size == 0:
            continue
        try:
            frames = packet.decode()
        except av.FFmpegError:
            bad += 1
            if bad > limits.max_bad_packets:
                stop_reason = f"more than {limits.max_bad_packets} audio packets were unreadable"
                break
            continue
        for frame in frames:
            if frame.pts is not None and time_base:
                t = frame.pts * time_base - start
                gap = t - total / SAMPLE_RATE
                if gap > GAP_TOLERANCE_S and decoded:
                    gap = min(gap, (limits.max_samples - total) / SAMPLE_RATE)
                    add(np.zeros(round(gap * SAMPLE_RATE), np.float32))
                    gaps.append(
                        AudioGap(
                            round(t - gap, 3), round(gap, 3), "undecodable audio (kept as silence)"
                        )
                    )
            decoded += 1
            resample(frame)
    else:
        truncated = True
    if resampler is not None and not truncated:
        for out in resampler.resample(None):
            add(out.to_ndarray().astype(np.float32, copy=False).mean(axis=0))
    if not decoded:
        if bad:
            return AudioTrack(
                "audio_unreadable",
                f"{name}: the audio track could not be decoded ({bad} packet(s) refused by the "
                f"{facts['codec'] or 'audio'} decoder)",
                bad_packets=bad,
                **facts,
            )
        return AudioTrack("no_audio", f"{name}: the audio track holds no sound", **facts)
    samples = np.concatenate(chunks)[: limits.max_samples] if chunks else np.zeros(0, np.float32)
    if not np.all(np.isfinite(samples)):
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    message = ""
    if truncated or (facts["source_duration_s"] > limits.max_duration_s):
        truncated = True
        message = (
            f"the audio lasts {facts['source_duration_s']:.0f} s; only its first "
            f"{limits.max_duration_s:.0f} s were analysed"
        )
    if bad:
        message = _join(
            message,
            f"{bad} audio packet(s) could not be decoded; their time is kept as silence "
            "and the rest was analysed",
        )
    if stop_reason:
        message = _join(message, stop_reason)
    return AudioTrack(
        "ok",
        message,
        samples=np.ascontiguousarray(samples, dtype=np.float32),
        duration_s=len(samples) / SAMPLE_RATE,
        truncated=truncated,
        gaps=tuple(gaps[:100]),
        bad_packets=bad,
        **facts,
    )


# ---------------------------------------------------------------- the decoder child's protocol


def child_message(path: Path, name: str, limits: dict) -> tuple[dict, np.ndarray]:
    """In the decoder child: the "audio" message header and the samples that follow it."""
    try:
        track = decode_audio(path, name, AudioLimits(**limits))
    except DetectorError as exc:
        track = AudioTrack("audio_unreadable", str(exc))
    except MemoryError:
        track = AudioTrack("audio_unreadable", f"{name}: decoding the audio needed too much memory")
    except Exception as exc:  # a decoder failure on this track; say what kind, not a traceback
        track = AudioTrack(
            "audio_unreadable", f"{name}: the audio decoder failed ({type(exc).__name__})"
        )
    header = {
        k: v for k, v in asdict(track).items() if k not in ("samples", "gaps") and v is not None
    }
    header["gaps"] = [asdict(g) for g in track.gaps]
    header["n_samples"] = len(track.samples)
    return {"type": "audio", **header}, track.samples


def track_from_message(header: dict, samples: np.ndarray) -> AudioTrack:
    """In the parent: the :class:`AudioTrack` from the child's header (fields cast, checked)."""
    status = str(header["status"])
    if status not in ("ok", "no_audio", "audio_unreadable"):
        raise ValueError(status)
    return AudioTrack(
        status=status,  # type: ignore[arg-type]
        message=str(header.get("message", "")),
        samples=samples,
        duration_s=len(samples) / SAMPLE_RATE,
        source_duration_s=float(header.get("source_duration_s", 0.0)),
        codec=str(header.get("codec", "")),
        channels=int(header.get("channels", 0)),
        source_rate=int(header.get("source_rate", 0)),
        truncated=bool(header.get("truncated", False)),
        gaps=tuple(
            AudioGap(float(g["at_s"]), float(g["duration_s"]), str(g["message"]))
            for g in header.get("gaps", [])[:100]
        ),
        bad_packets=int(header.get("bad_packets", 0)),
    )


def not_read(message: str) -> AudioTrack:
    """A track the decoder could not deliver (it crashed or stalled after the video)."""
    return AudioTrack("audio_unreadable", message)


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or type(exc).__name__)[:120]


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b
