"""Child processes started ahead of the file they will read.

Every untrusted file is read by fresh child processes (the decoder, the metadata reader) that
serve that one file and exit. Starting one is a Python start-up and its imports: about 0.2 s of
one core on a 2-core Xeon (``python -c "import detector.io.isolated.child"``), which each analysis
waited for, twice. An analyzer built with ``spare_children=True`` (the app, ``scan``) therefore
keeps one spare of each kind started between analyses: the next file takes it. A spare is still a
fresh process that has read nothing and serves one file; it applies its limits when it receives
its job, as a child started on demand does. A spare whose command or environment differs from
what would be started now is killed and a fresh child started. Spares are killed at exit, and
end on their own if this process dies (their stdin closes, so their job read fails).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import threading
from dataclasses import dataclass

from detector.settings import PROJECT_ROOT


@dataclass
class Child:
    """A started child: its process and, for a child given a message pipe, the pipe's read end."""

    proc: subprocess.Popen
    read_fd: int | None
    key: tuple


_lock = threading.Lock()
_spares: dict[str, Child] = {}


def start(kind: str, argv: list[str], env: dict[str, str], pipe: bool = False) -> Child:
    """A child running ``argv`` (plus the write end of a new pipe when ``pipe``): the spare of
    this kind if one matches, else a fresh one. The caller owns it from here."""
    key = _key(argv, env, pipe)
    with _lock:
        spare = _spares.pop(kind, None)
    if spare is not None:
        if _usable(spare, key):
            return spare
        _discard(spare)
    return _spawn(argv, env, pipe, key)


def prepare(kind: str, argv: list[str], env: dict[str, str], pipe: bool = False) -> None:
    """Start a spare of this kind unless a live one is waiting."""
    key = _key(argv, env, pipe)
    with _lock:
        spare = _spares.pop(kind, None)
        if spare is not None and not _usable(spare, key):
            _discard(spare)
            spare = None
        _spares[kind] = spare or _spawn(argv, env, pipe, key)


def _key(argv: list[str], env: dict[str, str], pipe: bool) -> tuple:
    return tuple(argv), tuple(sorted(env.items())), pipe


def _usable(spare: Child, key: tuple) -> bool:
    """Whether ``spare`` runs the command asked for, in the environment asked for, and lives."""
    return spare.key == key and spare.proc.poll() is None


def pids() -> set[int]:
    """The process ids of the spares waiting now."""
    with _lock:
        return {s.proc.pid for s in _spares.values() if s.proc.poll() is None}


def discard_all() -> None:
    """Kill every waiting spare (at exit; tests)."""
    with _lock:
        waiting = list(_spares.values())
        _spares.clear()
    for spare in waiting:
        _discard(spare)


def _spawn(argv: list[str], env: dict[str, str], pipe: bool, key: tuple) -> Child:
    read_fd = write_fd = None
    if pipe:
        read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [*argv, str(write_fd)] if pipe else argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL if pipe else subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            pass_fds=(write_fd,) if pipe else (),
            cwd=PROJECT_ROOT,
            env=env,
        )
    except BaseException:
        if read_fd is not None:
            os.close(read_fd)
        raise
    finally:
        if write_fd is not None:
            os.close(write_fd)
    return Child(proc, read_fd, key)


def _discard(child: Child) -> None:
    if child.proc.poll() is None:
        child.proc.kill()
    child.proc.wait()
    for stream in (child.proc.stdin, child.proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if child.read_fd is not None:
        with contextlib.suppress(OSError):
            os.close(child.read_fd)


atexit.register(discard_all)
