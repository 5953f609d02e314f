"""Decode untrusted video files in a separate process with a memory cap and time limits.

FFmpeg is robust but a hostile or broken file can still make a decoder hang or allocate without
bound. Decoding therefore runs in a short-lived child process (spawned, so it shares no threads or
locks with the app) whose address space is capped with ``RLIMIT_AS``; the parent waits for each
frame with a stall timeout and for the whole video with a total budget. A hang, a crash or an
out-of-memory in the decoder ends as a typed error (``timeout``, ``too_large``, ``unreadable``) and
the child is killed; the app itself never goes down with it.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from detector import errors
from detector.errors import DecodeTimeoutError, DetectorError, VideoReadError, VideoTooLargeError
from detector.types import DecodeGap, SampledFrame, VideoInfo
from detector.video import MAX_PIXELS, SamplingPlan, iter_frames, probe


@dataclass(frozen=True)
class DecodeLimits:
    """Limits for decoding one untrusted file.

    Attributes:
        total_s: budget for the whole decode (probe and all sampled frames).
        stall_s: longest wait for the next frame before the decoder is declared hung.
        memory_mb: address-space cap of the decoder process.
        max_pixels: frames larger than this are refused before decoding (decompression bombs).
    """

    total_s: float = 900.0
    stall_s: float = 60.0
    memory_mb: int = 4096
    max_pixels: int = MAX_PIXELS


def _limit_memory(memory_mb: int) -> None:
    try:
        import resource
    except ImportError:  # not POSIX: no cap, the time limits still hold
        return
    cap = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _worker(conn, path: str, name: str, plan: SamplingPlan, max_samples: int, limits: DecodeLimits):
    """Child process: probe, then stream the sampled frames back through ``conn``."""
    try:
        _limit_memory(limits.memory_mb)
        info = probe(Path(path), name=name, max_pixels=limits.max_pixels)
        conn.send(("info", info))
        for item in iter_frames(Path(path), info, plan, max_samples=max_samples):
            conn.send(("item", item))
        conn.send(("done", None))
    except DetectorError as exc:
        conn.send(("error", (type(exc).__name__, str(exc))))
    except MemoryError:
        conn.send(
            (
                "error",
                (
                    "VideoTooLargeError",
                    f"{name}: decoding needed more than the {limits.memory_mb} MB allowed",
                ),
            )
        )
    except BrokenPipeError:  # the parent gave up on us
        pass
    finally:
        conn.close()


class IsolatedDecoder:
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
        max_samples: int = 3600,
        limits: DecodeLimits | None = None,
    ) -> None:
        self.path, self.name, self.plan = Path(path), name, plan
        self.max_samples = max_samples
        self.limits = limits or DecodeLimits()
        self.info: VideoInfo | None = None
        self._proc = None
        self._conn = None
        self._deadline = 0.0

    def __enter__(self) -> IsolatedDecoder:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        self._conn = parent
        self._proc = ctx.Process(
            target=_worker,
            args=(child, str(self.path), self.name, self.plan, self.max_samples, self.limits),
            daemon=True,
        )
        self._deadline = time.monotonic() + self.limits.total_s
        self._proc.start()
        child.close()
        try:
            kind, payload = self._receive()
            if kind != "info":
                raise VideoReadError(f"{self.name}: the decoder sent no video information")
            self.info = payload
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def __iter__(self) -> Iterator[SampledFrame | DecodeGap]:
        while True:
            kind, payload = self._receive()
            if kind == "done":
                return
            yield payload

    def _receive(self):
        wait = min(self.limits.stall_s, self._deadline - time.monotonic())
        if wait <= 0 or not self._conn.poll(wait):
            self._stop()
            total = time.monotonic() >= self._deadline
            raise DecodeTimeoutError(
                f"{self.name}: decoding "
                + (
                    f"took longer than the {self.limits.total_s:.0f} s allowed"
                    if total
                    else f"stalled for {self.limits.stall_s:.0f} s"
                )
                + "; the decoder was stopped"
            )
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(timeout=5)
            code = self._proc.exitcode
            self._stop()
            raise VideoReadError(
                f"{self.name}: the decoder crashed on this file (exit code {code}); "
                "it is probably corrupt or crafted"
            ) from None
        if kind == "error":
            cls_name, message = payload
            cls = getattr(errors, cls_name, VideoReadError)
            self._stop()
            raise cls(message)
        return kind, payload

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=5)
            self._proc.close()
            self._proc = None


class InProcessDecoder:
    """The same interface without a child process (trusted files, tests, benchmarks)."""

    def __init__(
        self,
        path: Path,
        name: str,
        plan: SamplingPlan,
        max_samples: int = 3600,
        limits: DecodeLimits | None = None,
    ) -> None:
        self.path, self.name, self.plan, self.max_samples = Path(path), name, plan, max_samples
        self.limits = limits or DecodeLimits()
        self.info: VideoInfo | None = None

    def __enter__(self) -> InProcessDecoder:
        self.info = probe(self.path, name=self.name, max_pixels=self.limits.max_pixels)
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __iter__(self) -> Iterator[SampledFrame | DecodeGap]:
        return iter_frames(self.path, self.info, self.plan, max_samples=self.max_samples)


__all__ = ["DecodeLimits", "InProcessDecoder", "IsolatedDecoder", "VideoTooLargeError"]
