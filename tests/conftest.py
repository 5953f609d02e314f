"""Shared fixtures: synthetic videos made on the spot, and the optional ../shared research data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# As in the Makefile: idle OpenMP threads sleep instead of spinning, which matters on a busy machine
# (set before anything imports torch).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from detector.io import synthetic
from detector.settings import data_dir, shared_dir


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """A few small synthetic clips, made once per test session."""
    root = tmp_path_factory.mktemp("videos")
    return {
        "face": synthetic.astronaut_clip(root / "face.mp4", seconds=4),
        "three_faces": synthetic.astronaut_clip(
            root / "three.mp4", seconds=3, width=960, height=540, n_faces=3, face_size=150
        ),
        "blank": synthetic.blank_clip(root / "blank.mp4", seconds=3),
    }


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(
            f"{what} not found at {path}: it lives in ../shared (set DEEPFAKE_SHARED_DIR or "
            "DEEPFAKE_DATA_DIR); a user's clone does not have it"
        )
    return path


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    return _need(data_dir() / "clips", "the FaceForensics++ example clips")


@pytest.fixture(scope="session")
def papers_dir() -> Path:
    return _need(shared_dir() / "papers", "the papers folder")


@pytest.fixture(scope="session")
def analyzer():
    """The default-ensemble analyzer, loaded once (it is immutable after loading), before the
    first test that uses it: a test of a refused file must not find the models still loading
    (on a cold frozen-graph cache, a child process freezing them would still be running)."""
    from detector.pipeline import Analyzer

    return Analyzer(device="cpu").load()


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    """``hostile(name) -> Path``: a case of the hostile-input corpus (``tests/hostile.py``),
    generated once per session on first use."""
    from tests.hostile import CASES

    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = CASES[name].make(tmp_path_factory.mktemp(f"hostile-{name}"))
        return made[name]

    return get
