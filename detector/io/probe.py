"""Probe a video and decode only the frames a sampling plan asks for.

Files are untrusted: the container is recognised from its bytes and opened with that demuxer forced
(:mod:`detector.io.sniff`), through the ``file:`` protocol only, and frame sizes are checked against
a pixel budget before decoding (decompression bombs) and again for every frame.
"""

from __future__ import annotations

import math
import re
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
from detector.io.files import sha256_file
from detector.io.sniff import DEMUXER, declared_frame_size, require_media
from detector.types import VideoInfo

MAX_PIXELS = 7680 * 4320 * 5 // 4  # 8K UHD plus headroom; beyond is treated as a decompression bomb


MAX_SIDE = 16384


MAX_SAMPLES = 600  # frames sampled at most; longer videos are sampled evenly (10 min at 1 fps)


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


def check_file(path: Path, name: str, max_pixels: int = MAX_PIXELS) -> str:
    """What can be refused from the file system and the first 4 KB alone; the container kind.

    Cheap enough to run before starting a decoder process.

    Raises:
        VideoReadError: missing, not a regular file, empty, or not a video container.
        VideoTooLargeError: a raw-video header declaring frames beyond the pixel budget.
    """
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"{name}: file not found")
    if not path.is_file():
        raise VideoReadError(
            f"{name}: not a regular file (a pipe, device or folder cannot be read)"
        )
    if path.stat().st_size == 0:
        raise VideoReadError(f"{name}: the file is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    kind = require_media(head, name)
    declared = declared_frame_size(head, kind)
    if declared is not None:
        check_size(*declared, max_pixels, name)
    return kind


def open_container(
    path: Path, name: str, max_pixels: int = MAX_PIXELS
) -> av.container.InputContainer:
    """Open a file judged by its content (:func:`check_file`), with the matching demuxer forced."""
    kind = check_file(path, name, max_pixels)
    try:
        # "file:" keeps FFmpeg from reading the path as a URL or protocol ("concat:", "http:").
        return av.open(
            f"file:{Path(path).resolve()}",
            mode="r",
            format=DEMUXER[kind],
            options={"protocol_whitelist": "file"},
            metadata_errors="ignore",
        )
    except MemoryError:
        raise out_of_memory_error(name) from None
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoReadError(f"{name}: not a readable video file ({reason_of(exc)})") from None


def check_size(width: int, height: int, max_pixels: int, name: str) -> None:
    if width * height > max_pixels or max(width, height) > MAX_SIDE:
        raise VideoTooLargeError(
            f"{name}: frame size {width}x{height} is beyond the {max_pixels / 1e6:.0f} "
            "megapixel limit; refusing to decode it"
        )


def out_of_memory_error(name: str) -> VideoTooLargeError:
    return VideoTooLargeError(f"{name}: decoding needed more memory than this analysis allows")


def reason_of(exc: BaseException) -> str:
    """FFmpeg's words for what went wrong, without the file path it was given."""
    text = getattr(exc, "strerror", None) or type(exc).__name__
    return str(text)[:120]


def video_stream_of(container: av.container.InputContainer, name: str) -> av.video.VideoStream:
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
    with open_container(path, name, max_pixels) as container:
        stream = video_stream_of(container, name)
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width <= 0 or height <= 0:
            raise VideoReadError(f"{name}: the video stream declares no frame size")
        check_size(width, height, max_pixels, name)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration_s = 0.0
        if stream.duration and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        first = first_frame(container, stream, name, max_pixels)
        rotation = rotation_of(first)
        declared = int(stream.frames or 0)
        if declared > 0:
            count, source = declared, "container"
        elif duration_s > 0 and fps > 0:
            count, source = max(1, round(duration_s * fps)), "duration_x_fps"
        else:
            count, source = 0, "decoded"
        return VideoInfo(
            name=name,
            sha256=sha256_file(path),
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


def first_frame(container, stream, name: str, max_pixels: int) -> av.VideoFrame:
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    check_size(frame.width, frame.height, max_pixels, name)
                    return frame
            except MemoryError:
                raise
            except av.FFmpegError:
                continue
    except MemoryError:
        raise out_of_memory_error(name) from None
    except av.FFmpegError as exc:
        raise VideoReadError(
            f"{name}: the video stream cannot be decoded ({reason_of(exc)})"
        ) from None
    raise VideoReadError(f"{name}: no frame of the video stream could be decoded")


def rotation_of(frame: av.VideoFrame) -> int:
    """Display rotation in degrees counter-clockwise, snapped to a quarter turn."""
    angle = float(getattr(frame, "rotation", 0) or 0)
    return 0 if not math.isfinite(angle) else (round(angle / 90) * 90) % 360


def upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB array with the container's rotation applied (display orientation)."""
    image = frame.to_ndarray(format="rgb24")
    rotation = rotation_of(frame)
    # PyAV reports the display matrix angle counter-clockwise; np.rot90 turns counter-clockwise.
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


def _wanted(plan: SamplingPlan, info: VideoInfo) -> int | None:
    """How many frames the plan asks for before any cap (None: unknown, the length is unknown)."""
    duration = info.duration_s
    if duration <= 0 and info.fps > 0 and info.frame_count:
        duration = info.frame_count / info.fps
    if plan.kind in ("even", "first"):
        return int(plan.value)
    if plan.kind == "fps":
        return max(1, math.floor(duration * plan.value + 1e-9)) if duration > 0 else None
    return info.frame_count or (round(duration * info.fps) if info.fps > 0 else None)


def sampling_cap_note(plan: SamplingPlan, info: VideoInfo, max_samples: int) -> str | None:
    """Words for the analyst when ``max_samples`` cuts down what the plan asks for, else None."""
    wanted = _wanted(plan, info)
    if wanted is None or wanted <= max_samples:
        return None
    how = "the first" if plan.kind == "first" else "evenly spaced"
    return (
        f"{plan.spec} would need {wanted} frames; {max_samples} {how} frames were sampled instead"
    )


def target_times(plan: SamplingPlan, info: VideoInfo, max_samples: int) -> list[float] | None:
    """Timestamps to sample, or None for count-based plans (first:N, all within the cap)."""
    if plan.kind == "first":
        return None
    wanted = _wanted(plan, info)
    if plan.kind == "all":
        if wanted is None or wanted <= max_samples:
            return None
        plan = SamplingPlan("even", max_samples)  # every frame of a long video: too many
    duration = info.duration_s
    if duration <= 0:
        duration = info.frame_count / info.fps if info.fps > 0 and info.frame_count else 0.0
    if plan.kind == "fps":
        n = min(wanted or max_samples, max_samples)
        step = 1.0 / plan.value if duration <= 0 or n < max_samples else duration / n
        return [i * step for i in range(n)]
    n = min(int(plan.value), max_samples)
    if duration <= 0:
        return [float(i) for i in range(n)]
    last = max(0.0, duration - (1.0 / info.fps if info.fps > 0 else 0.0))
    return [float(t) for t in np.linspace(0.0, last, n)] if n > 1 else [0.0]


def expected_samples(plan, info, max_samples: int) -> int:
    """How many frames ``plan`` should give on a video described by ``info``."""
    if plan.kind == "fps":
        return max(1, min(max_samples, int(info.duration_s * plan.value)))
    if plan.kind in ("even", "first"):
        return min(max_samples, int(plan.value))
    return max(1, min(max_samples, info.frame_count))


def check_real_length(stats, info: VideoInfo, min_duration_s: float) -> None:
    """Too short by what was decoded (``stats``: the decoder's ``DecodeStats``, or None), when
    the stream ended before its header said it would."""
    if stats is None or not stats.reached_end or not info.duration_s:
        return
    period = 1.0 / info.fps if info.fps > 0 else 0.0
    length = stats.last_timestamp_s + period
    if length < min_duration_s <= info.duration_s:
        raise VideoTooShortError(
            f"{info.name}: the header says {info.duration_s:.2f} s but the video stream holds "
            f"only {length:.2f} s; at least {min_duration_s:.1f} s is needed"
        )
