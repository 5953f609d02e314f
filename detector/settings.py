"""Where things are: the project root, shipped weights and the optional shared research data.

``../shared`` (papers, FaceForensics++ crops and clips, original MesoNet weights) exists on developer
machines and in CI but not in a user's clone; everything that reads it takes the location from the
environment (``DEEPFAKE_SHARED_DIR``, ``DEEPFAKE_DATA_DIR``) and callers handle its absence.
Locations set by environment variables are read when asked for, not at import time.

This module is the one place they are read; the functions below are its settings.

| variable | default | what |
|---|---|---|
| ``DEEPFAKE_WEIGHTS_DIR`` | ``weights/`` | model weights and manifests (sha256-checked) |
| ``DEEPFAKE_SHARED_DIR`` | ``../shared`` | research data, papers (absent in a user's clone) |
| ``DEEPFAKE_DATA_DIR`` | ``<shared>/data`` | labelled clips and crops |
| ``DEEPFAKE_CACHE_DIR`` | ``.cache/`` | converted backbones, features, frozen graphs |
| ``DEEPFAKE_FROZEN_DIR`` | ``<cache>/frozen`` | frozen CPU graphs |
| ``DEEPFAKE_FREEZE_IN_CHILD`` | ``1`` | ``0``: a missing graph is frozen in the loading process |
| ``DEEPFAKE_DEVICE`` | ``auto`` | ``auto`` (a GPU when present), ``cpu`` or ``cuda`` |
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


def pretrained_dir() -> Path:
    """Converted pretrained backbones (initialisations for training): ``<cache>/pretrained``."""
    return cache_dir() / "pretrained"


def frozen_dir() -> Path:
    """Frozen CPU graphs: ``DEEPFAKE_FROZEN_DIR``, else ``<cache>/frozen``."""
    env = os.environ.get("DEEPFAKE_FROZEN_DIR")
    return Path(env) if env else cache_dir() / "frozen"


FREEZE_IN_CHILD = "DEEPFAKE_FREEZE_IN_CHILD"


def freeze_in_child() -> bool:
    """Whether a graph missing from the cache is traced and frozen in a child process
    (:func:`detector.scoring.frozen.build_in_child`): ``DEEPFAKE_FREEZE_IN_CHILD``, default yes;
    ``0``, ``no``, ``false`` or ``off`` freeze in the loading process."""
    value = os.environ.get(FREEZE_IN_CHILD, "1").strip().lower()
    return value not in {"0", "no", "false", "off"}


def device() -> str:
    """The device asked for by default: ``DEEPFAKE_DEVICE``, else ``auto``."""
    return os.environ.get("DEEPFAKE_DEVICE", "auto").lower()
