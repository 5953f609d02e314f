"""Probe a video and decode only the frames a sampling plan asks for.

Sampling strategies follow the papers: ``1fps`` (one frame per second, the core paper 000, default),
``even:N`` (N evenly spaced frames, papers 003/004), ``first:N`` (the first N frames, paper 001) and
``all``. Decoding uses PyAV (FFmpeg): timestamps come from the stream's presentation times, not
from a frame counter, so variable-frame-rate clips are sampled by real time; the frame count the
container declares is only trusted when present (OpenCV's estimate is wrong for some containers);
frames that are skipped are decoded (the codec needs them) but never converted to RGB.

Long jumps seek instead of decoding everything in between. A seek lands on the keyframe before the
target, so it only pays when the target is further away than a keyframe interval: the interval is
learned while decoding (and from where seeks actually land), and the reader seeks when the next
target is more than 1.5 intervals ahead. A one-hour clip sampled 600 times therefore decodes a small
share of its frames; :class:`DecodeStats` counts what was decoded.

Files are untrusted: the container is recognised from its bytes and opened with that demuxer forced
(:mod:`detector.io.sniff`), through the ``file:`` protocol only, and frame sizes are checked against
a pixel budget before decoding (decompression bombs) and again for every frame.
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
from detector.io.sniff import DEMUXER, declared_frame_size, require_video
from detector.types import DecodeGap, SampledFrame, VideoInfo

MAX_PIXELS = 7680 * 4320 * 5 // 4  # 8K UHD plus headroom; beyond is treated as a decompression bomb
MAX_SIDE = 16384
MAX_SAMPLES = 600  # frames sampled at most; longer videos are sampled evenly (10 min at 1 fps)
SEEK_KEYFRAME_INTERVALS = 1.5


@dataclass
class DecodeStats:
    """What one pass of :func:`iter_frames` cost; filled in as it runs (mutable on purpose).

    Attributes:
        packets: compressed packets read from the container.
        frames_decoded: frames the codec produced (sampled or skipped).
        frames_sampled: frames converted to RGB and yielded.
        seeks: jumps to a keyframe instead of decoding up to the next target.
        keyframe_interval_s: the longest distance between keyframes seen so far.
        last_timestamp_s: time of the last decoded frame.
        reached_end: the whole stream was read, so ``last_timestamp_s`` is where it really ends.
    """

    packets: int = 0
    frames_decoded: int = 0
    frames_sampled: int = 0
    seeks: int = 0
    keyframe_interval_s: float = 0.0
    last_timestamp_s: float = 0.0
    reached_end: bool = False


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
    kind = require_video(head, name)
    declared = declared_frame_size(head, kind)
    if declared is not None:
        _check_size(*declared, max_pixels, name)
    return kind


def _open(path: Path, name: str, max_pixels: int = MAX_PIXELS) -> av.container.InputContainer:
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
        raise _out_of_memory(name) from None
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoReadError(f"{name}: not a readable video file ({_reason(exc)})") from None


def _check_size(width: int, height: int, max_pixels: int, name: str) -> None:
    if width * height > max_pixels or max(width, height) > MAX_SIDE:
        raise VideoTooLargeError(
            f"{name}: frame size {width}x{height} is beyond the {max_pixels / 1e6:.0f} "
            "megapixel limit; refusing to decode it"
        )


def _out_of_memory(name: str) -> VideoTooLargeError:
    return VideoTooLargeError(f"{name}: decoding needed more memory than this analysis allows")


def _reason(exc: BaseException) -> str:
    """FFmpeg's words for what went wrong, without the file path it was given."""
    text = getattr(exc, "strerror", None) or type(exc).__name__
    return str(text)[:120]


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
    with _open(path, name, max_pixels) as container:
        stream = _video_stream(container, name)
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width <= 0 or height <= 0:
            raise VideoReadError(f"{name}: the video stream declares no frame size")
        _check_size(width, height, max_pixels, name)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration_s = 0.0
        if stream.duration and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        first = _first_frame(container, stream, name, max_pixels)
        rotation = _rotation(first)
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


def _first_frame(container, stream, name: str, max_pixels: int) -> av.VideoFrame:
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    _check_size(frame.width, frame.height, max_pixels, name)
                    return frame
            except MemoryError:
                raise
            except av.FFmpegError:
                continue
    except MemoryError:
        raise _out_of_memory(name) from None
    except av.FFmpegError as exc:
        raise VideoReadError(
            f"{name}: the video stream cannot be decoded ({_reason(exc)})"
        ) from None
    raise VideoReadError(f"{name}: no frame of the video stream could be decoded")


