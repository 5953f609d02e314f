"""Probe a video and decode only the frames a sampling plan asks for.

Sampling strategies follow the papers: ``1fps`` (one frame per second, the core paper 000, default),
``even:N`` (N evenly spaced frames, papers 003/004), ``first:N`` (the first N frames, paper 001) and
``all``. Decoding uses PyAV (FFmpeg): timestamps come from the stream's presentation times, not
from a frame counter, so variable-frame-rate clips are sampled by real time; the frame count the
container declares is only trusted when present (OpenCV's estimate is wrong for some containers);
frames that are skipped are decoded (the codec needs them) but never converted to RGB; long jumps
seek to the nearest keyframe instead of decoding everything in between.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from detector.errors import (
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoReadError,
    VideoTooLargeError,
    VideoTooShortError,
)
from detector.types import DecodeGap, SampledFrame, VideoInfo

MAX_PIXELS = 7680 * 4320 * 5 // 4  # 8K UHD plus headroom; beyond is treated as a decompression bomb
MAX_SIDE = 16384


@dataclass(frozen=True)
class SamplingPlan:
    """A parsed sampling strategy: ``kind`` is "fps", "even", "first" or "all"."""

    kind: str
    value: float = 0.0

    @property
    def spec(self) -> str:
        if self.kind == "fps":
            return f"{self.value:g}fps"
        if self.kind == "all":
            return "all"
        return f"{self.kind}:{int(self.value)}"


def parse_sampling(spec: str) -> SamplingPlan:
    """Parse ``1fps`` / ``0.5fps`` / ``even:N`` / ``first:N`` / ``all``."""
    from detector.errors import BadSettingsError

    text = spec.strip().lower()
    if text == "all":
        return SamplingPlan("all")
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*fps", text):
        rate = float(m.group(1))
        if rate <= 0:
            raise BadSettingsError("sampling rate must be positive")
        return SamplingPlan("fps", rate)
    if m := re.fullmatch(r"(even|first):(\d+)", text):
        n = int(m.group(2))
        if n < 1:
            raise BadSettingsError(f"{m.group(1)}:N needs N >= 1")
        return SamplingPlan(m.group(1), n)
    raise BadSettingsError(
        f"unknown sampling {spec!r}; use 1fps, even:N, first:N or all (e.g. even:16)"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _open(path: Path, name: str) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{name}: file not found")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{name}: the file is empty (0 bytes)")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoReadError(f"{name}: not a readable video file ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).split(":")[-1].strip() or type(exc).__name__
    return text[:120]


def _video_stream(container: av.container.InputContainer, name: str) -> av.video.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise NoVideoStreamError(
            f"{name}: the file has no video stream (it holds {', '.join(kinds)})"
        )
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise UnsupportedCodecError(f"{name}: the video codec is not supported by the decoder")
    return stream


def probe(path: Path, *, name: str | None = None, max_pixels: int = MAX_PIXELS) -> VideoInfo:
    """Open the file, check it holds a decodable video stream and read its properties.

    The first frame is decoded to prove the stream is readable and to learn the rotation.

    Raises:
        VideoReadError / NoVideoStreamError / UnsupportedCodecError / VideoTooLargeError.
    """
    path = Path(path)
    name = name or path.name
    with _open(path, name) as container:
        stream = _video_stream(container, name)
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width <= 0 or height <= 0:
            raise VideoReadError(f"{name}: the video stream declares no frame size")
        if width * height > max_pixels or max(width, height) > MAX_SIDE:
            raise VideoTooLargeError(
                f"{name}: frame size {width}x{height} is beyond the {max_pixels / 1e6:.0f} "
                "megapixel limit; refusing to decode it"
            )
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration_s = 0.0
        if stream.duration and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        first = _first_frame(container, stream, name)
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        declared = int(stream.frames or 0)
        if declared > 0:
            count, source = declared, "container"
        elif duration_s > 0 and fps > 0:
            count, source = max(1, round(duration_s * fps)), "duration_x_fps"
        else:
            count, source = 0, "decoded"
        return VideoInfo(
            name=name,
            sha256=sha256_of(path),
            size_bytes=path.stat().st_size,
            container=container.format.name,
            codec=ctx.name,
            width=width,
            height=height,
            rotation_deg=rotation,
            fps=fps,
            frame_count=count,
            frame_count_source=source,
            duration_s=duration_s,
        )


def _first_frame(container, stream, name: str) -> av.VideoFrame:
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return frame
            except av.FFmpegError:
                continue
    except av.FFmpegError as exc:
        raise VideoReadError(
            f"{name}: the video stream cannot be decoded ({_reason(exc)})"
        ) from None
    raise VideoReadError(f"{name}: no frame of the video stream could be decoded")


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """RGB array with the container's rotation applied (display orientation)."""
    image = frame.to_ndarray(format="rgb24")
    rotation = int(getattr(frame, "rotation", 0) or 0) % 360
    # PyAV reports the display matrix angle counter-clockwise; np.rot90 turns counter-clockwise.
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


