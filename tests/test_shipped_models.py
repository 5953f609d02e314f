"""Every registered model with shipped weights loads (sha256-checked) and scores a face crop."""

from __future__ import annotations

import numpy as np
import pytest

from detector.ensemble import Ensemble
from detector.models import list_models, model_card


@pytest.mark.parametrize("name", list_models(available_only=True))
def test_shipped_model_loads_and_scores_a_crop(name):
    crop = np.random.default_rng(0).integers(0, 255, (2, 256, 256, 3), dtype=np.uint8)
    scores = Ensemble([name], device="cpu").score(crop)
    assert scores.shape == (2, 1) and np.all((scores >= 0) & (scores <= 1))
    card = model_card(name)
    assert card.available and card.sha256 and card.licence and card.trained_on
