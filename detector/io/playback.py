"""A copy of an analysed video that a browser can play, made only when the original cannot play.

Browsers play H.264, VP8, VP9 and AV1 in MP4 or WebM; anything else (MPEG-4 Part 2, MJPEG, HEVC,
...) is re-encoded to H.264 with PyAV's bundled libx264, scaled down to at most 720 px high,
without sound. The bytes go in and out through pipes to a short-lived child process with a memory
cap and a time limit, as in :mod:`detector.io.isolated.decoder`: nothing is written to disk, and a file that
makes the decoder misbehave ends as a typed error, not a hung app.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

from detector.errors import DecodeTimeoutError, VideoReadError
from detector.types import VideoInfo

PLAYABLE = {  # FFmpeg demuxer name -> codecs browsers play in it
    "mov": {"h264", "av1"},
    "mp4": {"h264", "av1"},
    "matroska": {"vp8", "vp9", "av1"},
    "webm": {"vp8", "vp9", "av1"},
}
MAX_HEIGHT = 720
_ROOT = Path(__file__).resolve().parents[2]


def browser_can_play(info: VideoInfo) -> bool:
    """Whether Chromium-family and Firefox browsers play the file as it is."""
    demuxers = info.container.split(",")
    return any(info.codec in PLAYABLE.get(d.strip(), set()) for d in demuxers)


def playable_copy(data: bytes, timeout_s: float = 300.0, memory_mb: int = 2048) -> bytes:
    """An H.264 MP4 of ``data``'s first video stream, made in a capped child process.

    Raises:
        DecodeTimeoutError: the re-encoding took longer than ``timeout_s``.
        VideoReadError: the child failed (the message says how).
    """
    extra = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": str(_ROOT) + (os.pathsep + extra if extra else "")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "detector.io.playback", str(memory_mb), str(int(timeout_s))],
            input=data,
            capture_output=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DecodeTimeoutError(
            f"making a playable copy took longer than {timeout_s:.0f} s and was stopped"
        ) from None
    if done.returncode != 0 or not done.stdout:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise VideoReadError(f"a playable copy could not be made: {last[0]}")
    return done.stdout


def _transcode(data: bytes) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(out, mode="w", format="mp4") as dst:
        stream = src.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        enc = dst.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
        h = stream.codec_context.height
        w = stream.codec_context.width
        scale = min(1.0, MAX_HEIGHT / max(1, h))
        enc.width, enc.height = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
        enc.pix_fmt = "yuv420p"
        enc.options = {"preset": "veryfast", "crf": "26"}
        for frame in src.decode(stream):
            frame = frame.reformat(width=enc.width, height=enc.height, format="yuv420p")
            frame.pts = None
            for packet in enc.encode(frame):
                dst.mux(packet)
        for packet in enc.encode():
            dst.mux(packet)
    return out.getvalue()


def _child(memory_mb: int, cpu_s: int) -> int:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s * (os.cpu_count() or 1), cpu_s * 4 + 10))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no files: bytes come and go by pipe
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    data = sys.stdin.buffer.read()
    try:
        result = _transcode(data)
    except Exception as exc:  # the parent only needs the kind of failure, in one line
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(_child(int(sys.argv[1]), int(sys.argv[2])))
