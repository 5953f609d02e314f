"""What an engine is asked to do: the engine options and one unit of work (a clip to analyse)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detector.errors import BadSettingsError


@dataclass(frozen=True)
class EngineOptions:
    """Where the clips are analysed.

    Attributes:
        engine: "local" (this process) or "ray".
        workers: local: threads sharing one analyzer; ray: actors in the pool, each with its own.
        address: a running Ray cluster to join ("auto" or host:port); None starts a local one.
        cpus_per_worker / gpus_per_worker: what each Ray actor reserves (torch uses as many
            threads as CPUs reserved); None: this machine's cores shared by the workers for a
            local Ray instance, 1 on a cluster.
    """

    engine: str = "local"
    workers: int = 1
    address: str | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise BadSettingsError(
                f"unknown engine {self.engine!r}; use one of {', '.join(ENGINES)}"
            )
        if self.workers < 1:
            raise BadSettingsError("--workers must be at least 1")
        if self.engine == "local" and (
            self.address or self.cpus_per_worker is not None or self.gpus_per_worker
        ):
            raise BadSettingsError(
                "--address, --cpus-per-worker and --gpus-per-worker need --engine ray"
            )
        if (self.cpus_per_worker is not None and self.cpus_per_worker <= 0) or (
            self.gpus_per_worker < 0
        ):
            raise BadSettingsError(
                "--cpus-per-worker must be above 0, --gpus-per-worker at least 0"
            )


@dataclass(frozen=True)
class Work:
    """A clip to analyse (the first path of its content); the engine returns ``index`` with it."""

    index: int
    path: Path
    sha256: str


ENGINES = ("local", "ray")