def _rotation(frame: av.VideoFrame) -> int:
    """Display rotation in degrees counter-clockwise, snapped to a quarter turn."""
    angle = float(getattr(frame, "rotation", 0) or 0)
    return 0 if not math.isfinite(angle) else (round(angle / 90) * 90) % 360


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """RGB array with the container's rotation applied (display orientation)."""
    image = frame.to_ndarray(format="rgb24")
    rotation = _rotation(frame)
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


def _target_times(plan: SamplingPlan, info: VideoInfo, max_samples: int) -> list[float] | None:
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


def iter_frames(
    path: Path,
    info: VideoInfo,
    plan: SamplingPlan,
    *,
    max_samples: int = MAX_SAMPLES,
    seek_gap_s: float = 8.0,
    max_pixels: int = MAX_PIXELS,
    stats: DecodeStats | None = None,
    with_next: bool = False,
) -> Iterator[SampledFrame | DecodeGap]:
    """Yield the sampled frames in order, plus a :class:`DecodeGap` wherever decoding failed.

    A corrupted stretch in the middle is skipped and reported; the rest is still decoded. A stream
    that ends before the time its header declares is reported as a gap too.

    Args:
        max_samples: cap on yielded frames; longer videos are sampled evenly.
        seek_gap_s: jump distance that triggers a seek while the keyframe interval is unknown.
        max_pixels: a frame larger than this stops decoding with :class:`VideoTooLargeError`.
        stats: filled in with what was decoded (packets, frames, seeks).
        with_next: also decode the frame right after each sampled one, as ``next_image``
            (consecutive raw frames for optical flow); the last frame of a stream has none.
    """
    stats = stats if stats is not None else DecodeStats()
    targets = _target_times(plan, info, max_samples)
    name = info.name
    period = 1.0 / info.fps if info.fps > 0 else 0.0
    partner = None
    if with_next and targets is not None and period > 0:
        # also ask for the frame one period after each target (a hair less, so that float
        # rounding cannot skip it); a frame that a real target also wants stays a sample
        merged = [
            (t, p)
            for target in targets
            for t, p in ((target, False), (target + 0.999 * period, True))
        ]
        merged.sort(key=lambda x: x[0])
        targets = [t for t, _ in merged]
        partner = [is_partner for _, is_partner in merged]
    try:
        with _open(path, name, max_pixels) as container:
            stream = _video_stream(container, name)
            stream.thread_type = "AUTO"
            items = _decode(
                container,
                stream,
                info,
                plan,
                targets,
                max_samples,
                seek_gap_s,
                max_pixels,
                stats,
                with_next,
                partner,
            )
            yield from _with_next(items, period) if with_next else items
    except MemoryError:
        raise _out_of_memory(name) from None


@dataclass(frozen=True, eq=False)
class _NextFrame:
    """A frame decoded only because it follows a sampled one (internal to :func:`iter_frames`)."""

    frame: SampledFrame


def _with_next(
    items: Iterator[SampledFrame | DecodeGap | _NextFrame], period: float
) -> Iterator[SampledFrame | DecodeGap]:
    """Attach to each sampled frame the decoded frame that follows it, when it is that frame.

    Frames decoded only for this (:class:`_NextFrame`) are consumed here; a sampled frame that
    directly follows another sampled frame is both (every frame, first N, dense plans).
    """
    pending: SampledFrame | None = None

    def follows(item: SampledFrame) -> bool:
        gap = item.timestamp_s - pending.timestamp_s
        return item.index == pending.index + 1 or 0 < gap < 1.5 * period

    for item in items:
        if isinstance(item, _NextFrame):
            if pending is not None and follows(item.frame):
                yield SampledFrame(
                    pending.index, pending.timestamp_s, pending.image, item.frame.image
                )
                pending = None
            continue
        if isinstance(item, DecodeGap):
            if pending is not None:
                yield pending
                pending = None
            yield item
            continue
        if pending is not None:
            nxt = item.image if follows(item) else None
            yield SampledFrame(pending.index, pending.timestamp_s, pending.image, nxt)
        pending = item
    if pending is not None:
        yield pending


