"""A corpus of hostile and broken inputs, generated on the spot (nothing third-party is stored).

``CASES`` maps a case name to a :class:`Case`: a generator ``make(tmp_dir) -> Path`` and the
outcome an analyst must see (the ``Analysis.status``, words the message must contain, and for
analysable cases a check of what is *right*, e.g. that faces are found once rotation is applied).
The tests (``tests/test_hostile.py``) and ``scripts/bad_input_table.py`` (the README table) both
run this one corpus, so the documentation cannot drift from what the code does.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from detector.io import synthetic
from detector.types import Analysis

# Small on purpose: every clip here is generated in well under a second (except the 8K one).
W, H, FPS, SECONDS, FACE = 320, 240, 10, 2.0, 120


@dataclass(frozen=True)
class Case:
    """One hostile input and the outcome an analyst must see.

    Attributes:
        title: what the input is, in the analyst's words (the README table's first column).
        make: writes the file into the given directory and returns its path.
        status: the expected ``Analysis.status``.
        says: words the message must contain (case-insensitive).
        check: extra assertions on the analysis (what is *right*, not just "no crash").
        display_name: the name the file is presented under (an upload's claimed name).
        cli: also run through the CLI in the test suite (every case that ends without a verdict
            at the reader, plus a few that load the networks: each such run takes seconds).
    """

    title: str
    make: Callable[[Path], Path]
    status: str
    says: tuple[str, ...] = ()
    check: Callable[[Analysis], None] | None = None
    display_name: str | None = None
    cli: bool = False


# ---------------------------------------------------------------- helpers


def face_images(n: int = round(SECONDS * FPS), width: int = W, height: int = H, **kw):
    """Synthetic frames with the astronaut's face, big enough to be followed as one person."""
    kw.setdefault("face_size", FACE)
    return synthetic.face_frames(width, height, n, **kw)


def face_clip(path: Path, seconds: float = SECONDS, width: int = W, height: int = H, **kw) -> Path:
    return synthetic.write_video(
        path, face_images(round(seconds * FPS), width, height, **kw), fps=FPS
    )


def encode(
    path: Path,
    frames,
    fps: int = FPS,
    codec: str = "libx264",
    options: dict | None = None,
    container_options: dict | None = None,
    times_ms=None,
    size: tuple[int, int] = (W, H),
) -> Path:
    """Encode RGB frames with codec options ``synthetic.write_video`` does not expose."""
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = int(times_ms[i]), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def mjpeg_avi(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """MJPEG in AVI: every frame is a JPEG of its own, so garbling one is a real decode error."""
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("mjpeg", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuvj420p"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _still(width: int = W, height: int = H) -> np.ndarray:
    return next(face_images(1, width, height))


# ---------------------------------------------------------------- generators


def zero_bytes(d: Path) -> Path:
    p = d / "empty.mp4"
    p.write_bytes(b"")
    return p


def truncated_mp4(d: Path) -> Path:
    full = face_clip(d / "full.mp4")
    data = full.read_bytes()
    full.unlink()
    p = d / "truncated.mp4"
    p.write_bytes(data[: len(data) // 2])
    return p


def truncated_download(d: Path) -> Path:
    """A "fast start" mp4 (index first) cut in half, like an interrupted download."""
    full = encode(
        d / "full.mp4",
        face_images(round(4 * FPS)),
        options={"preset": "ultrafast"},
        container_options={"movflags": "+faststart"},
    )
    data = full.read_bytes()
    full.unlink()
    p = d / "partial.mp4"
    p.write_bytes(data[: len(data) // 2])
    return p


def random_bytes(d: Path) -> Path:
    p = d / "noise.mp4"
    p.write_bytes(np.random.default_rng(0).bytes(64_000))
    return p


def png_renamed(d: Path) -> Path:
    p = d / "photo.mp4"
    p.write_bytes(cv2.imencode(".png", _still()[:, :, ::-1])[1].tobytes())
    return p


def jpeg_renamed(d: Path) -> Path:
    p = d / "photo2.mp4"
    p.write_bytes(cv2.imencode(".jpg", _still()[:, :, ::-1])[1].tobytes())
    return p


def text_file(d: Path) -> Path:
    p = d / "notes.mp4"
    p.write_text("This is not a video, just some notes.\n" * 40, encoding="utf-8")
    return p


def hls_playlist(d: Path) -> Path:
    """An HLS playlist named .mp4 that points at a local file (FFmpeg's classic SSRF/file leak)."""
    secret = d / "secret.txt"
    secret.write_text("do not leak\n", encoding="utf-8")
    p = d / "playlist.mp4"
    p.write_text(
        f"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile://{secret}\n#EXT-X-ENDLIST\n",
        encoding="utf-8",
    )
    return p


def audio_only(d: Path) -> Path:
    p = d / "voice.mp4"
    with av.open(str(p), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        tone = np.sin(np.arange(1024) / 8.0).astype(np.float32)[None] * 0.1
        for _ in range(40):
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return p


def single_frame(d: Path) -> Path:
    return synthetic.write_video(d / "one_frame.mp4", [_still()], fps=25)


def short_clip(d: Path) -> Path:
    return synthetic.write_video(d / "short.mp4", face_images(5), fps=25)


def webm_no_frame_count(d: Path) -> Path:
    """VP8 in WebM: the container declares no frame count (and often no stream duration)."""
    frames = face_images()
    return encode(d / "clip.webm", frames, codec="libvpx", options={"deadline": "realtime"})


def _claim_frames(path: Path, n_frames: int) -> Path:
    """Overwrite an AVI's stream header frame count (AVISTREAMHEADER.dwLength)."""
    data = bytearray(path.read_bytes())
    length_at = data.find(b"strh") + 8 + 32
    data[length_at : length_at + 4] = struct.pack("<I", n_frames)
    path.write_bytes(bytes(data))
    return path


def avi_lying_header(d: Path) -> Path:
    """An AVI whose stream header claims 1000 frames (100 s) for a 2 s clip."""
    return _claim_frames(mjpeg_avi(d / "liar.avi", list(face_images())), 1000)


def avi_lying_short(d: Path) -> Path:
    """An AVI whose header claims 100 s for two frames (0.2 s): too short, whatever it says."""
    return _claim_frames(mjpeg_avi(d / "liar_short.avi", list(face_images(2))), 1000)


def variable_frame_rate(d: Path) -> Path:
    """Frames at irregular times (bursts and pauses), as phones record them."""
    gaps_ms = np.random.default_rng(1).choice([20, 33, 40, 100, 250], size=40)
    times_ms = np.concatenate([[0], np.cumsum(gaps_ms)[:-1]])
    frames = face_images(len(times_ms))
    return encode(d / "vfr.mp4", frames, fps=30, options={"preset": "ultrafast"}, times_ms=times_ms)


def rotated(d: Path) -> Path:
    """A phone clip stored sideways with display-matrix rotation: upright only once rotated."""
    sideways = (np.ascontiguousarray(np.rot90(f, k=-1)) for f in face_images())
    return synthetic.write_video(d / "rotated.mp4", sideways, fps=FPS, rotation_deg=90)


def portrait(d: Path) -> Path:
    return face_clip(d / "portrait.mp4", width=216, height=384)


def grayscale(d: Path) -> Path:
    gray = (
        np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2) for f in face_images()
    )
    return synthetic.write_video(d / "gray.mkv", gray, fps=FPS, codec="ffv1", pix_fmt="gray")


def very_high_resolution(d: Path) -> Path:
    """8K UHD (7680x4320), two frames at 2 fps."""
    frames = synthetic.face_frames(7680, 4320, 2, face_size=1400)
    options = {"preset": "ultrafast", "tune": "zerolatency"}
    return encode(d / "8k.mp4", frames, fps=2, options=options, size=(7680, 4320))


def very_long(d: Path) -> Path:
    """One hour at 4 fps and 32x32 pixels, a keyframe every 2 s (14,400 frames)."""
    bg = synthetic.background(32, 32, seed=5)
    frames = (np.roll(bg, i % 32, axis=1) for i in range(3600 * 4))
    options = {"preset": "ultrafast", "g": "8", "sc_threshold": "0"}
    return encode(d / "hour.mp4", frames, fps=4, options=options, size=(32, 32))


def no_face(d: Path) -> Path:
    return synthetic.blank_clip(d / "landscape.mp4", seconds=SECONDS, fps=FPS, size=(W, H))


def crowd(d: Path) -> Path:
    return face_clip(d / "crowd.mp4", width=1280, height=360, n_faces=8, face_size=120)


def tiny_faces(d: Path) -> Path:
    """Faces about 30x38 px in a 1280x720 frame (15 px after the detector's downscale to 640)."""
    return face_clip(d / "tiny.mp4", width=1280, height=720, face_size=90)


def border_faces(d: Path) -> Path:
    """A face cut by the left edge of the frame (a third of it outside)."""
    face = synthetic.astronaut_face(120)
    bg = synthetic.background(W, H, seed=2)
    frames = []
    for i in range(round(SECONDS * FPS)):
        img = bg.copy()
        img[60 + i : 180 + i, 0:80] = face[:, 40:]
        frames.append(img)
    return synthetic.write_video(d / "border.mp4", frames, fps=FPS)


def corrupt_frame(d: Path) -> Path:
    """MJPEG in AVI with the header of the frame at 1.0 s garbled: a real decode error."""
    frames = list(face_images())
    p = mjpeg_avi(d / "corrupt.avi", frames)
    data = bytearray(p.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    target = starts[FPS]  # the frame sampled at t = 1.0 s
    data[target : target + 600] = np.random.default_rng(3).bytes(600)
    p.write_bytes(bytes(data))
    return p


def path_like_name(d: Path) -> Path:
    return face_clip(d / "ordinary.mp4")


def unicode_name(d: Path) -> Path:
    return face_clip(d / "видео 🎬 (1).mp4")


def zip_as_mp4(d: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("clip.mp4", face_clip(d / "inner.mp4").read_bytes())
    (d / "inner.mp4").unlink()
    p = d / "archive.mp4"
    p.write_bytes(buf.getvalue())
    return p


def y4m_bomb(d: Path) -> Path:
    """A YUV4MPEG2 header declaring 30000x30000 frames followed by a few bytes, named .mp4."""
    p = d / "bomb.mp4"
    p.write_bytes(b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 64)
    return p


def _y4m(path: Path, width: int, height: int, n_frames: int = 10) -> Path:
    """Raw YUV 4:2:0 frames of any size (H.264 encoders refuse the odd ones), mid-grey."""
    chroma = ((width + 1) // 2) * ((height + 1) // 2)
    frame = b"FRAME\n" + bytes([128]) * (width * height + 2 * chroma)
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame * n_frames)
    return path


def minuscule_frames(d: Path) -> Path:
    return _y4m(d / "tiny.y4m", 8, 8)


def extreme_aspect(d: Path) -> Path:
    return _y4m(d / "sliver.y4m", 8000, 2)


def named_pipe(d: Path) -> Path:
    """A FIFO that never delivers data (reading it would block forever)."""
    p = d / "pipe.mp4"
    os.mkfifo(p)
    return p


# ---------------------------------------------------------------- expectations


def _has_faces(min_tracks: int = 1, min_faces: int = 1):
    def check(a: Analysis) -> None:
        assert len(a.faces) >= min_faces, f"{len(a.faces)} faces"
        assert len(a.tracks) >= min_tracks, f"{len(a.tracks)} tracks"
        assert a.verdict is not None and 0.0 <= a.verdict.p_fake <= 1.0

    return check


def _rotated_check(a: Analysis) -> None:
    assert a.video.rotation_deg in (90, 270)
    assert a.video.display_size == (W, H)  # stored 240x320, shown 320x240
    _has_faces()(a)


def _portrait_check(a: Analysis) -> None:
    assert a.video.display_size == (216, 384)
    _has_faces()(a)


def _no_frame_count_check(a: Analysis) -> None:
    assert a.video.frame_count_source != "container"
    assert len(a.frames) == 2
    _has_faces()(a)


def _lying_header_check(a: Analysis) -> None:
    assert a.video.frame_count == 1000 and a.video.duration_s == 100
    assert len(a.frames) == 2  # the two real seconds were sampled
    assert [round(g.after_timestamp_s, 1) for g in a.gaps] == [1.9], a.gaps
    assert "stream ends, before the 100.0 s its header declares" in a.gaps[0].message
    _has_faces()(a)


def _vfr_check(a: Analysis) -> None:
    times = [f.timestamp_s for f in a.frames]
    assert len(times) >= 3 and times == sorted(times)
    # Sampled by real time: one frame per second of the clip, each within a pause of its second.
    for i, t in enumerate(times):
        assert i - 0.05 <= t < i + 0.3, times
    _has_faces()(a)


def _border_check(a: Analysis) -> None:
    _has_faces()(a)
    assert all(f.crop.shape == (320, 320, 3) for f in a.faces)
    assert min(f.box_xyxy[0] for f in a.faces) < 2.0  # the box reaches the frame's edge


def _gap_check(a: Analysis) -> None:
    assert a.gaps, "the corrupt frame was not reported"
    assert len(a.frames) == 2  # the rest of the clip was still sampled
    _has_faces()(a)


def _long_check(a: Analysis) -> None:
    assert a.video.duration_s == 3600
    assert len(a.frames) == 600
    assert any("600 evenly spaced frames" in n for n in a.notes), a.notes


def _named_check(a: Analysis) -> None:
    assert a.video.name == "passwd.mp4"
    _has_faces()(a)


CASES: dict[str, Case] = {
    "zero_bytes": Case("Empty file (0 bytes)", zero_bytes, "unreadable", ("empty",), cli=True),
    "truncated_mp4": Case(
        "MP4 cut in half (index at the end is lost)", truncated_mp4, "unreadable", cli=True
    ),
    "truncated_download": Case(
        "Fast-start MP4 cut in half (interrupted download)",
        truncated_download,
        "ok",
        check=_has_faces(),
    ),
    "random_bytes": Case("Random bytes named .mp4", random_bytes, "unreadable", cli=True),
    "png_renamed": Case(
        "PNG image renamed .mp4", png_renamed, "unreadable", ("PNG image",), cli=True
    ),
    "jpeg_renamed": Case(
        "JPEG image renamed .mp4", jpeg_renamed, "unreadable", ("JPEG image",), cli=True
    ),
    "text_file": Case("Text file named .mp4", text_file, "unreadable", ("text",), cli=True),
    "hls_playlist": Case(
        "HLS playlist named .mp4 pointing at a local file",
        hls_playlist,
        "unreadable",
        cli=True,
    ),
    "audio_only": Case(
        "Audio-only MP4", audio_only, "no_video_stream", ("no video stream",), cli=True
    ),
    "single_frame": Case("Video of a single frame", single_frame, "too_short", cli=True),
    "short_0_2s": Case("Video of 0.2 s", short_clip, "too_short", ("0.2",), cli=True),
    "webm_no_frame_count": Case(
        "WebM (VP8) whose container declares no frame count",
        webm_no_frame_count,
        "ok",
        check=_no_frame_count_check,
    ),
    "avi_lying_header": Case(
        "AVI whose header claims 1000 frames (100 s) for 2 s of video",
        avi_lying_header,
        "ok",
        check=_lying_header_check,
    ),
    "avi_lying_short": Case(
        "AVI whose header claims 100 s for 0.2 s of video",
        avi_lying_short,
        "too_short",
        ("holds only 0.20 s",),
    ),
    "variable_frame_rate": Case(
        "Variable frame rate (irregular timestamps)",
        variable_frame_rate,
        "ok",
        check=_vfr_check,
    ),
    "rotated": Case(
        "Phone video stored sideways with rotation metadata", rotated, "ok", check=_rotated_check
    ),
    "portrait": Case("Portrait 9:16", portrait, "ok", check=_portrait_check),
    "grayscale": Case("Grayscale (gray pixel format)", grayscale, "ok", check=_has_faces()),
    "very_high_resolution": Case(
        "8K UHD, 7680x4320", very_high_resolution, "ok", check=_has_faces()
    ),
    "very_long": Case("One hour long (32x32, 4 fps)", very_long, "no_faces", check=_long_check),
    "no_face": Case("Landscape with no face", no_face, "no_faces", ("no face",), cli=True),
    "crowd": Case("Crowd of 8 faces", crowd, "ok", check=_has_faces(min_tracks=6)),
    "tiny_faces": Case(
        "Tiny faces (about 30 px in 1280x720)", tiny_faces, "ok", check=_has_faces()
    ),
    "border_faces": Case("Face cut by the frame's edge", border_faces, "ok", check=_border_check),
    "corrupt_frame": Case(
        "Corrupted frame in the middle (MJPEG/AVI)",
        corrupt_frame,
        "ok",
        check=_gap_check,
    ),
    "path_like_name": Case(
        'Upload named "../../etc/passwd.mp4"',
        path_like_name,
        "ok",
        check=_named_check,
        display_name="../../etc/passwd.mp4",
    ),
    "unicode_name": Case(
        'File named "видео 🎬 (1).mp4"', unicode_name, "ok", check=_has_faces(), cli=True
    ),
    "zip_as_mp4": Case("ZIP archive named .mp4", zip_as_mp4, "unreadable", ("ZIP",), cli=True),
    "y4m_bomb": Case(
        "Header declaring 30000x30000 frames, a few bytes of data",
        y4m_bomb,
        "too_large",
        ("30000x30000",),
        cli=True,
    ),
    "minuscule_frames": Case("Frames of 8x8 pixels (Y4M)", minuscule_frames, "no_faces"),
    "extreme_aspect": Case("Frames of 8000x2 pixels (Y4M)", extreme_aspect, "no_faces"),
    "named_pipe": Case(
        "Named pipe (FIFO) that never delivers data",
        named_pipe,
        "unreadable",
        ("regular file",),
        cli=True,
    ),
}
