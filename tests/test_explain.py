"""Grad-CAM on demand: shapes, the evidence scale, the "nothing stands out" state, drawing on
the whole frame, and no hooks left behind."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from detector.faces.crop import square_crop
from detector.faces.detect import FaceSettings, MTCNNDetector
from detector.models import get_spec, list_models
from detector.reporting.visual import SCALE_MAX, crop_region, overlay_heatmap, overlay_on_frame
from detector.scoring.explain import CamResult, Explainer


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
    assert result.heatmap.min() >= 0.0  # evidence in logit units, not rescaled to [0, 1]
    assert result.heatmap.max() <= result.peak + 1e-4
    assert result.overlay.shape == crop.shape and result.overlay.dtype == np.uint8
    assert result.peak > 0.0 or not result.stands_out
    assert _hooks(explainer.module) == 0, "Grad-CAM left hooks on the model"


def _cam(p_fake: float, heat: np.ndarray, crop: np.ndarray) -> CamResult:
    return CamResult("m", heat, overlay_heatmap(crop, heat), p_fake, float(heat.max()))


def test_nothing_stands_out_is_a_state_in_words(crop):
    flat = np.zeros(crop.shape[:2], np.float32)
    quiet = _cam(0.9, flat + 0.3, crop)  # leans fake, but no region reaches the level
    assert not quiet.stands_out and "reaches" in quiet.why_nothing
    real = _cam(0.2, flat + 5.0, crop)  # strong map from a model that does not lean fake
    assert not real.stands_out and "does not lean towards 'fake'" in real.why_nothing
    loud = _cam(0.9, flat + 5.0, crop)
    assert loud.stands_out and loud.why_nothing == ""


def test_no_evidence_leaves_the_face_unchanged(crop):
    """A zero map must not wash the face in colour (the old per-image rescaling did)."""
    heat = np.zeros(crop.shape[:2], np.float32)
    heat[100:150, 100:150] = SCALE_MAX
    out = overlay_heatmap(crop, heat)
    assert np.array_equal(out[:50, :50], crop[:50, :50])
    assert not np.array_equal(out[110:140, 110:140], crop[110:140, 110:140])


@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_crop_region_is_where_square_crop_cut_from(margin):
    """Grad-CAM drawn on the whole frame lands where the crop came from."""
    img = data.astronaut()
    box = (181.3, 62.7, 268.9, 172.1)
    left, top, side = crop_region(box, margin)
    expected = square_crop(img, box, margin, side)
    assert np.abs(img[top : top + side, left : left + side].astype(int) - expected).max() <= 2


def test_overlay_on_frame_stays_inside_the_face_square():
    frame = np.full((360, 640, 3), 128, np.uint8)
    heat = np.full((320, 320), SCALE_MAX, np.float32)
    out = overlay_on_frame(frame, 0.5, (400, 200, 600, 400), heat, 0.0)
    changed = np.argwhere((out != frame).any(axis=2))
    assert changed[:, 0].min() >= 100 and changed[:, 0].max() < 200  # rows 100..199
    assert changed[:, 1].min() >= 200 and changed[:, 1].max() < 300
