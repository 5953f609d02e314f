"""``scan --engine ray``: the same per-clip analysis on Ray Data, on one machine or a cluster.

The clips to analyse (paths and the sha256 the driver computed) become a dataset, one clip per
block; ``map_batches`` runs :class:`ClipAnalyzer`, a callable class whose constructor builds and
loads one :class:`~detector.pipeline.Analyzer` per actor, on a fixed actor pool
(``ActorPoolStrategy(size=workers)``), each actor reserving ``num_cpus`` / ``num_gpus``. Each call
returns the finished results line (:func:`detector.batch.records.analyse_clip`, as the local engine
makes it); the driver streams the lines back as they finish and is the only writer of
``results.jsonl``, so resuming and the summary work as for the local engine.

Without ``address`` a private local Ray instance starts (no dashboard, no usage statistics) and is
shut down at the end. With one, the driver joins that cluster: every node needs this checkout and
its virtual environment at the same path (weights included), and the clips at the same path too
(a shared filesystem); ``ray start`` there with that environment's ``ray``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from detector.batch.records import ScanSettings, analyse_clip
from detector.batch.work import EngineOptions, Work
from detector.errors import BadSettingsError, WeightsMissingError
from detector.settings import PROJECT_ROOT

# Passed on to the actors (a cluster's nodes do not share the driver's environment).
PASS_ENV = (
    "DEEPFAKE_WEIGHTS_DIR",
    "DEEPFAKE_CACHE_DIR",
    "DEEPFAKE_SHARED_DIR",
    "DEEPFAKE_DATA_DIR",
    "DEEPFAKE_FROZEN_DIR",
    "DEEPFAKE_FREEZE_IN_CHILD",
    "HF_HUB_OFFLINE",
    "OMP_WAIT_POLICY",
    "MALLOC_ARENA_MAX",
)
OBJECT_STORE_BYTES = 256 * 1024**2  # a local instance's object store: lines are small


class ClipAnalyzer:
    """Ray Data callable class: one loaded analyzer per actor, one results line per clip."""

    def __init__(self, settings: ScanSettings, fingerprint: str) -> None:
        from detector.pipeline import Analyzer

        self.settings = settings
        self.fingerprint = fingerprint
        self.analyzer = Analyzer(
            settings.models, device=settings.device, spare_children=True
        ).load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lines = [
            analyse_clip(self.analyzer, Path(str(p)), str(s), self.settings, self.fingerprint)
            for p, s in zip(batch["path"], batch["sha256"], strict=True)
        ]
        return {"index": np.asarray(batch["index"]), "line": np.array(lines, dtype=object)}


def ray_lines(
    work: Sequence[Work], settings: ScanSettings, fingerprint: str, engine: EngineOptions
) -> Iterator[tuple[int, str]]:
    """``(index, line)`` per clip, in the order they finish.

    Raises:
        WeightsMissingError: a model has no weights here (checked before Ray starts; each actor
            checks the files' sha256 as it loads them).
    """
    _require_weights(settings.models)
    ray = _import_ray()
    connected = _connect(ray, engine)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the scan's own bar counts clips on stderr
        context.execution_options.preserve_order = False  # stream lines as clips finish
        items = [{"index": w.index, "path": str(w.path), "sha256": w.sha256} for w in work]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ClipAnalyzer,
            fn_constructor_kwargs={"settings": settings, "fingerprint": fingerprint},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=engine.workers),
            num_cpus=cpus_per_worker(engine),
            num_gpus=engine.gpus_per_worker or None,
        )
        for row in dataset.iter_rows():
            yield int(row["index"]), str(row["line"])
    finally:
        if connected:
            ray.shutdown()  # stops a local instance; only disconnects from a cluster


def cpus_per_worker(engine: EngineOptions) -> float:
    """As asked; else this machine's cores shared by the workers (local instance), 1 (cluster)."""
    if engine.cpus_per_worker is not None:
        return engine.cpus_per_worker
    return 1 if engine.address else max(1, (os.cpu_count() or 1) // engine.workers)


def _require_weights(models: Sequence[str]) -> None:
    from detector.models import model_card

    missing = [m for m in models if not model_card(m).available]
    if missing:
        raise WeightsMissingError(f"no verified weights for {', '.join(missing)} in weights/")


def _import_ray():
    # Before ray is imported: nothing is reported to Ray's usage-statistics server.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data
    except ImportError:
        raise BadSettingsError(
            "--engine ray needs Ray Data: pip install -r requirements.txt (ray[data] is pinned "
            "there)"
        ) from None
    _quiet_console(logging.getLogger("ray.data"))
    return ray


class _NoProgressBarNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Progress bars disabled")


def _quiet_console(logger: logging.Logger) -> None:
    """Ray Data's own console lines: warnings only (its full log stays in the session's log
    folder), without the notice that its progress bars are off (the scan has its own)."""
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler) and "File" not in type(handler).__name__:
            handler.setLevel(logging.WARNING)
            if not any(isinstance(f, _NoProgressBarNotice) for f in handler.filters):
                handler.addFilter(_NoProgressBarNotice())


def _connect(ray, engine: EngineOptions) -> bool:
    """Join the cluster at ``engine.address`` or start a private local instance; True when this
    call connected (and so disconnects at the end)."""
    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    path = os.environ.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *([path] if path else [])])
    runtime_env = {"env_vars": env}
    if engine.address:
        ray.init(address=engine.address, runtime_env=runtime_env, log_to_driver=True)
        return True
    needed = int(np.ceil(cpus_per_worker(engine) * engine.workers))
    ray.init(
        num_cpus=max(os.cpu_count() or 1, needed),
        num_gpus=None,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        runtime_env=runtime_env,
        configure_logging=True,
        logging_level="warning",
    )
    return True
