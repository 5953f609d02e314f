"""One function run in a background thread whose result, or error, the caller collects."""

from __future__ import annotations

import threading
from collections.abc import Callable


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
