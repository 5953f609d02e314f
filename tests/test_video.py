"""Probing and sampling on synthetic clips (and the shared clips when present)."""

from __future__ import annotations

import numpy as np
import pytest

from detector.errors import BadSettingsError, NoVideoStreamError, VideoReadError
from detector.io import synthetic
from detector.io.decode import read_frames
from detector.io.probe import parse_sampling, probe


def test_parse_sampling_accepts_the_documented_strategies():
    assert parse_sampling("1fps").kind == "fps"
    assert parse_sampling("0.5fps").value == 0.5
    assert parse_sampling("even:16").value == 16
    assert parse_sampling("first:5").kind == "first"
    assert parse_sampling("all").kind == "all"


@pytest.mark.parametrize("bad", ["", "fast", "even:0", "first:-1", "0fps", "even:x"])
def test_parse_sampling_rejects_nonsense(bad):
    with pytest.raises(BadSettingsError):
        parse_sampling(bad)


def test_probe_reads_properties(videos):
    info = probe(videos["face"])
    assert (info.width, info.height) == (640, 360)
    assert info.fps == pytest.approx(25.0)
    assert info.frame_count == 100
    assert info.duration_s == pytest.approx(4.0, abs=0.05)
    assert len(info.sha256) == 64


def test_one_frame_per_second_records_index_and_time(videos):
    info = probe(videos["face"])
    frames = read_frames(videos["face"], info, parse_sampling("1fps"))
    assert [f.index for f in frames] == [0, 25, 50, 75]
    assert [round(f.timestamp_s, 2) for f in frames] == [0.0, 1.0, 2.0, 3.0]
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8


@pytest.mark.parametrize(
    ("spec", "count"), [("even:7", 7), ("first:3", 3), ("all", 100), ("2fps", 8)]
)
def test_sampling_strategies_give_the_asked_count(videos, spec, count):
    info = probe(videos["face"])
    frames = read_frames(videos["face"], info, parse_sampling(spec))
    assert len(frames) == count
    times = [f.timestamp_s for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_even_sampling_spans_the_whole_clip(videos):
    info = probe(videos["face"])
    frames = read_frames(videos["face"], info, parse_sampling("even:5"))
    assert frames[0].index == 0
    assert frames[-1].index == 99


def test_long_jumps_seek_and_still_land_on_the_right_frames(tmp_path):
    clip = synthetic.write_video(
        tmp_path / "long.mp4",
        (np.full((64, 64, 3), i % 250, np.uint8) for i in range(60 * 10)),
        fps=10,
    )
    info = probe(clip)
    frames = read_frames(clip, info, parse_sampling("even:4"), seek_gap_s=5.0)
    assert [round(f.timestamp_s) for f in frames] == [0, 20, 40, 60]


def test_rotation_metadata_is_applied(tmp_path):
    clip = synthetic.write_video(
        tmp_path / "rot.mp4", synthetic.face_frames(320, 180, 10), fps=10, rotation_deg=90
    )
    info = probe(clip)
    assert info.rotation_deg in (90, 270)
    frame = read_frames(clip, info, parse_sampling("first:1"))[0]
    assert frame.image.shape[:2] == (320, 180)


def test_empty_file_is_unreadable(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty"):
        probe(p)


def test_random_bytes_are_unreadable(tmp_path):
    p = tmp_path / "noise.mp4"
    p.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(VideoReadError):
        probe(p)


def test_audio_only_has_no_video_stream(tmp_path):
    import av

    p = tmp_path / "audio.m4a"
    with av.open(str(p), "w") as out:
        s = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        for _ in range(20):
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    with pytest.raises(NoVideoStreamError):
        probe(p)


@pytest.mark.shared
def test_shared_clips_probe_and_sample(clips_dir):
    for clip in sorted(clips_dir.rglob("*.mp4")):
        info = probe(clip)
        frames = read_frames(clip, info, parse_sampling("1fps"))
        assert len(frames) == int(info.duration_s)


@pytest.mark.parametrize("spec", ["1fps", "even:5", "even:17", "first:4", "all", "5fps", "7fps"])
def test_next_frames_come_with_the_same_samples(tmp_path, spec):
    """``with_next`` keeps the sampled frames and attaches the decoded frame that follows each
    (every one but the very last frame of the stream), and reports no gap in an intact file."""
    from detector.io.decode import iter_frames
    from detector.types import DecodeGap, SampledFrame

    clip = synthetic.write_video(
        tmp_path / "ramp.mp4",
        (np.full((64, 64, 3), (i * 5) % 250, np.uint8) for i in range(50)),
        fps=10,
    )
    info = probe(clip)
    plan = parse_sampling(spec)
    plain = read_frames(clip, info, plan)
    items = list(iter_frames(clip, info, plan, with_next=True))
    assert not [g for g in items if isinstance(g, DecodeGap)]
    paired = [f for f in items if isinstance(f, SampledFrame)]
    assert [f.index for f in paired] == [f.index for f in plain]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(plain, paired, strict=True))
    for f in paired:
        if f.next_image is None:
            assert f.index == 49, f"frame {f.index} lost its next frame"
            continue
        expected = ((f.index + 1) * 5) % 250
        assert abs(float(f.next_image.mean()) - expected) < 3, (f.index, f.next_image.mean())


def test_next_frames_survive_seeking(tmp_path):
    from detector.io.decode import iter_frames
    from detector.types import SampledFrame

    clip = synthetic.write_video(
        tmp_path / "long.mp4",
        (np.full((64, 64, 3), (i * 3) % 250, np.uint8) for i in range(60 * 10)),
        fps=10,
    )
    info = probe(clip)
    frames = [
        f
        for f in iter_frames(clip, info, parse_sampling("even:4"), seek_gap_s=5.0, with_next=True)
        if isinstance(f, SampledFrame)
    ]
    assert [round(f.timestamp_s) for f in frames] == [0, 20, 40, 60]
    for f in frames[:-1]:
        assert abs(float(f.next_image.mean()) - ((f.index + 1) * 3) % 250) < 3
