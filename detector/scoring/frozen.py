"""Frozen TorchScript graphs cached on disk, so that no process traces and freezes at start-up.

Tracing and freezing the default members took 15 s of every cold start on the 2-core CPU (CLIP
6.2 s, Inception-ResNet-v2 5.7 s); loading the saved graph takes 0.03-0.12 s and its first call is
no slower. A graph depends on more than the weights, so the key (:func:`cache_key`) holds the
weights' sha256 and everything else that shapes the graph or the kernels oneDNN chose: the code
of the networks (:func:`code_digest`), torch's and timm's versions, the CPU's instruction-set
flags, any ``ONEDNN_MAX_CPU_ISA`` cap, the precision, the traced size and batch.

Every graph is written with its sha256 beside it and checked before loading: a truncated,
corrupted or swapped file is ignored and rebuilt from the verified weights, never trusted. The
cache lives in the git-ignored ``.cache/frozen`` (``DEEPFAKE_CACHE_DIR`` moves it); deleting it
is always safe.

A graph missing from the cache is traced and frozen in a fresh Python process
(:func:`build_in_child`), which writes it and exits; the caller then loads it like any cached
graph. Tracing passes through the eager float32 network and its copies, and a process that froze
its graphs itself kept much of that for the rest of its life (with tcmalloc, even after handing
its free pages back): the first analysis of the bench's 10-minute 1080p clip after an install
peaked at 1,784 MiB natively and 1,737 MiB capped at AVX2, against 1,224 and 1,361 MiB with the
child (docs/performance-history.md, 2026-12-05f). ``DEEPFAKE_FREEZE_IN_CHILD=0`` freezes in the calling
process instead.

TorchScript is deprecated in favour of ``torch.export``, whose ahead-of-time
compiled packages need a C++ compiler on the analyst's machine; this is what loads without one.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from detector.scoring.device import cpu_flags, isa_cap
from detector.settings import FREEZE_IN_CHILD as IN_CHILD  # the child is told not to spawn again
from detector.settings import freeze_in_child

FORMAT = 1
CHILD_TIMEOUT_S = 1800  # CLIP freezes in about 30 s on a slow CPU; a stuck child is given up
CHILD_REFUSED = 3  # the child met a typed error (weights missing, tampered): the caller raises it
log = logging.getLogger(__name__)
CHILD_RUNS: list[dict] = []  # this process's freezing children: target, seconds, peak MiB
# One freezing child at a time: the app loads the members and the face networks in two threads,
# and two children tracing at once would add their memory peaks (and share the same 2 cores).
_one_child = threading.Lock()


@functools.cache
def code_digest() -> str:
    """sha256 of the code that defines and freezes the networks (``detector/models/**/*.py``,
    ``detector/scoring/ensemble.py`` and ``graphs.py``, ``detector/faces/identity.py``, this
    file): a changed forward pass is a new key, so no graph traced from older code is ever
    loaded."""
    root = Path(__file__).resolve().parents[1]
    files = [
        *sorted((root / "models").rglob("*.py")),
        root / "scoring" / "ensemble.py",
        root / "scoring" / "graphs.py",
        root / "faces" / "identity.py",
        Path(__file__).resolve(),
    ]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def cache_key(**parts) -> str:
    """A short hex key of ``parts`` plus the code, the library versions and the CPU's kernels."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        timm_version = version("timm")
    except PackageNotFoundError:
        timm_version = None
    parts = {
        **parts,
        "format": FORMAT,
        "code": code_digest(),
        "timm": timm_version,
        "torch": torch.__version__,
        "flags": list(cpu_flags()),
        "isa_cap": isa_cap(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def file_stamps(files) -> list:
    """(name, size, mtime in ns) of each file, or (name, None, None) if missing: part of a key,
    so that a graph is rebuilt, from weights verified again, whenever its sources change."""
    out = []
    for f in map(Path, files):
        try:
            st = f.stat()
            out.append([f.name, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([f.name, None, None])
    return out


KEEP_PER_NAME = 3  # graphs kept per network (other weights, precisions, CPU caps); older go


def cache_folder() -> Path:
    """:func:`detector.settings.frozen_dir`: ``DEEPFAKE_FROZEN_DIR``, else ``<cache>/frozen``."""
    from detector.settings import frozen_dir

    return frozen_dir()


def _prune(folder: Path, name: str) -> None:
    graphs = sorted(folder.glob(f"{name}-*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in graphs[KEEP_PER_NAME:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)


def _entry(name: str, key: str) -> tuple[Path, Path]:
    """The graph's file and its metadata's file in the cache."""
    graph = cache_folder() / f"{name}-{key}.pt"
    return graph, graph.with_suffix(".json")


def load_frozen(name: str, key: str) -> tuple[nn.Module, dict] | None:
    """The cached graph of ``key`` and its metadata, if present and its bytes match the sha256
    recorded when it was written; None otherwise (the caller rebuilds it)."""
    from detector.io.files import sha256_file

    graph, meta = _entry(name, key)
    if not (graph.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text("utf-8"))
        if info.get("sha256") != sha256_file(graph):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
            return torch.jit.load(str(graph), map_location="cpu"), info
    except Exception:  # any unreadable entry is rebuilt, never trusted
        return None


def save_frozen(name: str, key: str, module: nn.Module, **info) -> None:
    """Write the graph, then its sha256 (and ``info``), each atomically: a crash or a concurrent
    writer never leaves a half file under the final name. A read-only cache is skipped (that
    process simply freezes at every start)."""
    from detector.io.files import sha256_file

    folder = cache_folder()
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        os.close(fd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(module, tmp)
        meta = {**info, "sha256": sha256_file(Path(tmp))}
        graph, meta_file = _entry(name, key)
        os.replace(tmp, graph)
        tmp = None
        fd, tmp_meta = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(meta, fh)
        os.replace(tmp_meta, meta_file)
        _prune(folder, name)
    except OSError:
        pass
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink()


def cached(name: str, key: str | None, build) -> tuple[nn.Module, dict]:
    """The frozen graph of ``key`` from the cache, or ``build()`` (returning the graph and its
    metadata) and store it. ``key=None`` always builds and stores nothing."""
    if key is not None and (hit := load_frozen(name, key)) is not None:
        return hit
    module, info = build()
    if key is not None:
        save_frozen(name, key, module, **info)
    return module, info


def present(name: str, key: str) -> bool:
    """Whether the cache holds a graph (and its metadata) under ``key``; whether its bytes are
    sound is checked when it is loaded (:func:`load_frozen`)."""
    return all(f.is_file() for f in _entry(name, key))


def build_in_child(target: str, expect: dict[str, str], **kwargs) -> bool:
    """Run ``target`` ("module:function", called with the JSON-able ``kwargs``) in a fresh Python
    process that traces, freezes and writes graphs into this process's cache folder, so that
    this process only ever loads them (see the module's docstring for why). ``expect`` maps each
    network's name to the key this process will load it by: the child checks that it wrote
    every one (a key computed otherwise there, e.g. from code edited since this process started,
    or a full disk, is reported here rather than frozen twice unnoticed).

    Returns whether the child finished with every graph written. When it did not
    (``DEEPFAKE_FREEZE_IN_CHILD=0``, no writable cache, or the child failed, which is logged),
    the caller builds in its own process, as :func:`cached` does on a miss: the graph and the
    scores are the same, only this process's memory is not. A typed error in the child (weights
    missing or tampered with) is logged at debug level only: the caller's own build raises it,
    and the analyst reads it once, in words."""
    if not freeze_in_child():
        return False
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    if not os.access(folder, os.W_OK):
        return False
    project = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (project, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "DEEPFAKE_FROZEN_DIR": str(folder), IN_CHILD: "0", "PYTHONPATH": path}
    job = json.dumps({"target": target, "expect": expect, "kwargs": kwargs})
    args = [sys.executable, "-m", "detector.scoring.frozen", job]
    with _one_child:
        t0 = time.perf_counter()
        try:
            done = subprocess.run(
                args, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("freezing in a child process failed (%s); freezing here instead", exc)
            return False
    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
    if done.returncode == CHILD_REFUSED:  # building here raises the same error, in words
        log.debug("the freezing child met a typed error: %s", last)
        return False
    if done.returncode != 0:
        log.warning("freezing in a child process failed (%s); freezing here instead", last)
        return False
    seconds = time.perf_counter() - t0
    try:  # the child's last line; anything else it printed is not ours to fail on
        peak = float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"])
    except (IndexError, ValueError, TypeError, KeyError):
        peak = None
    CHILD_RUNS.append({"target": target, "seconds": seconds, "peak_mb": peak})
    log.info(
        "%s froze %s in a child process: %.1f s, peak %s MiB", target, list(expect), seconds, peak
    )
    return True


def _child_main(job: str) -> int:
    """``python -m detector.scoring.frozen '{"target": ..., "expect": ..., "kwargs": ...}'``:
    the child's side of :func:`build_in_child`."""
    from detector.errors import DetectorError

    job = json.loads(job)
    module, function = job["target"].split(":")
    try:
        getattr(importlib.import_module(module), function)(**job["kwargs"])
    except DetectorError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return CHILD_REFUSED
    unwritten = sorted(n for n, key in job["expect"].items() if not present(n, key))
    if unwritten:
        print(
            f"no graph written under the caller's key for {', '.join(unwritten)} (a key "
            "computed otherwise in the child, or a cache that could not be written)",
            file=sys.stderr,
        )
        return 1
    from detector.allocator import hwm_mb

    print(json.dumps({"peak_mb": hwm_mb()}))  # the caller records it (CHILD_RUNS)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(*sys.argv[1:]))
