"""The decoder child (``python -m detector.io.isolated.child FD``): it caps its own memory and CPU
time, decodes the frames (and audio) the parent asks for and writes them to the pipe; the parent
side is :mod:`detector.io.isolated.decoder`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from detector.audio.decode import child_message
from detector.errors import DetectorError, NoVideoStreamError, VideoReadError, VideoTooLargeError
from detector.io.decode import DecodeStats, iter_frames
from detector.io.isolated.decoder import HEADER_LIMIT
from detector.io.probe import SamplingPlan, probe
from detector.types import SampledFrame


def limit_resources(limits: dict) -> None:
    try:
        import resource
    except ImportError:  # not POSIX: no caps, the parent's time limits still hold
        return
    memory = int(limits["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(limits["total_s"] * (os.cpu_count() or 1)) + 60  # all decoder threads busy
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # the decoder never writes files
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _affordable_pixels(memory_mb: int) -> int | None:
    """The largest frame (in pixels) this process can still decode under its memory cap.

    A frame-threaded decoder holds a YUV frame per thread plus reference frames, and the sampled
    frame is converted to RGB: about ``3 + 1.5 * (threads + 6)`` bytes per pixel (measured: 8K
    H.264 on two cores needs about 550 MB). None where the process size cannot be read.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    used = re.search(r"VmSize:\s+(\d+) kB", status)
    if used is None:
        return None
    free = memory_mb * 2**20 - int(used.group(1)) * 1024
    threads = min(16, (os.cpu_count() or 1) + 1)
    return max(0, int(free / (3 + 1.5 * (threads + 6))))


def _child_main(fd: int) -> int:
    """Read the job from stdin, then stream info, frames, gaps and "done" (or "error") to ``fd``.

    Each message is a 4-byte big-endian length and a JSON object; a "frame" message is followed by
    exactly ``height * width * 3`` bytes of RGB pixels.
    """
    pipe = os.fdopen(fd, "wb")

    def send(header: dict, *pixels: np.ndarray | None) -> None:
        body = json.dumps(header).encode("utf-8")
        pipe.write(len(body).to_bytes(4, "big") + body)
        for image in pixels:
            if image is not None:
                pipe.write(memoryview(np.ascontiguousarray(image, dtype=np.uint8)).cast("B"))
        pipe.flush()

    job = json.loads(sys.stdin.buffer.read(HEADER_LIMIT))
    name, path = job["name"], Path(job["path"])
    limits = job["limits"]

    def send_audio() -> None:  # one header, then exactly n_samples little-endian float32
        header, samples = child_message(path, name, job["audio"])
        send(header)
        pipe.write(memoryview(np.ascontiguousarray(samples, dtype="<f4")).cast("B"))
        pipe.flush()

    try:
        limit_resources(limits)
        max_pixels = int(limits["max_pixels"])
        affordable = _affordable_pixels(int(limits["memory_mb"]))
        memory_bound = affordable is not None and affordable < max_pixels
        if memory_bound:
            max_pixels = affordable
        try:
            info = probe(path, name=name, max_pixels=max_pixels)
        except VideoTooLargeError as exc:
            if not memory_bound:
                raise
            memory = f"{limits['memory_mb']} MB of decoder memory"
            raise VideoTooLargeError(f"{exc} (all that {memory} allows)") from None
        send({"type": "info", "info": asdict(info)})
        plan = SamplingPlan(job["plan"][0], float(job["plan"][1]))
        stats = DecodeStats()
        for item in iter_frames(
            path,
            info,
            plan,
            max_samples=int(job["max_samples"]),
            max_pixels=max_pixels,
            stats=stats,
            with_next=bool(job.get("with_next")),
        ):
            if isinstance(item, SampledFrame):
                h, w = item.image.shape[:2]
                header = {"index": item.index, "timestamp_s": item.timestamp_s, "shape": [h, w]}
                nxt = item.next_image
                if nxt is not None and nxt.shape[:2] != (h, w):  # a mid-stream size change
                    nxt = None
                header["next"] = [h, w] if nxt is not None else None
                send({"type": "frame", **header}, item.image, nxt)
            else:
                send({"type": "gap", **asdict(item)})
        send({"type": "done", "stats": asdict(stats)})
        if job.get("audio"):
            send_audio()
    except BrokenPipeError:  # the parent stopped listening
        return 0
    except DetectorError as exc:
        if isinstance(exc, NoVideoStreamError) and job.get("audio"):
            send_audio()  # an audio-only file: its voice can still be analysed
        send({"type": "error", "status": exc.status, "message": str(exc)})
    except MemoryError:
        message = f"{name}: decoding needed more than the {limits['memory_mb']} MB allowed"
        send({"type": "error", "status": VideoTooLargeError.status, "message": message})
    except Exception as exc:  # a decoder failure on this file; say what kind, not a traceback
        message = f"{name}: the decoder failed on this file ({type(exc).__name__})"
        send({"type": "error", "status": VideoReadError.status, "message": message})
    finally:
        with contextlib.suppress(BrokenPipeError):
            pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(int(sys.argv[1])))
