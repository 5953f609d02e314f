"""The fresh processes ``scripts/bench.py`` measures (``python -m scripts.bench_child cold|memory``).

They run in their own interpreter so that imports, loading and peak memory are those of a new
process; nothing from ``detector`` is imported before the clock starts.

- ``cold``: prints the seconds to import the pipeline and to load every model (an ``Analyzer``).
- ``memory CLIP``: analyses CLIP and prints one JSON line: status, faces, seconds, the process's
  peak RSS (``main_mb``, the kernel's exact figure, ``VmHWM``; a run whose JSON lacks
  ``app_peak`` took ``ru_maxrss``, which also holds the benchmark parent's memory at the fork)
  and the decoder child's (``decoder_mb``: its own ``VmHWM``, read from ``/proc`` every 20 ms
  once it has become the decoder, i.e. after exec, where the kernel's figure starts anew; a run
  whose JSON lacks ``decoder_peak`` sampled its ``VmRSS``), and the largest sampled sum of the
  app's RSS and that (``sampled_sum_mb``). A decoder that lived less than 20 ms would not be
  seen.
  ``concurrent_peak_bound_mb`` bounds the two together at any moment: the app's exact peak up to
  when the last decoder was gone (``app_peak_while_decoding_mb``) plus the decoder's peak, or the
  app's own peak after that, whichever is higher.
  What the app's resident memory is made of: ``rss_anon_max_mb``, the largest anonymous part
  (``RssAnon``: the heap, tensors) sampled every 20 ms, and ``rss_file_end_mb``, the mapped files
  (``RssFile``: the libraries' pages, clean and the first the kernel drops) at the end. How much
  of a library stays mapped depends on the kernel, so the anonymous part is the one to compare
  across machines.

Both end as ``python -m detector`` does (:func:`detector.cli.exit_now`), so a wall time holds
no interpreter teardown.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from detector.allocator import hwm_mb, rss_mb

DECODER_MODULE = b"detector.io.isolated.child"


def cold() -> None:
    t0 = time.perf_counter()
    from detector.pipeline import Analyzer

    t1 = time.perf_counter()
    Analyzer(device="cpu").load()
    t2 = time.perf_counter()
    from detector.scoring.frozen import CHILD_RUNS

    # the largest peak of a child that froze graphs for this start (0: none did)
    child_mb = max((run["peak_mb"] or 0.0 for run in CHILD_RUNS), default=0.0)
    print(t1 - t0, t2 - t1, hwm_mb(), rss_mb("self"), child_mb)


def decoders():
    """Children that have become the decoder (a child between fork and exec still shows the
    parent's pages, shared, and is not counted)."""
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids = f.read().split()
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if DECODER_MODULE in argv:
                yield pid


def memory(clip: str) -> None:
    peak = {
        "sum_mb": 0.0,
        "decoder_mb": 0.0,
        "hwm_at_decoder_end_mb": None,
        "alive": False,
        "anon_mb": 0.0,
    }
    steps: list[tuple[float, float, str]] = []  # where the peak rose by 32 MiB or more
    t_start = time.perf_counter()
    main_id = threading.get_ident()

    def poll() -> None:
        last = 0.0
        while True:
            if (h := hwm_mb()) >= last + 32:
                stack = sys._current_frames().get(main_id)
                where = (
                    f"{stack.f_code.co_filename.split('/')[-1]}:{stack.f_lineno}" if stack else ""
                )
                steps.append((round(time.perf_counter() - t_start, 2), round(h), where))
                last = h
            pids = list(decoders())
            dec = sum(rss_mb(p, "VmHWM") for p in pids)  # exact: it starts anew at exec
            peak["decoder_mb"] = max(peak["decoder_mb"], dec)
            peak["sum_mb"] = max(peak["sum_mb"], rss_mb("self") + dec)
            peak["anon_mb"] = max(peak["anon_mb"], rss_mb("self", "RssAnon"))
            if peak["alive"] and not pids:
                # the decoders are gone: our peak so far covers all the time they ran
                peak["hwm_at_decoder_end_mb"] = hwm_mb()
            peak["alive"] = bool(pids)
            time.sleep(0.02)

    threading.Thread(target=poll, daemon=True).start()
    from detector.allocator import in_use
    from detector.pipeline import Analyzer, ExtractionSettings

    a = Analyzer(device="cpu")
    t0 = time.perf_counter()
    r = a.analyze(clip, ExtractionSettings())
    dt = time.perf_counter() - t0
    time.sleep(0.05)
    # the kernel's peak of this process's own memory since exec: getrusage's ru_maxrss would
    # also hold the parent's at the fork (the benchmark's, about 1.7 GiB), which it keeps
    main_mb = hwm_mb()
    during = peak["hwm_at_decoder_end_mb"]
    if peak["alive"] or during is None:  # a decoder still running (or never seen): no better
        during = main_mb
    # while a decoder ran, the app stayed under its peak at the decoder's end and the decoder
    # under its own; afterwards only the app ran: a bound on the two together at any moment
    concurrent = max(during + peak["decoder_mb"], main_mb)
    print(
        json.dumps(
            {
                "status": r.status,
                "faces": len(r.faces),
                "seconds": dt,
                "main_mb": main_mb,
                "decoder_mb": peak["decoder_mb"],
                "sampled_sum_mb": peak["sum_mb"],
                "app_peak_while_decoding_mb": during,
                "concurrent_peak_bound_mb": concurrent,
                "rss_anon_max_mb": max(peak["anon_mb"], rss_mb("self", "RssAnon")),
                "rss_file_end_mb": rss_mb("self", "RssFile"),
                "peak_steps": steps,  # (seconds from start, MiB, main thread's line)
                "app_peak": "VmHWM",  # earlier runs: ru_maxrss (with the parent's memory)
                "decoder_peak": "VmHWM",  # earlier runs: VmRSS sampled every 20 ms
                "allocator": in_use(),
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["cold"]:
        cold()
    elif sys.argv[1:2] == ["memory"] and len(sys.argv) == 3:
        memory(sys.argv[2])
    else:
        raise SystemExit("usage: python -m scripts.bench_child cold | memory CLIP")
    from detector.cli import exit_now

    exit_now(0)  # ends as `python -m detector` does: no interpreter teardown in the wall time
