"""``python -m scripts.bench``: how long analysts wait, measured on this machine.

Prints a table (and ``--json``) of: end-to-end time for a 10 s 720p clip at 1 frame/s with the
default ensemble (median of several warm runs) and each stage's share; scoring throughput against
this machine's own dense matrix-multiply rate (FLOPs per crop counted with
``torch.utils.flop_counter``); re-aggregation latency (new weights / median / threshold, no
inference); peak resident memory while analysing a 10-minute 1080p clip (frames are streamed,
never held); cold start (imports + loading the models). Clips are generated (the astronaut face
pasted into synthetic 720p / 1080p video) so the benchmark runs anywhere; the FaceForensics++
clips are timed too when ``../shared`` is present.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from detector.io import synthetic
from detector.scoring.device import ISA_CAPS, rerun_capped_if_asked
from detector.settings import data_dir
from detector.verdict.verdict import compute_verdict


def matmul_peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 20) -> float:
    """Dense matrix-multiply rate of this machine in ``dtype`` (best of ``repeats``).

    On a shared machine one short window can be slow (a run here once read 435 instead of about
    830 GFLOP/s in bf16); :func:`bench_scoring` measures the peak before and after the scoring
    runs and keeps the higher, so the ratio is not flattered.
    """
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def flops_per_crop(name: str) -> float:
    """Forward FLOPs of member ``name`` for one crop (multiply-add = 2 FLOPs), counted by torch's
    FlopCounterMode on the eager network (the frozen graph that runs has the same convolutions,
    with BatchNorm folded in).

    Temporal members are counted on a full window and divided by its length (their LSTM's gate
    matrix multiplies added by hand, per time step); two-stream members
    get their 5-channel input (the optical flow itself is OpenCV work, not counted).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from detector.models import create_model, get_spec

    spec = get_spec(name)
    module = create_model(name, load_weights=False)
    channels = 5 if spec.inputs == "crop_and_flow" else 3
    x = torch.zeros(1, channels, spec.input_size, spec.input_size)
    per = 1
    if spec.kind == "track":
        per = spec.sequence_length
        x = x[None].expand(1, per, *x.shape[1:]).contiguous()
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        module(x)
    # FlopCounterMode has no formula for aten::lstm: add its gate matmuls, per time step (= crop)
    lstm = sum(
        2 * 4 * m.hidden_size * (m.input_size + m.hidden_size)
        for m in module.modules()
        if isinstance(m, torch.nn.LSTM)
    )
    return float(counter.get_total_flops()) / per + lstm


