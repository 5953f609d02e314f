"""Work in a background thread whose results, or errors, the caller collects: one function
(:class:`InThread`) or the items of an iterator read a little ahead (:class:`ReadAhead`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


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
