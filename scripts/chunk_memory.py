"""How many crops a chunk of scoring should hold on the CPU: memory against time, per CPU path.

For each CPU path (native, and oneDNN / ATen / MKL capped as ``scripts.bench --isa`` caps them)
and each chunk size, a fresh process loads the default ensemble (frozen graphs from the cache),
scores 8 crops to warm up, then 48, and reports the peak memory above the loaded models
(``VmHWM``, reset after loading, minus the resident size then) and the time per crop of the 48. The crops are
random pixels: the time and memory of a forward pass do not depend on what the pixels show.
``0`` is the ensemble's own choice (:meth:`detector.scoring.ensemble.Ensemble._batch_size`).

    python -m scripts.chunk_memory [--paths native,AVX2,AVX512_CORE_VNNI] [--chunks 0,8,4,2] [--repeat 1]

Run it alone (it times on every core). Chosen from it: ``FP32_CPU_BATCH`` in
:mod:`detector.scoring.ensemble`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def child(chunk: int) -> None:
    import numpy as np

    from detector.allocator import hwm_mb, rss_mb
    from detector.scoring.ensemble import Ensemble
    from detector.verdict.scoring import default_models

    ensemble = Ensemble(default_models(), device="cpu")
    if chunk:  # every member in chunks of ``chunk`` crops, whatever its precision
        ensemble._batch_size = lambda member: chunk
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (48, 320, 320, 3), dtype=np.uint8)
    loaded = rss_mb("self")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # VmHWM starts again from here: a graph built at load does not count
    ensemble.score(crops[:8])
    t0 = time.perf_counter()
    ensemble.score(crops)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "precisions": ensemble.precisions,
                "loaded_mb": round(loaded),
                "peak_above_loaded_mb": round(hwm_mb() - loaded),
                "ms_per_crop": round(1000 * seconds / len(crops), 1),
            }
        )
    )


def main() -> None:
    from detector.scoring.device import ISA_CAPS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paths", default="native,AVX2,AVX512_CORE_VNNI")
    p.add_argument("--chunks", default="0,8,4,2")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    print("| CPU path | chunk | precisions | peak above loaded (MB) | ms per crop |")
    print("|---|---|---|---|---|")
    for path in args.paths.split(","):
        env = {**os.environ, **({} if path == "native" else ISA_CAPS[path])}
        for chunk in (int(c) for c in args.chunks.split(",")):
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, "-m", "scripts.chunk_memory", "--child", str(chunk)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                words = ", ".join(f"{n} {w}" for n, w in r["precisions"].items())
                print(
                    f"| {path} | {chunk or 'default'} | {words} | "
                    f"{r['peak_above_loaded_mb']} | {r['ms_per_crop']} |",
                    flush=True,
                )


if __name__ == "__main__":
    from detector.allocator import restart_with_tcmalloc

    restart_with_tcmalloc()  # the allocator the app starts with (its children inherit it)
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]))
    else:
        main()