def _median_time(fn, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


PAUSE_S = 1.0
"""Seconds between the warm runs, as between two uploads in the app: the spare decoder and metadata
reader an analysis starts when it ends (``Analyzer(spare_children=True)``, as the app builds it)
are ready by the next. The runs without the pause are recorded too (``back_to_back_runs_s``)."""


def bench_end_to_end(
    analyzer, clip: Path, runs: int, pause_s: float = PAUSE_S, back_to_back: bool = False
) -> dict:
    """Median end-to-end analysis time of ``clip`` and the median of each stage (and, with
    ``back_to_back``, the times of as many runs without the pause)."""
    from detector.pipeline import ExtractionSettings

    analyzer.analyze(clip, ExtractionSettings())  # warm-up
    unpaused = []
    for _ in range(runs if back_to_back else 0):
        t0 = time.perf_counter()
        analyzer.analyze(clip, ExtractionSettings())
        unpaused.append(time.perf_counter() - t0)
    results = []
    for _ in range(runs):
        time.sleep(pause_s)
        t0 = time.perf_counter()
        a = analyzer.analyze(clip, ExtractionSettings())
        total = time.perf_counter() - t0
        if not a.ok:
            raise RuntimeError(f"benchmark clip {clip.name} gave status {a.status}: {a.message}")
        results.append((total, a.timings_s, len(a.faces)))
    total = statistics.median(r[0] for r in results)
    stages = {
        k: statistics.median(r[1].get(k, 0.0) for r in results)
        for k in ("probe_s", "decode_s", "faces_s", "scoring_s", "aggregate_s")
    }
    stages["other_s"] = max(0.0, total - sum(stages.values()))
    return {
        "total_s": total,
        "runs_s": [r[0] for r in results],
        "stages": stages,
        "faces": results[0][2],
        "runs": runs,
        "pause_s": pause_s,
        "back_to_back_runs_s": unpaused,
    }


def _crops(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (n, 320, 320, 3), dtype=np.uint8)


def bench_scoring(analyzer, n_crops: int = 64, runs: int = 5) -> dict:
    """Ensemble scoring throughput against this machine's matmul peak in each member's dtype.

    The whole ensemble scores ``n_crops`` crops (320 px, as the pipeline stores them) in one
    call, as in an analysis: resizing, normalising and every member's forward passes (members
    side by side on single-threaded workers, one per core). The ratio
    is ideal time / measured time, the ideal time being each member's FLOPs at the matmul rate
    of the dtype it runs in (bf16 members against the bf16 rate, fp32 members against fp32).
    Each member is also timed alone (its own resize included, on all cores) for the per-member
    rows.
    """
    crops = _crops(n_crops)
    ens = analyzer.ensemble
    # only the precisions that run: on a CPU without native bf16 one 2048^2 bf16 matmul is
    # emulated and takes seconds, and its rate would describe nothing the app does
    used = {"bf16" if m.low_precision else "fp32" for m in ens.members.values()}
    dtypes = {k: d for k, d in (("bf16", torch.bfloat16), ("fp32", torch.float32)) if k in used}
    before = {k: matmul_peak_gflops(d) for k, d in dtypes.items()}
    nxt = list(np.roll(crops, 1, axis=0)) if ens.needs_next_frames else None
    alone = {}
    for name, member in ens.members.items():
        one = ens.only(name)
        one.score(crops[:4], None, nxt[:4] if nxt else None)  # warm-up
        t, _ = _median_time(lambda one=one: one.score(crops, None, nxt), runs)
        dtype = "bf16" if member.low_precision else "fp32"
        alone[name] = (dtype, flops_per_crop(name), t, one._batch_size(member))
    ens.score(crops[:4], None, nxt[:4] if nxt else None)
    measured, _ = _median_time(lambda: ens.score(crops, None, nxt), runs)
    after = {k: matmul_peak_gflops(d) for k, d in dtypes.items()}
    peaks = {k: max(before[k], after[k]) for k in dtypes}  # never flatter the ratio
    per_model = {}
    for name, (dtype, flops, t, batch) in alone.items():
        achieved = flops * n_crops / t / 1e9
        per_model[name] = {
            "dtype": dtype,
            "frozen": ens.members[name].frozen,
            "batch_size": batch,  # crops per chunk as it was scored alone
            "gflops_per_crop": flops / 1e9,
            "ms_per_crop": 1000 * t / n_crops,
            "achieved_gflops": achieved,
            "achieved_over_peak": achieved / peaks[dtype],
        }
    ideal = sum(flops * n_crops / 1e9 / peaks[dtype] for dtype, flops, _, _ in alone.values())
    total_flops = sum(flops * n_crops for _, flops, _, _ in alone.values())
    return {
        "peak_matmul_gflops": peaks,
        "peak_matmul_gflops_before_after": {"before": before, "after": after},
        "n_crops": n_crops,
        "ms_per_crop": 1000 * measured / n_crops,
        "ideal_ms_per_crop": 1000 * ideal / n_crops,
        "achieved_gflops": total_flops / measured / 1e9,
        "achieved_over_peak": ideal / measured,
        "per_model": per_model,
    }


def bench_batch_sizes(analyzer, sizes=(4, 8, 16, 32), n_crops: int = 64, runs: int = 5) -> dict:
    """ms per crop of each per-frame member at each batch size (to choose ``spec.batch_size``).

    Every batch size gets its own freshly frozen member, so the comparison is like for like.
    """
    from dataclasses import replace as dc_replace

    from detector.models import create_model
    from detector.scoring.ensemble import LoadedModel
    from detector.scoring.graphs import freeze_for_cpu

    crops = _crops(n_crops)
    out: dict[str, dict[int, float]] = {}
    for name, member in analyzer.ensemble.members.items():
        if not member.frozen:
            continue
        out[name] = {}
        for bs in sizes:
            spec = dc_replace(member.spec, batch_size=bs)
            module = freeze_for_cpu(
                create_model(name, weights_dir=analyzer.weights_dir), spec, member.low_precision
            )
            loaded = LoadedModel(spec, member.card, module, member.low_precision, True)
            one = analyzer.ensemble.only(name, loaded)
            one._batch_size = lambda member, bs=bs: bs  # this size, whatever the precision
            one.score(crops[:bs])
            t, _ = _median_time(lambda one=one: one.score(crops), runs)
            out[name][bs] = 1000 * t / n_crops
    return out


def bench_reaggregate(analysis, repeats: int = 50) -> float:
    """Median milliseconds to a new verdict after changing weights, aggregation or threshold."""
    base = analysis.verdict.settings
    models = list(analysis.scores.models)
    variants = [
        replace(base, weights={m: float(i == k) + 0.1 for i, m in enumerate(models)})
        for k in range(len(models))
    ]
    variants += [replace(base, aggregation="median"), replace(base, threshold=0.3)]
    variants += [replace(base, order="combine_then_aggregate")]
    times = []
    for i in range(repeats):
        s = variants[i % len(variants)]
        t0 = time.perf_counter()
        compute_verdict(analysis.scores, s)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def bench_memory(clip: Path) -> dict:
    """Peak RSS of a fresh process analysing ``clip``, and of its decoder child.

    Sizes are MiB (2**20 bytes). ``main_mb`` and ``decoder_mb`` are the kernel's peaks (``VmHWM``)
    of the analysing process and of its decoder after exec; ``sampled_sum_mb`` is the largest
    sampled sum of the two, ``concurrent_peak_bound_mb`` an upper bound on the two together at
    any moment (:func:`scripts.bench_child.memory`).
    """
    out = subprocess.run(
        [sys.executable, "-m", "scripts.bench_child", "memory", str(clip)],
        capture_output=True,
        text=True,
        check=True,
        env=_child_env(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child_env(**extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", **extra}


def _timed_process(args: list[str], **env) -> tuple[float, str]:
    """Wall time of a fresh Python process running ``args``, and what it printed (a failure
    raises with the end of what it said on stderr)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=_child_env(**env)
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {out.returncode}: {out.stderr[-3000:]}")
    return time.perf_counter() - t0, out.stdout


def bench_cold_start(runs: int = 3) -> dict:
    """A fresh process until it is ready to analyse (face detector, embedder and every model
    loaded and verified), wall time from the interpreter's start. ``first_s``: once after
    installing or changing weights, with no frozen graph on disk (the graphs are traced, frozen
    and written by a child process, then loaded); ``total_s``: the median of ``runs`` starts that
    find the cache. ``*_peak_mb`` / ``*_resident_mb``: the ready process's peak (``VmHWM``) and
    resident size, MiB, after the first start and after the reported cached one;
    ``first_child_peak_mb``: the peak of the child process that froze the graphs (before the
    loading process reads them; the two run one after the other)."""
    cold = ["-m", "scripts.bench_child", "cold"]
    with tempfile.TemporaryDirectory(prefix="deepfake-frozen-") as empty:
        first, out = _timed_process(cold, DEEPFAKE_FROZEN_DIR=empty)
    first_peak, first_resident, first_child = (float(x) for x in out.split()[2:5])
    _timed_process(cold)  # fills the real cache if it is new
    timed = [_timed_process(cold) for _ in range(runs)]
    wall = [t for t, _ in timed]
    k = int(np.argsort(wall)[len(wall) // 2])  # the run whose parts are reported
    imports, load, peak, resident = (float(x) for x in timed[k][1].split()[:4])
    return {
        "total_s": statistics.median(wall),
        "runs_s": wall,
        "imports_s": imports,
        "load_models_s": load,
        "peak_mb": peak,
        "resident_mb": resident,
        "first_s": first,
        "first_peak_mb": first_peak,
        "first_resident_mb": first_resident,
        "first_child_peak_mb": first_child,
    }


def bench_cli_fresh(clip: Path, runs: int = 3) -> dict:
    """Wall time of ``python -m detector analyze CLIP --json`` in a fresh process (as an analyst
    or a script calls it), frozen graphs cached: the median and every run."""
    args = ["-m", "detector", "analyze", str(clip), "--json"]
    wall = [_timed_process(args)[0] for _ in range(runs)]
    return {"median_s": statistics.median(wall), "runs_s": wall}


def machine_facts() -> dict:
    """What decides the speed: CPU model, instruction-set flags, the kernel path in use."""
    from detector.allocator import in_use
    from detector.scoring.device import cpu_flags, cpu_path, isa_cap

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text("utf-8", errors="ignore").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpu_flags": list(cpu_flags()),
        "cpu_path": cpu_path(),
        "isa_cap": isa_cap(),
        "cpu_threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "allocator": in_use(),  # tcmalloc when the machine has it, as the app starts
    }


def make_clips(root: Path, long_minutes: float) -> dict[str, Path]:
    """10 s 720p and 10 s 1080p clips, and a long 1080p clip (low fps keeps generation quick)."""
    clips = {
        "720p_10s": synthetic.astronaut_clip(
            root / "720p_10s.mp4", seconds=10, width=1280, height=720, face_size=220
        ),
        "1080p_10s": synthetic.astronaut_clip(
            root / "1080p_10s.mp4", seconds=10, width=1920, height=1080, face_size=300
        ),
    }
    if long_minutes > 0:
        clips["1080p_long"] = synthetic.astronaut_clip(
            root / "1080p_long.mp4",
            seconds=long_minutes * 60,
            fps=2,
            width=1920,
            height=1080,
            face_size=300,
        )
    return clips


def run(runs: int = 5, long_minutes: float = 10.0, batch_sweep: bool = False) -> dict:
    from detector.pipeline import Analyzer, ExtractionSettings

    result: dict = {"machine": machine_facts()}
    result["cpu_flags"] = result["machine"]["cpu_flags"]
    result["cold_start"] = bench_cold_start(max(1, min(runs, 3)))
    result["cold_start_s"] = result["cold_start"]["total_s"]
    analyzer = Analyzer(device="auto", spare_children=True)  # as the app builds it
    result["models"] = list(analyzer.ensemble.names)
    result["precision"] = {
        n: "bf16" if m.low_precision else "fp32" for n, m in analyzer.ensemble.members.items()
    }
    result["identity_precision"] = "bf16" if analyzer.embedder.low_precision else "fp32"
    with tempfile.TemporaryDirectory(prefix="deepfake-bench-") as tmp:
        clips = make_clips(Path(tmp), long_minutes)
        e2e = bench_end_to_end(analyzer, clips["720p_10s"], runs, back_to_back=True)
        result["end_to_end_s_720p_10s"] = e2e["total_s"]
        result["end_to_end_runs_s_720p_10s"] = e2e["runs_s"]
        result["end_to_end_pause_s"] = e2e["pause_s"]
        result["end_to_end_back_to_back_runs_s_720p_10s"] = e2e["back_to_back_runs_s"]
        cli = bench_cli_fresh(clips["720p_10s"], max(1, min(runs, 3)))
        result["cli_fresh_s"] = cli["median_s"]
        result["cli_fresh_runs_s"] = cli["runs_s"]
        result["stages"] = e2e["stages"]
        result["faces_720p_10s"] = e2e["faces"]
        result["end_to_end_s_1080p_10s"] = bench_end_to_end(analyzer, clips["1080p_10s"], runs)[
            "total_s"
        ]
        shared = {}
        clip_dir = data_dir() / "clips"
        for p in sorted(clip_dir.rglob("*.mp4")) if clip_dir.is_dir() else []:
            shared[p.name] = bench_end_to_end(analyzer, p, max(1, runs // 2))["total_s"]
        result["shared_clips_s"] = shared
        result["scoring"] = bench_scoring(analyzer)
        result["achieved_over_peak"] = result["scoring"]["achieved_over_peak"]
        analysis = analyzer.analyze(clips["720p_10s"], ExtractionSettings())
        result["reaggregate_ms"] = bench_reaggregate(analysis)
        if "1080p_long" in clips:
            # twice, for the spread: the targets take the higher figures, the table shows each
            both = [bench_memory(clips["1080p_long"]) for _ in range(2)]
            mem = {**max(both, key=lambda m: m["main_mb"] + m["decoder_mb"]), "runs": both}
            # the two processes run at once: their peaks added bound the total from above
            result["peak_rss_mb_1080p_10min"] = max(m["main_mb"] + m["decoder_mb"] for m in both)
            # tighter, still an upper bound: the app's peak while the decoder ran, plus the
            # decoder's (bench_child.memory)
            result["peak_rss_mb_1080p_10min_concurrent"] = max(
                m["concurrent_peak_bound_mb"] for m in both
            )
            result["memory_run"] = {**mem, "minutes": long_minutes, "fps": 2}
    if batch_sweep:
        result["batch_sweep_ms_per_crop"] = bench_batch_sizes(analyzer)
    return result


def format_table(r: dict) -> str:
    m = r["machine"]
    members = ", ".join(f"{n} ({p})" for n, p in r["precision"].items())
    spread = r.get("end_to_end_runs_s_720p_10s") or [r["end_to_end_s_720p_10s"]]
    lines = [
        f"CPU: {m['cpu_model']}; flags {' '.join(m['cpu_flags']) or 'none'}; kernel path "
        f"{m['cpu_path']}{' (capped by ONEDNN_MAX_CPU_ISA)' if m['isa_cap'] else ''}; torch "
        f"{m['torch']}, {m['cpu_threads']} threads; allocator {m.get('allocator', 'system')}",
        f"Models: {members}"
        + (f"; face-identity embedder ({p})" if (p := r.get("identity_precision")) else ""),
        "",
        "| measure | value |",
        "|---|---|",
        f"| end to end, 10 s 720p clip, 1 frame/s (median of {r.get('runs', 5)}"
        f"{f', each after a {pause:g} s pause' if (pause := r.get('end_to_end_pause_s')) else ''}"
        f"; range) | "
        f"{r['end_to_end_s_720p_10s']:.2f} s ({min(spread):.2f}-{max(spread):.2f}) |",
        *(
            [
                f"| the same, runs back to back (no pause for the spare children; median; "
                f"range) | {statistics.median(b2b):.2f} s ({min(b2b):.2f}-{max(b2b):.2f}) |"
            ]
            if (b2b := r.get("end_to_end_back_to_back_runs_s_720p_10s"))
            else []
        ),
        f"| end to end, 10 s 1080p clip | {r['end_to_end_s_1080p_10s']:.2f} s |",
    ]
    total = r["end_to_end_s_720p_10s"]
    for k, v in r["stages"].items():
        lines.append(f"| · {k[:-2]} | {v:.3f} s ({100 * v / total:.0f} %) |")
    s = r["scoring"]
    peaks = s["peak_matmul_gflops"]
    lines += [
        "| matmul peak, 2048², precisions in use | "
        + " / ".join(f"{k} {v:.0f}" for k, v in peaks.items())
        + " GFLOP/s |",
        f"| scoring, whole ensemble, {s['n_crops']} crops | {s['ms_per_crop']:.1f} ms/crop "
        f"(ideal {s['ideal_ms_per_crop']:.1f}), {s['achieved_gflops']:.0f} GFLOP/s; "
        f"**{100 * s['achieved_over_peak']:.0f} % of peak** (ideal time / measured time) |",
    ]
    for m, d in s["per_model"].items():
        how = f"{d['dtype']}, {'frozen' if d['frozen'] else 'eager'}, batch {d['batch_size']}"
        lines.append(
            f"| · {m} alone ({how}) | {d['gflops_per_crop']:.2f} GFLOP/crop, "
            f"{d['ms_per_crop']:.1f} ms/crop, {d['achieved_gflops']:.0f} GFLOP/s = "
            f"{100 * d['achieved_over_peak']:.0f} % of its peak |"
        )
    lines.append(
        f"| re-aggregation (new weights / median / threshold) | {r['reaggregate_ms']:.2f} ms |"
    )
    if "peak_rss_mb_1080p_10min" in r:
        m = r["memory_run"]
        lines.append(
            f"| peak RSS, {m['minutes']:g}-min 1080p clip, app + decoder process"
            + (f" (higher of {len(m['runs'])} runs)" if len(m.get("runs", [])) > 1 else "")
            + f" | {r['peak_rss_mb_1080p_10min']:.0f} MiB |"
        )
        for i, run in enumerate(m.get("runs", [m]), 1):
            bound = run.get("concurrent_peak_bound_mb")
            lines.append(
                f"| · run {i}: app {run['main_mb']:.0f} MiB + decoder {run['decoder_mb']:.0f} MiB"
                + (
                    f"; both at any one moment at most {bound:.0f} MiB (app's peak while "
                    f"decoding {run['app_peak_while_decoding_mb']:.0f} + decoder's, or app's after)"
                    if bound is not None
                    else ""
                )
                + (
                    f"; the app's anonymous memory at most {run['rss_anon_max_mb']:.0f} MiB "
                    f"(sampled), its mapped library files {run['rss_file_end_mb']:.0f} MiB at the end"
                    if "rss_anon_max_mb" in run
                    else ""
                )
                + f" | {run['seconds']:.0f} s |"
            )
    c = r["cold_start"]
    lines.append(
        f"| cold start, fresh process to ready, frozen graphs cached (median; range) | "
        f"{c['total_s']:.1f} s ({min(c['runs_s']):.1f}-{max(c['runs_s']):.1f}; imports "
        f"{c['imports_s']:.1f}, loading {c['load_models_s']:.1f}) |"
    )
    if "first_peak_mb" in c:  # runs since the child process freezes (0e77721)
        lines.append(
            "| first start after install (a child process traces, freezes and writes the cache) "
            f"| {c['first_s']:.1f} s; ready at {c['first_resident_mb']:.0f} MiB resident, peak "
            f"{c['first_peak_mb']:.0f} (cached start: {c['resident_mb']:.0f}, peak "
            f"{c['peak_mb']:.0f}); the freezing child's peak {c['first_child_peak_mb']:.0f} MiB |"
        )
    else:
        lines.append(
            f"| first start after install (traces, freezes, writes the cache) | {c['first_s']:.1f} s |"
        )
    if "cli_fresh_s" in r:
        runs = r["cli_fresh_runs_s"]
        lines.append(
            f"| `python -m detector analyze` on the 10 s 720p clip, fresh process (median; range) | "
            f"{r['cli_fresh_s']:.1f} s ({min(runs):.1f}-{max(runs):.1f}) |"
        )
    for name, t in r.get("shared_clips_s", {}).items():
        lines.append(f"| FaceForensics++ clip {name} | {t:.2f} s |")
    for name, by_bs in r.get("batch_sweep_ms_per_crop", {}).items():
        row = ", ".join(f"{bs}: {ms:.1f}" for bs, ms in by_bs.items())
        lines.append(f"| batch size -> ms/crop, {name} | {row} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__)
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--long-minutes", type=float, default=10.0, help="0 skips the memory run")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    p.add_argument(
        "--batch-sweep",
        action="store_true",
        help="also time each frozen member at batch sizes 4, 8, 16, 32",
    )
    p.add_argument(
        "--isa",
        choices=sorted(ISA_CAPS),
        default=None,
        help="measure as on a CPU without the newer instructions: caps oneDNN, torch's kernels "
        "and MKL (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS) and reruns",
    )
    args = p.parse_args(argv)
    if argv is None:
        from detector.allocator import restart_with_tcmalloc

        restart_with_tcmalloc()  # measure the allocator the app and the CLI start with
    # the caps must be set before torch starts: run again in a process that has them (and never
    # measure a partial cap, labelled as a CPU no one has)
    rest = argv if argv is not None else sys.argv[1:]
    if (code := rerun_capped_if_asked("scripts.bench", args.isa, rest)) is not None:
        return code
    r = run(args.runs, args.long_minutes, args.batch_sweep)
    r["runs"] = args.runs
    text = json.dumps(r, indent=2)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text if args.json else format_table(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
