"""Decode only the frames a sampling plan asks for (:mod:`detector.io.probe` makes the plan).

Long jumps seek instead of decoding everything in between. A seek lands on the keyframe before the
target, so it only pays when the target is further away than a keyframe interval: the interval is
learned while decoding (and from where seeks actually land), and the reader seeks when the next
target is more than 1.5 intervals ahead. A one-hour clip sampled 600 times therefore decodes a small
share of its frames; :class:`DecodeStats` counts what was decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av

from detector.errors import (
    VideoTooShortError,
)
from detector.io.probe import (
    MAX_PIXELS,
    MAX_SAMPLES,
    SamplingPlan,
    check_size,
    open_container,
    out_of_memory_error,
    reason_of,
    target_times,
    upright_rgb,
    video_stream_of,
)
from detector.types import DecodeGap, SampledFrame, VideoInfo

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
    targets = target_times(plan, info, max_samples)
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
        with open_container(path, name, max_pixels) as container:
            stream = video_stream_of(container, name)
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
        raise out_of_memory_error(name) from None


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
            yield DecodeGap(stats.last_timestamp_s, f"reading stopped: {reason_of(exc)}")
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
                stats.last_timestamp_s, f"a packet could not be decoded: {reason_of(exc)}"
            )
            continue
        for frame in frames:
            check_size(frame.width, frame.height, max_pixels, info.name)
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
                    yield _NextFrame(SampledFrame(index, t, upright_rgb(frame)))
                    return
                stats.frames_sampled += 1
                yield SampledFrame(index, t, upright_rgb(frame))
                if stats.frames_sampled >= limit and not with_next:
                    return
                continue
            if t + half_period < targets[next_target]:
                continue
            first = next_target
            while next_target < len(targets) and targets[next_target] <= t + half_period:
                next_target += 1
            if partner is not None and all(partner[first:next_target]):
                yield _NextFrame(SampledFrame(index, t, upright_rgb(frame)))
            else:
                stats.frames_sampled += 1
                yield SampledFrame(index, t, upright_rgb(frame))
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
