"""Decode untrusted video files in a separate process with a memory cap and time limits.

FFmpeg is robust but a hostile or broken file can still make a decoder hang or allocate without
bound. Decoding therefore runs in a short-lived child process whose address space is capped with
``RLIMIT_AS`` (and CPU time with ``RLIMIT_CPU``, so an orphan cannot spin forever); the parent waits
for each message with a stall timeout and counts its waiting against a total budget. A hang, a crash
or an out-of-memory in the decoder ends as a typed error (``timeout``, ``too_large``,
``unreadable``) and the child is killed; the app itself never goes down with it.

The child is started as ``python -m detector.io.isolated.child`` rather than through ``multiprocessing``:
a spawned ``multiprocessing`` child re-imports the parent's ``__main__`` (the Streamlit runner,
a script that imports torch ...), while this child imports only PyAV and NumPy and starts in a
fraction of a second. Nothing the child sends is unpickled: messages are length-prefixed JSON
headers and raw pixel bytes of a size the parent checked first, so even a compromised decoder
cannot run code in the app through the channel; every read waits under the stall timeout, so a
child that freezes halfway through a message cannot hang the app either. POSIX only (pipes,
``select``, resource limits).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from detector.audio.decode import (
    AudioLimits,
    decode_audio,
    not_read,
    track_from_message,
)
from detector.audio.records import AudioTrack
from detector.errors import (
    DecodeTimeoutError,
    DetectorError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoReadError,
    VideoTooLargeError,
    VideoTooShortError,
)
from detector.io.decode import DecodeStats, iter_frames
from detector.io.isolated import spares
from detector.io.probe import MAX_PIXELS, MAX_SAMPLES, SamplingPlan, check_file, probe
from detector.settings import PROJECT_ROOT
from detector.types import DecodeGap, SampledFrame, VideoInfo

HEADER_LIMIT = 1 << 16  # bytes; headers are small JSON documents, frames follow as raw pixels
_ERRORS = {
    cls.status: cls
    for cls in (
        VideoReadError,
        NoVideoStreamError,
        UnsupportedCodecError,
        VideoTooShortError,
        VideoTooLargeError,
        DecodeTimeoutError,
    )
}


@dataclass(frozen=True)
class DecodeLimits:
    """Limits for decoding one untrusted file.

    Attributes:
        total_s: budget for the whole decode (probe and all sampled frames), counted while the
            analysis waits for the decoder (face detection time in the app is not counted).
        stall_s: longest wait for the next frame before the decoder is declared hung.
        memory_mb: address-space cap of the decoder process. The child needs about 250 MB to
            start; a video whose frames would not fit in the rest is refused before decoding
            (an 8K stream needs about 550 MB more).
        max_pixels: frames larger than this are refused before decoding (decompression bombs).
    """

    total_s: float = 900.0
    stall_s: float = 60.0
    memory_mb: int = 4096
    max_pixels: int = MAX_PIXELS


class InProcessDecoder:
    """The same interface without a child process (trusted files, tests, benchmarks)."""

    def __init__(
        self,
        path: Path,
        name: str,
        plan: SamplingPlan,
        max_samples: int = MAX_SAMPLES,
        limits: DecodeLimits | None = None,
        with_next: bool = False,
        audio: AudioLimits | None = None,
    ) -> None:
        self.path, self.name, self.plan, self.max_samples = Path(path), name, plan, max_samples
        self.limits = limits or DecodeLimits()
        self.with_next = with_next
        self.audio_limits = audio
        self.info: VideoInfo | None = None
        self.stats: DecodeStats | None = None
        self._audio: AudioTrack | None = None

    def __enter__(self) -> InProcessDecoder:
        self.info = probe(self.path, name=self.name, max_pixels=self.limits.max_pixels)
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __iter__(self) -> Iterator[SampledFrame | DecodeGap]:
        self.stats = DecodeStats()
        return iter_frames(
            self.path,
            self.info,
            self.plan,
            max_samples=self.max_samples,
            max_pixels=self.limits.max_pixels,
            stats=self.stats,
            with_next=self.with_next,
        )

    def read_audio(self) -> AudioTrack | None:
        """The first audio track, decoded to 16 kHz mono (None unless ``audio`` limits were
        given). Call it after the frames, or after entering failed for want of a video stream
        (an audio-only file); a bad track is a worded state, never an exception."""
        if self.audio_limits is None:
            return None
        if self._audio is None:
            try:
                self._audio = decode_audio(self.path, self.name, self.audio_limits)
            except DetectorError as exc:
                self._audio = not_read(str(exc))
        return self._audio


class IsolatedDecoder(InProcessDecoder):
    """Context manager: ``info`` after entering, then iterate sampled frames and decode gaps.

    Example:
        >>> with IsolatedDecoder(path, "clip.mp4", plan) as dec:  # doctest: +SKIP
        ...     print(dec.info.fps)
        ...     for item in dec: ...
    """

    def __init__(
        self,
        path: Path,
        name: str,
        plan: SamplingPlan,
        max_samples: int = MAX_SAMPLES,
        limits: DecodeLimits | None = None,
        with_next: bool = False,
        audio: AudioLimits | None = None,
    ) -> None:
        super().__init__(path, name, plan, max_samples, limits, with_next, audio)
        self._proc: subprocess.Popen | None = None
        self._pipe = None  # the read end of the child's message pipe
        self._waited_s = 0.0

    @property
    def pid(self) -> int | None:
        """The decoder process while it runs (None before entering and after leaving)."""
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> IsolatedDecoder:
        # What the first 4 KB already refuses (an image, text, a bomb header) needs no process.
        check_file(self.path, self.name, self.limits.max_pixels)
        job = {
            "path": str(self.path.resolve()),
            "name": self.name,
            "plan": [self.plan.kind, self.plan.value],
            "max_samples": self.max_samples,
            "with_next": self.with_next,
            "limits": asdict(self.limits),
            "audio": asdict(self.audio_limits) if self.audio_limits else None,
        }
        child = spares.start("decoder", *decoder_command(), pipe=True)
        self._proc, read_fd = child.proc, child.read_fd
        self._pipe = os.fdopen(read_fd, "rb", buffering=0)
        try:
            with contextlib.suppress(BrokenPipeError):  # a child that died at once: see below
                self._proc.stdin.write(json.dumps(job).encode("utf-8"))
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
            header = self._receive()
            if header.get("type") == "audio":  # sent first only when there is no video stream
                self._audio = self._audio_track(header)
                header = self._receive()
            try:
                self.info = _info_from(header["info"]) if header.get("type") == "info" else None
            except (KeyError, TypeError, ValueError):
                self.info = None
            if self.info is None:
                raise VideoReadError(f"{self.name}: the decoder sent no video information")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def __iter__(self) -> Iterator[SampledFrame | DecodeGap]:
        while True:
            header = self._receive()
            try:
                kind = header["type"]
                if kind == "done":
                    self.stats = DecodeStats(**header["stats"])
                    return
                if kind == "gap":
                    item = DecodeGap(float(header["after_timestamp_s"]), str(header["message"]))
                elif kind == "frame":
                    item = self._frame(header)
                else:
                    raise ValueError(kind)
            except (KeyError, TypeError, ValueError):
                self._stop()
                raise VideoReadError(f"{self.name}: the decoder sent a malformed message") from None
            yield item

    def read_audio(self) -> AudioTrack | None:
        """The audio track the child decodes after the frames (see the parent class)."""
        if self.audio_limits is None or self._audio is not None:
            return self._audio
        if self._pipe is None:
            return not_read(f"{self.name}: the audio was not read (the decoder had stopped)")
        try:
            header = self._receive()
            if header.get("type") != "audio":
                raise VideoReadError(f"{self.name}: the decoder sent no audio")
            self._audio = self._audio_track(header)
        except DetectorError as exc:
            self._audio = not_read(f"the audio could not be read: {exc}")
        return self._audio

    def _audio_track(self, header: dict) -> AudioTrack:
        """Receive the samples announced by an "audio" header into an array of checked size."""
        try:
            n = int(header["n_samples"])
            if not 0 <= n <= self.audio_limits.max_samples:
                raise ValueError(n)
            samples = np.empty(n, "<f4")
            self._read_exactly(memoryview(samples).cast("B"))
            return track_from_message(header, samples.astype(np.float32, copy=False))
        except (KeyError, TypeError, ValueError):
            self._stop()
            raise VideoReadError(f"{self.name}: the decoder sent a malformed message") from None

    def _frame(self, header: dict) -> SampledFrame:
        """Receive the pixels announced by ``header`` into an array of the checked size."""
        index, timestamp_s = int(header["index"]), float(header["timestamp_s"])
        h, w = (int(v) for v in header["shape"])
        if h <= 0 or w <= 0 or h * w > self.limits.max_pixels:
            self._stop()
            raise VideoTooLargeError(f"{self.name}: the decoder announced a {w}x{h} frame")
        image = np.empty((h, w, 3), np.uint8)
        self._read_exactly(memoryview(image).cast("B"))
        next_image = None
        if header.get("next") is not None:
            if not self.with_next or [int(v) for v in header["next"]] != [h, w]:
                self._stop()
                raise VideoReadError(f"{self.name}: the decoder sent a malformed message")
            next_image = np.empty((h, w, 3), np.uint8)
            self._read_exactly(memoryview(next_image).cast("B"))
        return SampledFrame(index, timestamp_s, image, next_image)

    def _read_exactly(self, view: memoryview) -> None:
        """Fill ``view`` from the pipe; every wait for more bytes is under the time limits."""
        got = 0
        while got < len(view):
            self._wait()
            try:
                n = self._pipe.readinto(view[got:])
            except OSError as exc:
                raise self._crashed() from exc
            if not n:
                raise self._crashed()
            got += n

    def _wait(self) -> None:
        """Block until the child has sent something, within the stall and total limits."""
        budget = self.limits.total_s - self._waited_s
        wait = min(self.limits.stall_s, budget)
        t0 = time.monotonic()
        ready = wait > 0 and bool(select.select([self._pipe], [], [], wait)[0])
        self._waited_s += time.monotonic() - t0
        if ready:
            return
        self._stop()
        hung = budget > self.limits.stall_s
        raise DecodeTimeoutError(
            f"{self.name}: decoding "
            + (
                f"stalled for {self.limits.stall_s:g} s"
                if hung
                else f"took longer than the {self.limits.total_s:g} s allowed"
            )
            + "; the decoder was stopped"
        )

    def _receive(self) -> dict:
        """The next message header (a length-prefixed JSON object); errors are raised."""
        prefix = bytearray(4)
        self._read_exactly(memoryview(prefix))
        size = int.from_bytes(prefix, "big")
        if size > HEADER_LIMIT:
            self._stop()
            raise VideoReadError(f"{self.name}: the decoder sent an oversized message")
        body = bytearray(size)
        self._read_exactly(memoryview(body))
        try:
            header = json.loads(body)
        except ValueError:
            header = None
        if not isinstance(header, dict):
            self._stop()
            raise VideoReadError(f"{self.name}: the decoder sent an unreadable message")
        if header.get("type") == "error":
            self._stop()
            cls = _ERRORS.get(header.get("status"), VideoReadError)
            raise cls(str(header.get("message", "")))
        return header

    def _crashed(self) -> VideoReadError:
        code = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(timeout=5)
        self._stop()
        if code == -signal.SIGKILL:  # not ours (we have not killed it yet): the OOM killer
            return VideoTooLargeError(
                f"{self.name}: the decoder was killed, probably for using too much memory"
            )
        if code == -signal.SIGXCPU:
            return DecodeTimeoutError(f"{self.name}: the decoder used up its CPU time limit")
        return VideoReadError(
            f"{self.name}: the decoder crashed on this file (exit code {code}); "
            "it is probably corrupt or crafted"
        )

    def _stop(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None


def decoder_command() -> tuple[list[str], dict[str, str]]:
    """The decoder child's command (the pipe's descriptor is appended) and environment."""
    return [sys.executable, "-m", "detector.io.isolated.child"], child_env()


def child_env() -> dict[str, str]:
    """A child's environment: this one, this package first on the import path, and two malloc
    arenas (per-thread arenas reserve address space the memory cap would count)."""
    return {**os.environ, "PYTHONPATH": child_python_path(), "MALLOC_ARENA_MAX": "2"}


def prepare_spare() -> None:
    """Start a decoder child now for the next file (:mod:`detector.io.isolated.spares`)."""
    spares.prepare("decoder", *decoder_command(), pipe=True)


def child_python_path() -> str:
    """The child's import path: this package first, then whatever the parent was given."""
    extra = os.environ.get("PYTHONPATH")
    return str(PROJECT_ROOT) + (os.pathsep + extra if extra else "")


def _info_from(data: dict) -> VideoInfo:
    """A :class:`VideoInfo` from the child's JSON, each field cast to its declared type."""
    casts = {"int": int, "float": float, "str": str}
    return VideoInfo(**{f.name: casts.get(f.type, str)(data[f.name]) for f in fields(VideoInfo)})


# ---------------------------------------------------------------- the child process