def _target_times(plan: SamplingPlan, info: VideoInfo, max_samples: int) -> list[float] | None:
    """Timestamps to sample, or None for count-based plans (first:N, all)."""
    if plan.kind in ("first", "all"):
        return None
    duration = info.duration_s
    if duration <= 0:
        duration = info.frame_count / info.fps if info.fps > 0 and info.frame_count else 0.0
    if plan.kind == "fps":
        n = max(1, math.floor(duration * plan.value + 1e-9)) if duration > 0 else max_samples
        n = min(n, max_samples)
        step = 1.0 / plan.value if duration <= 0 or n < max_samples else duration / n
        return [i * step for i in range(n)]
    n = int(plan.value)
    if duration <= 0:
        return [float(i) for i in range(n)]
    last = max(0.0, duration - (1.0 / info.fps if info.fps > 0 else 0.0))
    return [float(t) for t in np.linspace(0.0, last, n)] if n > 1 else [0.0]


def iter_frames(
    path: Path,
    info: VideoInfo,
    plan: SamplingPlan,
    *,
    max_samples: int = 3600,
    seek_gap_s: float = 8.0,
) -> Iterator[SampledFrame | DecodeGap]:
    """Yield the sampled frames in order, plus a :class:`DecodeGap` wherever decoding failed.

    A corrupted stretch in the middle is skipped and reported; the rest is still decoded.
    """
    targets = _target_times(plan, info, max_samples)
    with _open(path, info.name) as container:
        stream = _video_stream(container, info.name)
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base) if stream.time_base else 0.0
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        half_period = 0.5 / info.fps if info.fps > 0 else 0.0
        limit = int(plan.value) if plan.kind == "first" else None
        next_target = 0
        ordinal = 0
        last_time = 0.0
        emitted = 0
        seeked = False

        def frame_time(frame: av.VideoFrame, ordinal: int) -> float:
            if frame.pts is not None and time_base:
                return frame.pts * time_base - start
            return ordinal / info.fps if info.fps > 0 else float(ordinal)

        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                yield DecodeGap(last_time, f"demuxing stopped: {_reason(exc)}")
                break
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                yield DecodeGap(last_time, f"a packet could not be decoded: {_reason(exc)}")
                continue
            for frame in frames:
                t = frame_time(frame, ordinal)
                index = round(t * info.fps) if (seeked and info.fps > 0) else ordinal
                ordinal += 1
                last_time = t
                if getattr(frame, "is_corrupt", False):
                    yield DecodeGap(t, "a corrupt frame was skipped")
                    continue
                if targets is None:
                    yield SampledFrame(index, t, _upright(frame))
                    emitted += 1
                    if limit is not None and emitted >= limit:
                        return
                    continue
                if t + half_period < targets[next_target]:
                    continue
                yield SampledFrame(index, t, _upright(frame))
                while next_target < len(targets) and targets[next_target] <= t + half_period:
                    next_target += 1
                if next_target >= len(targets):
                    return
                if targets[next_target] - t > seek_gap_s and time_base:
                    container.seek(
                        int((targets[next_target] + start) / time_base),
                        stream=stream,
                        backward=True,
                        any_frame=False,
                    )
                    seeked = True
                    break


def read_frames(path: Path, info: VideoInfo, plan: SamplingPlan, **kwargs) -> list[SampledFrame]:
    """All sampled frames as a list (tests, small clips); the pipeline streams instead."""
    frames = [f for f in iter_frames(path, info, plan, **kwargs) if isinstance(f, SampledFrame)]
    if not frames:
        raise VideoTooShortError(f"{info.name}: no frame could be sampled")
    return frames
