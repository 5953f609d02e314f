"""Device and thread choices in one place: a GPU when present, otherwise all CPU cores."""

from __future__ import annotations

import os

import torch

from detector.errors import BadSettingsError


def resolve_device(wanted: str = "auto") -> torch.device:
    """ "auto" picks CUDA when available, else CPU; asking for CUDA without a GPU is an error."""
    wanted = (wanted or "auto").lower()
    if wanted == "auto":
        wanted = os.environ.get("DEEPFAKE_DEVICE", "auto").lower()
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise BadSettingsError("--device cuda was asked for but no CUDA GPU is available")
    if wanted not in ("cpu",) and not wanted.startswith("cuda"):
        raise BadSettingsError(f"unknown device {wanted!r}; use auto, cpu or cuda")
    return torch.device(wanted)


def release_free_memory() -> None:
    """Hand memory the allocator holds but no longer uses back to the OS (glibc ``malloc_trim``).

    Loading a model passes through float32 copies that are freed at once, but glibc keeps such
    freed heap memory mapped, so the process would stay as large as its loading peak. Called
    after loading the ensemble and before its worker threads score (they allocate from their
    own arenas); a no-op where glibc is absent.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return
    trim(0)
