"""Where things are: the project root, shipped weights and the optional shared research data.

``../shared`` (papers, FaceForensics++ crops and clips, original MesoNet weights) exists on developer
machines and in CI but not in a user's clone; everything that reads it takes the location from the
environment (``DEEPFAKE_SHARED_DIR``, ``DEEPFAKE_DATA_DIR``) and callers handle its absence.
Locations set by environment variables are read when asked for, not at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = PROJECT_ROOT / "weights"


def weights_dir() -> Path:
    """Where model weights and manifests are loaded from.

    ``DEEPFAKE_WEIGHTS_DIR`` if set, else the shipped ``weights/``; every file found there is still
    checked against its manifest's sha256 before it is loaded.
    """
    env = os.environ.get("DEEPFAKE_WEIGHTS_DIR")
    return Path(env) if env else WEIGHTS_DIR


def shared_dir() -> Path:
    """The shared research folder (default ``../shared`` beside the project)."""
    return Path(os.environ.get("DEEPFAKE_SHARED_DIR", PROJECT_ROOT.parent / "shared"))


def data_dir() -> Path:
    """The shared data folder (default ``<shared>/data``)."""
    env = os.environ.get("DEEPFAKE_DATA_DIR")
    return Path(env) if env else shared_dir() / "data"


def cache_dir() -> Path:
    """Local, git-ignored cache for converted pretrained backbones and extracted features."""
    return Path(os.environ.get("DEEPFAKE_CACHE_DIR", PROJECT_ROOT / ".cache"))
