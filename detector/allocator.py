"""The memory allocator the tool's processes run with: tcmalloc when the machine has it.

glibc's malloc keeps what a forward pass frees: scoring a 16-crop batch with the default ensemble
left the process 300-400 MiB above its live memory (freed chunks in fragmented heaps, handed back
only by ``malloc_trim``), and a fixed mmap threshold that returns them cost 10-30 % of the scoring
time in page faults. tcmalloc (gperftools' ``libtcmalloc_minimal``, Debian/Ubuntu package
``libtcmalloc-minimal4``) reuses the same memory instead: the peak of a 1-minute 1080p analysis
fell from 1,527-1,603 to 1,242-1,253 MiB and the warm 10 s clip was no slower (probe runs, see
docs/performance-history.md, the AMD EPYC section of 2026-12-05b).

A process can only get another allocator when it starts (``LD_PRELOAD``), so the entry points
(``python -m detector``, ``make run`` through ``python -m detector.allocator``, the benchmark)
start themselves again with it, once, before anything heavy is imported. Nothing here imports
more than the standard library.

The preload is in the environment, so the processes these start (the decoder, the provenance
reader, espeak-ng in tests) run with tcmalloc too, and are measured so by the benchmark.
``DEEPFAKE_ALLOCATOR=system`` keeps the system's allocator. Without the library the tool runs as
before, on glibc; :func:`in_use` says which allocator a process has, and the benchmark records it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

LIBRARY_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
SEARCH_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)
SETTING = "DEEPFAKE_ALLOCATOR"  # "auto" (default): tcmalloc when found; "system": never
# tcmalloc reports every allocation above 1 GiB on stderr; a long clip's crops can be one
QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}
_STARTED = "DEEPFAKE_ALLOCATOR_STARTED"  # set in the restarted process: never restart twice


def rss_mb(pid="self", field: str = "VmRSS") -> float:
    """A process's resident size (``VmRSS``), or its peak since exec (``field="VmHWM"``, the
    kernel's exact figure), or another field of ``/proc/PID/status`` (``RssAnon``, ``RssFile``),
    MiB; 0 where there is no ``/proc``."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(x.split()[1]) for x in f if x.startswith(field)) / 1024
    except (OSError, StopIteration):
        return 0.0


def hwm_mb() -> float:
    """This process's peak resident size so far (the kernel's ``VmHWM``), MiB."""
    return rss_mb("self", "VmHWM")


def find_tcmalloc(dirs: Sequence[str] | None = None) -> Path | None:
    """The tcmalloc shared library on this machine (in ``dirs``, default :data:`SEARCH_DIRS`),
    or None."""
    for d in SEARCH_DIRS if dirs is None else dirs:
        for name in LIBRARY_NAMES:
            p = Path(d) / name
            if p.is_file():
                return p
    return None


def in_use() -> str:
    """The allocator this process runs with: "tcmalloc", "jemalloc", or "system" (the C
    library's own, glibc's on Linux)."""
    try:
        maps = Path("/proc/self/maps").read_text("utf-8", errors="ignore")
    except OSError:
        return "system"
    for name in ("tcmalloc", "jemalloc"):
        if f"lib{name}" in maps:
            return name
    return "system"


def environment(env: dict[str, str] | None = None) -> dict[str, str] | None:
    """``env`` (default: this process's) with tcmalloc preloaded, or None when it should not or
    cannot be: not Linux, ``DEEPFAKE_ALLOCATOR=system``, the library absent, or an allocator
    (tcmalloc or jemalloc) already preloaded."""
    env = dict(os.environ if env is None else env)
    if not sys.platform.startswith("linux") or env.get(SETTING, "auto") == "system":
        return None
    preload = env.get("LD_PRELOAD", "")
    if "tcmalloc" in preload or "jemalloc" in preload:
        return None
    lib = find_tcmalloc()
    if lib is None:
        return None
    env["LD_PRELOAD"] = f"{lib} {preload}".strip()
    return {**QUIET, **env, _STARTED: "1"}


def restart_with_tcmalloc() -> None:
    """Start this Python program again (same interpreter, flags and arguments) with tcmalloc,
    when :func:`environment` says so and this process is not already such a restart. Call it
    first thing: the process is replaced and nothing before the call survives. Returns (doing
    nothing) otherwise."""
    if os.environ.get(_STARTED) or in_use() != "system":
        return
    env = environment()
    if env is None:
        return
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:  # the interpreter cannot be started again: go on as this process is
        return


def main(argv: list[str] | None = None) -> int:
    """``python -m detector.allocator COMMAND [ARGS...]``: run COMMAND with tcmalloc preloaded
    when the machine has it (``make run`` starts the app this way)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(f"in use: {in_use()}; tcmalloc: {find_tcmalloc() or 'not found'}")
        return 0
    env = environment() or dict(os.environ)
    try:
        os.execvpe(args[0], args, env)
    except OSError as e:  # not found, not executable
        print(f"python -m detector.allocator: cannot run {args[0]}: {e.strerror}", file=sys.stderr)
        return 127
    return 127  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
