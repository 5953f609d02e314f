"""Offline known answers: every shipped model's score on fixed generated face crops.

The answers (``tests/known_answers.json``) were produced by ``python -m scripts.known_answers
--write``; the crops come from scikit-image's public-domain photos, so this runs in every clone,
without ``../shared``. A changed forward pass, preprocessing or weights file changes the scores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.models import list_models, read_manifest
from detector.scoring.ensemble import Ensemble
from scripts.known_answers import ANSWERS, crops

KNOWN = json.loads(ANSWERS.read_text(encoding="utf-8"))
TOLERANCE = 2e-3  # in p_fake: float32 on another CPU or BLAS, not another model


def test_every_shipped_model_has_a_known_answer():
    assert sorted(KNOWN) == list_models(available_only=True)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_shipped_model_gives_its_known_answer(name):
    known = KNOWN[name]
    assert read_manifest(name)["sha256"] == known["sha256"], (
        f"{name}: its weights changed; if on purpose, run python -m scripts.known_answers --write"
    )
    batch, nxt = crops()
    ens = Ensemble([name], device="cpu", precision="fp32", optimize=False)
    p = ens.score(batch, np.zeros(len(batch), int), nxt if ens.needs_next_frames else None)
    np.testing.assert_allclose(p[:, 0], known["p_fake"], atol=TOLERANCE)


def test_the_known_answers_tell_the_crops_apart():
    """Not one constant per model: across the shipped models the four crops score differently."""
    spread = [np.ptp(k["p_fake"]) for k in KNOWN.values()]
    assert sum(s > 0.01 for s in spread) >= len(spread) // 2
