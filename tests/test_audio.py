"""The voice: audio decoding (bounded, sandboxed), speech detection, the AASIST member, states.

Everything here is generated on the spot (tones, noise, silence, espeak-ng speech); nothing needs
``../shared``. The espeak-ng tests skip, saying why, where Debian's ``espeak-ng`` is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from detector.audio.aasist import AASIST, WINDOW_SAMPLES
from detector.audio.decode import AudioLimits, decode_audio
from detector.audio.records import AudioTrack
from detector.audio.score import VoiceMember, VoiceSettings, plan_windows, window_batch
from detector.audio.vad import load_vad, speech_probabilities, speech_stretches, weights_path
from detector.errors import (
    BadSettingsError,
    NoVideoStreamError,
    UnknownModelError,
    WeightsIntegrityError,
)
from detector.io.isolated.decoder import InProcessDecoder, IsolatedDecoder
from detector.io.probe import SamplingPlan
from detector.models import create_model, get_spec, list_models, model_card, read_manifest
from detector.models.weights import load_state_dict
from detector.settings import WEIGHTS_DIR

SR = 16_000


# ---------------------------------------------------------------- generated audio


def write_audio(
    path: Path,
    samples: np.ndarray,
    rate: int = SR,
    codec: str = "aac",
    container: str = "mp4",
    channels: int = 1,
    garble: set[int] = frozenset(),
) -> Path:
    """Encode mono float samples (duplicated to ``channels``); packets numbered in ``garble``
    are replaced by random bytes of the same size (a real decode error, timing intact)."""
    layout = "mono" if channels == 1 else "stereo"
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        fmt = "fltp" if codec in ("aac", "mp3") else "s16"
        n_packet = 0

        def mux(packets):
            nonlocal n_packet
            for p in packets:
                if n_packet in garble:
                    bad = av.Packet(rng.integers(0, 256, p.size, dtype=np.uint8).tobytes())
                    bad.pts, bad.dts, bad.time_base, bad.stream = p.pts, p.dts, p.time_base, stream
                    p = bad
                n_packet += 1
                out.mux(p)

        for i in range(0, len(samples), 1024):
            piece = np.clip(samples[i : i + 1024], -1, 1)
            arr = np.repeat(piece[None], channels, axis=0)
            if fmt == "s16":
                arr = (arr * 32767).astype(np.int16).reshape(1, -1, order="F")
            frame = av.AudioFrame.from_ndarray(arr.astype(arr.dtype), format=fmt, layout=layout)
            frame.sample_rate, frame.pts = rate, i
            mux(stream.encode(frame))
        mux(stream.encode(None))
    return path


def tone(seconds: float, rate: int = SR, hz: float = 440.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def noise(seconds: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(
        np.float32
    )


def espeak(text: str, tmp: Path, voice: str = "en-us") -> np.ndarray:
    """espeak-ng speech at 16 kHz (skips, saying why, where espeak-ng is not installed)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("Debian's espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True)
    with av.open(str(wav)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=SR)
        chunks = [o.to_ndarray().reshape(-1) for f in c.decode(audio=0) for o in res.resample(f)]
    return np.concatenate(chunks).astype(np.float32)


SENTENCE = "Good evening. The minister said the new plan will lower prices for every family."


@pytest.fixture(scope="module")
def member() -> VoiceMember:
    torch.set_num_threads(1)
    return VoiceMember()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    return espeak(SENTENCE, tmp_path_factory.mktemp("espeak"))


# ---------------------------------------------------------------- the AASIST member


def known_waveform() -> np.ndarray:
    """A fixed waveform: a 3-tone chord gliding in pitch, amplitude-modulated, plus seeded noise."""
    t = np.arange(WINDOW_SAMPLES) / SR
    f0 = 150 + 50 * t
    chord = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in (1, 2, 3))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    rng = np.random.default_rng(0)
    return (0.1 * chord * envelope + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def the_authors_network() -> AASIST:
    """The plain two-logit AASIST with the shipped weights (not through the registry)."""
    net = AASIST().eval()
    sha = read_manifest("aasist")["sha256"]
    net.load_state_dict(load_state_dict(WEIGHTS_DIR / "aasist.safetensors", sha))
    return net


def test_the_voice_member_is_in_the_registry_as_an_audio_member():
    spec = get_spec("aasist")
    assert spec.kind == "audio" and spec.input_size == WINDOW_SAMPLES == 64_600
    assert spec.sample_rate == SR
    assert list_models(kinds=("audio",), available_only=True) == ["aasist"]
    assert "aasist" not in list_models()  # the face picker, the Ensemble lab, evaluation
    card = model_card("aasist")
    assert (
        card.kind == "audio" and card.available and card.sha256 == read_manifest("aasist")["sha256"]
    )
    assert card.trained_on and card.init_from


def test_a_face_member_is_not_a_voice_member_and_the_reverse():
    with pytest.raises(UnknownModelError, match="face member"):
        VoiceMember(VoiceSettings(model="xception"))
    from detector.scoring.ensemble import Ensemble

    with pytest.raises(BadSettingsError, match="audio member"):
        Ensemble(["aasist"], device="cpu")


def test_aasist_weights_load_strictly_and_match_their_manifest():
    manifest = read_manifest("aasist")
    assert manifest["kind"] == "audio"
    assert manifest["source"]["file_sha256"].startswith("51d2d9cf")
    net = create_model("aasist")  # sha256-checked, strict
    assert sum(p.numel() for p in net.parameters()) == manifest["parameters"] == 297_866
    assert manifest["fidelity"]["max_abs_logit_difference"] == 0.0


def test_aasist_known_answer():
    """The shipped weights on a fixed generated waveform give the pinned logits (to 1e-3), and
    the registered member their margin (spoof minus bona fide)."""
    x = torch.from_numpy(known_waveform())[None]
    with torch.inference_mode():
        logits = the_authors_network()(x)[0].double()
        margin = float(create_model("aasist")(x)[0, 0])
    expected = torch.tensor(KNOWN_LOGITS, dtype=torch.float64)
    assert torch.allclose(logits, expected, atol=1e-3), logits.tolist()
    assert abs(margin - (KNOWN_LOGITS[0] - KNOWN_LOGITS[1])) < 2e-3


KNOWN_LOGITS = (1.63298, -2.62070)  # measured once with the shipped weights (spoof, bona fide)


def test_aasist_batches_score_like_single_windows():
    net = create_model("aasist")
    x = torch.from_numpy(np.stack([known_waveform(), noise(5)[:WINDOW_SAMPLES]]))
    with torch.inference_mode():
        together = net(x)
        alone = torch.cat([net(x[:1]), net(x[1:])])
    assert torch.allclose(together, alone, atol=1e-4)


def test_a_changed_weights_file_is_refused(tmp_path):
    for name in ("aasist.json", "aasist.safetensors"):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    data = bytearray((tmp_path / "aasist.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "aasist.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="does not match"):
        create_model("aasist", weights_dir=tmp_path)


def test_random_init_differs_from_the_shipped_weights():
    """The known answer is the weights' doing, not the architecture's."""
    torch.manual_seed(0)
    net = AASIST().eval()
    with torch.inference_mode():
        logits = net(torch.from_numpy(known_waveform())[None])[0]
    assert not torch.allclose(logits.double(), torch.tensor(KNOWN_LOGITS, dtype=torch.float64))


# ---------------------------------------------------------------- speech detection


def test_vad_loads_the_weights_bundled_in_its_package():
    path = weights_path()
    assert path.name == "silero_vad_16k.safetensors" and "site-packages" in str(path)
    load_vad()  # sha256-checked, strict


@pytest.mark.parametrize(
    "make",
    [lambda: np.zeros(5 * SR, np.float32), lambda: tone(5), lambda: noise(5)],
    ids=["silence", "sine", "noise"],
)
def test_vad_finds_no_speech_in_tones_noise_or_silence(make):
    x = make()
    assert speech_stretches(speech_probabilities(load_vad(), x), len(x)) == []


def test_vad_finds_espeak_speech(speech):
    x = np.concatenate([np.zeros(SR, np.float32), speech, np.zeros(SR, np.float32)])
    stretches = speech_stretches(speech_probabilities(load_vad(), x), len(x))
    assert stretches
    start, end = stretches[0][0] / SR, stretches[-1][1] / SR
    assert 0.8 <= start <= 1.3  # the speech starts after one second of silence
    assert abs(end - (1 + len(speech) / SR)) < 0.5
    covered = sum(b - a for a, b in stretches) / len(speech)
    assert covered > 0.6


# ---------------------------------------------------------------- windows


def test_windows_tile_short_speech_and_cover_long_speech_evenly():
    w = WINDOW_SAMPLES
    plan = plan_windows([(0, w // 2)], w, merge_gap=8000)
    assert plan == [(0, w // 2)]
    batch = window_batch(np.arange(w, dtype=np.float32), plan, w)
    assert batch.shape == (1, w) and batch[0, w // 2] == 0.0  # repeated from the start
    plan = plan_windows([(1000, 1000 + 2 * w + 10)], w, merge_gap=8000)
    assert len(plan) == 3 and plan[0][0] == 1000 and plan[-1][1] == 1000 + 2 * w + 10
    assert all(b - a == w for a, b in plan)
    # stretches closer than the merge gap are scored as one
    assert plan_windows([(0, 100), (150, 300)], w, merge_gap=100) == [(0, 300)]


# ---------------------------------------------------------------- decoding


def test_decoding_resamples_to_16k_mono_without_changing_the_level(tmp_path):
    x = tone(3.0, rate=44_100, hz=300, level=0.5)
    path = write_audio(tmp_path / "stereo.mkv", x, 44_100, "flac", "matroska", channels=2)
    track = decode_audio(path, "stereo.mkv")
    assert track.status == "ok" and track.channels == 2 and track.source_rate == 44_100
    assert abs(track.duration_s - 3.0) < 0.01
    assert track.samples.dtype == np.float32
    peak = np.abs(track.samples[SR // 2 : -SR // 2]).max()
    assert abs(peak - 0.5) < 0.01  # the channel mean, not a rematrixed (louder) mono


def test_a_video_without_audio_is_no_audio(videos):
    track = decode_audio(videos["face"], "face.mp4")
    assert track.status == "no_audio" and "no audio track" in track.message
    assert not len(track.samples)


def test_broken_audio_packets_are_counted_and_kept_as_silence(tmp_path):
    x = tone(4.0)
    path = write_audio(tmp_path / "broken.m4a", x, garble=set(range(20, 30)))
    track = decode_audio(path, "broken.m4a")
    assert track.status == "ok" and track.bad_packets >= 5
    assert "could not be decoded" in track.message
    assert abs(track.duration_s - 4.0) < 0.2  # the lost stretch keeps its time


def test_an_audio_track_of_only_broken_packets_is_unreadable(tmp_path):
    path = write_audio(tmp_path / "garbage.m4a", tone(2.0), garble=set(range(1000)))
    track = decode_audio(path, "garbage.m4a")
    assert track.status == "audio_unreadable" and not len(track.samples)
    assert "could not be decoded" in track.message


def test_very_long_audio_is_bounded(tmp_path):
    x = np.zeros(8_000 * 660, np.float32)  # 11 minutes at 8 kHz
    path = write_audio(tmp_path / "long.mkv", x, 8_000, "flac", "matroska")
    track = decode_audio(path, "long.mkv")
    assert track.truncated and track.duration_s == 600.0
    assert "only its first 600 s" in track.message
    short = decode_audio(path, "long.mkv", AudioLimits(max_duration_s=5))
    assert short.truncated and short.duration_s == 5.0


@pytest.mark.parametrize("cls", [IsolatedDecoder, InProcessDecoder])
def test_the_decoder_child_delivers_the_audio_after_the_frames(cls, tmp_path, videos):
    from tests.hostile import encode, face_images

    clip = encode(tmp_path / "clip.mp4", face_images(20))
    with cls(clip, "clip.mp4", SamplingPlan("fps", 1.0), audio=AudioLimits()) as dec:
        frames = list(dec)
        track = dec.read_audio()
    assert frames and track.status == "no_audio"
    x = tone(2.0)
    with_audio = _mux_av(tmp_path / "av.mp4", list(face_images(20)), x)
    with cls(with_audio, "av.mp4", SamplingPlan("fps", 1.0), audio=AudioLimits()) as dec:
        assert list(dec)
        track = dec.read_audio()
    assert track.status == "ok" and abs(track.duration_s - 2.0) < 0.1
    assert np.abs(track.samples).max() > 0.2


@pytest.mark.parametrize("cls", [IsolatedDecoder, InProcessDecoder])
def test_an_audio_only_file_is_refused_as_video_but_its_audio_is_read(cls, tmp_path):
    path = write_audio(tmp_path / "voice.m4a", tone(2.0))
    dec = cls(path, "voice.m4a", SamplingPlan("fps", 1.0), audio=AudioLimits())
    with pytest.raises(NoVideoStreamError), dec:
        pass
    track = dec.read_audio()
    assert track.status == "ok" and abs(track.duration_s - 2.0) < 0.1


def _mux_av(path: Path, frames, audio: np.ndarray) -> Path:
    """A small H.264 + AAC MP4."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        a = out.add_stream("aac", rate=SR, layout="mono")
        for img in frames:
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for i in range(0, len(audio), 1024):
            piece = np.ascontiguousarray(audio[None, i : i + 1024])
            frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = SR, i
            for p in a.encode(frame):
                out.mux(p)
        for s in (v, a):
            for p in s.encode(None):
                out.mux(p)
    return path


# ---------------------------------------------------------------- the voice's states


def _track(x: np.ndarray) -> AudioTrack:
    return AudioTrack("ok", samples=x, duration_s=len(x) / SR)


@pytest.mark.parametrize(
    "make",
    [lambda: np.zeros(4 * SR, np.float32), lambda: tone(4), lambda: noise(4)],
    ids=["silent_track", "sine", "noise"],
)
def test_no_speech_is_a_worded_state_without_a_score(member, make):
    a = member.analyze(_track(make()))
    assert a.status == "no_speech" and a.verdict is None and not a.segments
    assert "no speech found" in a.message


def test_bad_tracks_keep_their_state_and_carry_no_score(member):
    for status in ("no_audio", "audio_unreadable"):
        a = member.analyze(AudioTrack(status, "why"))
        assert a.status == status and a.message == "why" and a.verdict is None


def test_espeak_speech_is_scored_per_window(member, speech):
    x = np.concatenate([np.zeros(SR, np.float32), speech, speech, np.zeros(SR, np.float32)])
    a = member.analyze(_track(x))
    assert a.status == "ok" and a.verdict is not None and a.member == "aasist"
    assert len(a.segments) >= 2
    for seg in a.segments:
        assert 0.5 <= seg.start_s < seg.end_s <= len(x) / SR
        assert 0.0 <= seg.p_fake <= 1.0
    assert a.verdict.label in ("fake", "uncertain", "real")
    assert a.verdict.words and "Voice:" in a.message


def test_an_audio_only_analysis_says_so(member, speech):
    a = member.analyze(_track(speech), audio_only=True)
    assert a.audio_only and any("only the voice" in n for n in a.notes)


# ---------------------------------------------------------------- in the analysis, JSON and PDF


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory, speech) -> Path:
    """A synthetic face clip whose audio track is espeak-ng speech."""
    from tests.hostile import face_images

    d = tmp_path_factory.mktemp("talking")
    seconds = len(speech) / SR
    return _mux_av(d / "talking.mp4", list(face_images(round(seconds * 10))), speech)


def test_the_analysis_judges_faces_and_voice_apart(analyzer, talking_clip):
    from detector.reporting.record import analysis_to_dict

    a = analyzer.analyze(talking_clip)
    assert a.status == "ok" and a.verdict is not None
    assert a.audio.status == "ok" and a.audio.verdict is not None and a.audio.segments
    doc = analysis_to_dict(a)
    assert doc["audio"]["status"] == "ok" and doc["audio"]["member"]["name"] == "aasist"
    assert doc["audio"]["member"]["kind"] == "audio"
    seg = doc["audio"]["segments"][0]
    assert 0 <= seg["start_s"] < seg["end_s"] and 0 <= seg["p_fake"] <= 1
    assert doc["summary"].startswith("Faces: ") and "; Voice: " in doc["summary"]
    assert doc["audio"]["verdict"]["words"] in doc["summary"]
    assert "voice_s" in a.timings_s


def test_no_audio_track_leaves_the_face_verdict_alone(analyzer, videos):
    from dataclasses import replace

    from detector.pipeline import ExtractionSettings

    a = analyzer.analyze(videos["face"])
    assert a.status == "ok" and a.audio.status == "no_audio" and a.audio.verdict is None
    b = analyzer.analyze(videos["face"], replace(ExtractionSettings(), voice=False))
    assert b.audio is None and b.verdict.p_fake == a.verdict.p_fake


def test_an_audio_only_file_is_analysed_as_voice_only(analyzer, tmp_path, speech):
    from detector.reporting.record import analysis_to_dict

    a = analyzer.analyze(write_audio(tmp_path / "message.m4a", speech))
    assert a.status == "no_video_stream" and a.verdict is None
    assert a.audio.status == "ok" and a.audio.audio_only and a.audio.verdict is not None
    assert any("only the voice was analysed" in n for n in a.audio.notes)
    doc = analysis_to_dict(a)
    assert doc["verdict"] is None and doc["audio"]["verdict"] is not None
    assert doc["summary"].startswith("Faces: no verdict (no video stream); Voice: ")


@pytest.mark.parametrize(
    ("name", "codec", "container"),
    [
        ("message.wav", "pcm_s16le", "wav"),
        ("message.mp3", "mp3", "mp3"),
        ("message.flac", "flac", "flac"),
        ("message.aac", "aac", "adts"),
    ],
)
def test_bare_audio_files_are_analysed_as_voice_only(
    analyzer, tmp_path, speech, name, codec, container
):
    from detector.io.sniff import require_media

    path = write_audio(tmp_path / name, speech, codec=codec, container=container)
    assert require_media(path.read_bytes()[:4096]) == Path(name).suffix.lstrip(".")
    a = analyzer.analyze(path)
    assert a.status == "no_video_stream" and a.verdict is None
    assert a.audio.status == "ok" and a.audio.audio_only and a.audio.verdict is not None
    assert a.audio.segments and a.audio.segments[-1].end_s <= len(speech) / SR + 0.1


def test_a_silent_track_is_no_speech(analyzer, tmp_path):
    a = analyzer.analyze(write_audio(tmp_path / "silent.m4a", np.zeros(3 * SR, np.float32)))
    assert a.audio.status == "no_speech" and a.audio.verdict is None


def test_the_pdf_has_a_voice_section(analyzer, talking_clip):
    import io

    from pypdf import PdfReader

    from detector.reporting.pdf import render_pdf

    a = analyzer.analyze(talking_clip)
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(render_pdf(a))).pages)
    assert "Voice" in text and a.audio.verdict.words in text
    assert "Faces: " in text and "threshold" in text


def test_the_voice_lane_draws_every_scored_window():
    from detector.audio.records import AudioAnalysis, VoiceSegment, VoiceVerdict
    from pages.voice_view import voice_lane

    segs = (VoiceSegment(0.5, 4.5, 0.9), VoiceSegment(5.0, 6.0, 0.2, tiled=True))
    verdict = VoiceVerdict("uncertain", 0.6, 0.85, 0.79, "mean", "rule", True)
    fig = voice_lane(AudioAnalysis("ok", "", "aasist", segs, ((0.5, 6.0),), verdict, 7.0, 5.5))
    assert len(fig.data) == 2
    assert list(fig.data[0].x) == [0.5, 4.5] and list(fig.data[0].y) == [0.9, 0.9]
    assert fig.layout.xaxis.range == (0, 7.0)


def test_the_member_scores_like_the_plain_network():
    """Channels-last inference in the member changes no score."""
    net = the_authors_network()
    x = known_waveform()[None]
    with torch.inference_mode():
        logits = net(torch.from_numpy(x))[0].double()
    fp32 = VoiceMember(VoiceSettings(precision="fp32"))
    assert fp32.precision == "fp32"
    assert abs(fp32.margins(x)[0] - float(logits[0] - logits[1])) < 1e-4


def test_bf16_is_used_only_where_it_was_measured_to_hold(monkeypatch):
    from detector.audio import score as voice
    from detector.scoring import device

    ok = {"precision_check": {"bf16_minus_fp32_auc": {"espeak-ng": 0.001, "all": -0.002}}}
    moved = {"precision_check": {"bf16_minus_fp32_auc": {"espeak-ng": 0.001, "piper": 0.02}}}
    assert voice.voice_bf16_holds(ok)
    assert not voice.voice_bf16_holds(moved)
    assert not voice.voice_bf16_holds({})  # never measured
    assert not voice.voice_bf16_holds({**ok, "precision_check": {**ok["precision_check"],
                                                                  "bf16_holds": False}})  # fmt: skip
    member = VoiceMember(VoiceSettings(precision="fp32"))
    for native, manifest, expected in [
        (True, ok, "bf16"),
        (True, moved, "fp32"),
        (False, ok, "fp32"),  # emulated bf16 is slower than fp32
    ]:
        monkeypatch.setattr(device, "native_bf16", lambda native=native: native)
        member.manifest = manifest
        assert member._precision("auto") == expected
    with pytest.raises(ValueError, match="precision"):
        member._precision("int4")
    member.precision = "bf16"  # bf16 autocast runs (emulated where not native) and stays close
    x = known_waveform()[None]
    assert (
        abs(member.margins(x)[0] - VoiceMember(VoiceSettings(precision="fp32")).margins(x)[0]) < 0.2
    )
    assert member.analyze(_track(np.tile(x[0], 2))).precision == "bf16"