def _decode(
    container,
    stream,
    info,
    plan,
    targets,
    max_samples,
    seek_gap_s,
    max_pixels,
    stats,
    with_next=False,
    partner=None,
):
    """The decode loop of :func:`iter_frames` (the container is open, the stream chosen).

    ``partner[k]`` marks targets that only ask for the frame after a sample: a frame that meets
    nothing but such targets comes out as :class:`_NextFrame`. With ``with_next``, count-based
    plans also decode one frame past their last sample.
    """
    time_base = float(stream.time_base) if stream.time_base else 0.0
    start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    half_period = 0.5 / info.fps if info.fps > 0 else 0.0
    limit = min(int(plan.value), max_samples) if plan.kind == "first" else max_samples
    next_target = 0
    ordinal = 0
    seeked = False
    last_keyframe_s: float | None = None
    seek_target_s: float | None = None  # set right after a seek, until the landing packet is seen
    can_seek = bool(time_base)
    failed_demux = False

    def packet_time(packet: av.Packet) -> float | None:
        ts = packet.pts if packet.pts is not None else packet.dts
        return ts * time_base - start if ts is not None and time_base else None

    def frame_time(frame: av.VideoFrame, ordinal: int) -> float:
        if frame.pts is not None and time_base:
            return frame.pts * time_base - start
        return ordinal / info.fps if info.fps > 0 else float(ordinal)

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            stats.reached_end = True
            break
        except MemoryError:
            raise
        except av.FFmpegError as exc:
            yield DecodeGap(stats.last_timestamp_s, f"reading stopped: {_reason(exc)}")
            failed_demux = True
            break
        stats.packets += 1
        if packet.is_keyframe and (pt := packet_time(packet)) is not None:
            if seek_target_s is not None:  # learn from where the seek actually landed
                stats.keyframe_interval_s = max(stats.keyframe_interval_s, seek_target_s - pt)
            elif last_keyframe_s is not None and pt > last_keyframe_s:
                stats.keyframe_interval_s = max(stats.keyframe_interval_s, pt - last_keyframe_s)
            last_keyframe_s, seek_target_s = pt, None
        try:
            frames = packet.decode()
        except MemoryError:
            raise
        except av.FFmpegError as exc:
            yield DecodeGap(
                stats.last_timestamp_s, f"a packet could not be decoded: {_reason(exc)}"
            )
            continue
        for frame in frames:
            _check_size(frame.width, frame.height, max_pixels, info.name)
            t = frame_time(frame, ordinal)
            index = round(t * info.fps) if (seeked and info.fps > 0) else ordinal
            ordinal += 1
            stats.frames_decoded += 1
            stats.last_timestamp_s = t
            if frame.is_corrupt:
                yield DecodeGap(t, "a corrupt frame was skipped")
                continue
            if targets is None:
                if stats.frames_sampled >= limit:  # with_next: the frame after the last sample
                    yield _NextFrame(SampledFrame(index, t, _upright(frame)))
                    return
                stats.frames_sampled += 1
                yield SampledFrame(index, t, _upright(frame))
                if stats.frames_sampled >= limit and not with_next:
                    return
                continue
            if t + half_period < targets[next_target]:
                continue
            first = next_target
            while next_target < len(targets) and targets[next_target] <= t + half_period:
                next_target += 1
            if partner is not None and all(partner[first:next_target]):
                yield _NextFrame(SampledFrame(index, t, _upright(frame)))
            else:
                stats.frames_sampled += 1
                yield SampledFrame(index, t, _upright(frame))
            if next_target >= len(targets):
                return
            jump = targets[next_target] - t
            worth = (
                SEEK_KEYFRAME_INTERVALS * stats.keyframe_interval_s
                if stats.keyframe_interval_s > 0
                else seek_gap_s
            )
            if can_seek and jump > max(worth, 4 * half_period):
                try:
                    container.seek(
                        int((targets[next_target] + start) / time_base),
                        stream=stream,
                        backward=True,
                        any_frame=False,
                    )
                except av.FFmpegError:  # not seekable after all: keep decoding in order
                    can_seek = False
                    continue
                stats.seeks += 1
                seeked = True
                seek_target_s, last_keyframe_s = targets[next_target], None
                break
    if targets is not None and partner is not None:  # frames after samples do not count here
        left = [
            t for t, p in zip(targets[next_target:], partner[next_target:], strict=True) if not p
        ]
    else:
        left = targets[next_target:] if targets is not None else []
    unreached = bool(left) and not failed_demux
    if unreached and 0 < left[0] < info.duration_s:
        yield DecodeGap(
            stats.last_timestamp_s,
            f"the video stream ends, before the {info.duration_s:.1f} s its header declares; "
            "later times could not be sampled",
        )


def read_frames(path: Path, info: VideoInfo, plan: SamplingPlan, **kwargs) -> list[SampledFrame]:
    """All sampled frames as a list (tests, small clips); the pipeline streams instead."""
    frames = [f for f in iter_frames(path, info, plan, **kwargs) if isinstance(f, SampledFrame)]
    if not frames:
        raise VideoTooShortError(f"{info.name}: no frame could be sampled")
    return frames
