"""Grad-CAM on demand: shapes, value range, and no hooks left behind."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from detector.explain import Explainer
from detector.faces import FaceSettings, MTCNNDetector, square_crop
from detector.models import get_spec, list_models


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    img = data.astronaut()
    det = MTCNNDetector(FaceSettings(), device="cpu").detect(img)[0]
    return square_crop(img, det.box_xyxy, 0.1, 320)


def _hooks(module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
        for m in module.modules()
    )


FRAME_MODELS = [
    m
    for m in list_models(available_only=True)
    if get_spec(m).kind == "frame" and get_spec(m).inputs == "crop"
]


@pytest.mark.parametrize("name", FRAME_MODELS)
def test_gradcam_heatmap_for_every_shipped_model(name, crop):
    assert get_spec(name).gradcam_layer, f"{name} declares no Grad-CAM layer"
    explainer = Explainer(name)
    result = explainer.explain(crop)
    assert result.heatmap.shape == crop.shape[:2]
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() <= 1.0 + 1e-6
    assert result.overlay.shape == crop.shape and result.overlay.dtype == np.uint8
    assert 0.0 <= result.p_fake <= 1.0
    assert _hooks(explainer.module) == 0, "Grad-CAM left hooks on the model"
