"""Work in other threads: one function whose result, or error, the caller collects
(:class:`InThread`), the items of an iterator read a little ahead (:class:`ReadAhead`), and one
single-threaded torch worker per core (:class:`CoreWorkers`)."""

from __future__ import annotations

import functools
import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class InThread:
    """``fn()`` run in a daemon thread; :meth:`result` waits and returns its value or raises what
    it raised (no error is lost, none is printed by the thread itself)."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self._value: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class ReadAhead(Iterable[T]):
    """The items of ``items``, drawn by a daemon thread at most ``depth`` ahead of the caller.

    For a decoder: it decodes the next frames while the caller works on the last ones (a pipe
    holds less than one frame, so without this the decoder waits for every read), and
    :meth:`ready` tells the caller whether the next one has come. An error of ``items`` is raised
    to the caller where its item would have come. When the caller stops early, the thread stops
    at its next item and is joined before iteration ends, so the caller may close what the
    thread was reading (the decoder's pipe) only after it. Iterate once.
    """

    _END = object()

    def __init__(self, items: Iterable[T], depth: int = 2) -> None:
        self._items = items
        self._box: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()

    def ready(self) -> bool:
        """Whether the next item (or the end) has already come."""
        return not self._box.empty()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._box.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # handed to the caller by __iter__
            self._put((self._END, exc))

    def __iter__(self) -> Iterator[T]:
        thread = threading.Thread(target=self._run, daemon=True, name="read-ahead")
        thread.start()
        try:
            while True:
                item, error = self._box.get()
                if item is self._END:
                    if error is not None:
                        raise error
                    return
                yield item
        finally:
            self._stop.set()
            thread.join()


class CoreWorkers:
    """One single-threaded torch worker per core, to run networks side by side on a CPU.

    Two networks on one thread each beat one at a time on two threads here: with
    ``OMP_WAIT_POLICY=PASSIVE`` (needed so that torch does not spin against the decoder process)
    the OpenMP threads sleep between the many small operations of a network and a quarter of the
    CPU idled; the per-thread runs have no such barriers. Measured on 64 crops of the default
    ensemble: 41 -> 32-36 ms per crop, and 67 -> 53-55 ms with another process busy on one core.
    The faces stage of a warm 10 s 720p analysis, MTCNN's network calls and the identity
    embedder's batch spread over two workers (:meth:`balance`, :meth:`split`) instead of run on
    two threads: 0.81 -> 0.60 s natively, 1.00 -> 0.81 s with the ISA capped at AVX2 (2-core
    Xeon, nine interleaved runs each, medians).

    torch keeps the thread count per thread (OpenMP) but also remembers the last value set, for
    threads that start later; the workers set 1 and the process default is put back at once.
    """

    def __init__(self, n: int, name: str = "core") -> None:
        import torch

        before = torch.get_num_threads()
        started = threading.Barrier(n, timeout=60)

        def single_threaded() -> None:
            torch.set_num_threads(1)
            torch.get_num_threads()  # fixes this thread's setting before the default returns

        self.n = n
        self._pool = ThreadPoolExecutor(n, name, initializer=single_threaded)
        list(self._pool.map(lambda _: started.wait(), range(n)))  # start every worker now
        torch.set_num_threads(before)

    def run(self, tasks: Sequence[Callable[[], None]]) -> None:
        """Run the tasks on the workers (each pulls the next when done) and wait for all."""
        for future in [self._pool.submit(t) for t in tasks]:
            future.result()

    def balance(self, tasks: Sequence[Callable[[], R]], costs: Sequence[float]) -> list[R]:
        """Independent tasks run in :func:`shares` of about equal cost, one share per worker,
        each share's tasks in order; their results in task order."""
        out: list = [None] * len(tasks)

        def share_of(share: list[int]) -> Callable[[], None]:
            def run() -> None:
                for i in share:
                    out[i] = tasks[i]()

            return run

        self.run([share_of(share) for share in shares(costs, self.n) if share])
        return out

    def split(self, fn: Callable[[Sequence[T]], R], items: Sequence[T]) -> list[R]:
        """``fn`` over up to ``n`` contiguous, near-equal parts of ``items``, one part per worker
        (:meth:`balance` with equal costs); the parts' results in order (one part, run here,
        when there is one item or none)."""
        if len(items) < 2 or self.n < 2:
            return [fn(items)]
        q, r = divmod(len(items), self.n)
        cuts = [0]
        for k in range(min(self.n, len(items))):
            cuts.append(cuts[-1] + q + (k < r))
        parts = [functools.partial(fn, items[a:b]) for a, b in itertools.pairwise(cuts)]
        return self.balance(parts, [1.0] * len(parts))


def shares(costs: Sequence[float], n: int) -> list[list[int]]:
    """Task indices dealt into ``n`` shares: the costliest first, each to the share with the least
    cost so far (longest-processing-time-first scheduling)."""
    loads, out = [0.0] * n, [[] for _ in range(n)]
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        k = loads.index(min(loads))
        out[k].append(i)
        loads[k] += costs[i]
    return out


def cpu_workers(device: str) -> CoreWorkers | None:
    """One worker per torch thread on a CPU that gives torch more than one; otherwise None (a GPU
    runs a batch at once)."""
    import torch

    cores = torch.get_num_threads()
    return CoreWorkers(cores, "faces-core") if device == "cpu" and cores > 1 else None
