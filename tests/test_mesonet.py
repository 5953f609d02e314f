"""MesoNet port: shapes for every spec, the shipped weights against the authors' reference crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from detector.io.files import sha256_file
from detector.models import create_model, get_spec, list_models, read_manifest
from detector.models.families.mesonet import KerasSameMaxPool2d
from detector.settings import WEIGHTS_DIR, shared_dir

MESO_MODELS = [n for n in list_models() if get_spec(n).family == "MesoNet"]
MESONET_DIR = shared_dir() / "models" / "mesonet"
needs_mesonet_dir = pytest.mark.skipif(
    not MESONET_DIR.is_dir(),
    reason=f"original MesoNet weights and test crops not found at {MESONET_DIR} "
    "(set DEEPFAKE_SHARED_DIR to the shared research folder)",
)

# P(real) of the authors' Meso4_DF on its four test crops (PIL bicubic resize to 256, RGB / 255).
MESO4_DF_REFERENCE = {
    "df/df00204.jpg": 0.051,
    "df/df01254.jpg": 0.035,
    "real/real00240.jpg": 0.990,
    "real/real00772.jpg": 0.999,
}


def _load_crops(names: list[str]) -> torch.Tensor:
    arrays = []
    for name in names:
        with Image.open(MESONET_DIR / "test_images" / name) as im:
            rgb = im.convert("RGB").resize((256, 256), Image.Resampling.BICUBIC)
            arrays.append(np.asarray(rgb, dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _p_real(name: str, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        fake_logit = create_model(name)(x)
    return (1.0 - torch.sigmoid(fake_logit)).reshape(-1).numpy()


def test_all_four_mesonet_models_are_registered() -> None:
    assert MESO_MODELS == ["meso4_df", "meso4_f2f", "mesoinception4_df", "mesoinception4_f2f"]


@pytest.mark.parametrize("name", MESO_MODELS)
def test_random_network_maps_batch_to_one_logit(name: str) -> None:
    spec = get_spec(name)
    assert (spec.input_size, spec.positive_class) == (256, "real")
    model = create_model(name, load_weights=False)
    with torch.inference_mode():
        out = model(torch.rand(2, 3, 256, 256))
    assert out.shape == (2, 1)
    assert torch.isfinite(out).all()
    assert isinstance(model.net.get_submodule(spec.gradcam_layer), torch.nn.BatchNorm2d)


def test_keras_same_pool_pads_bottom_right_with_minus_inf() -> None:
    x = -torch.arange(25.0).reshape(1, 1, 5, 5)  # all values <= 0, so zero-padding would show
    out2 = KerasSameMaxPool2d(2)(x)
    assert out2.shape == (1, 1, 3, 3)
    assert out2[0, 0, 2, 2].item() == -24.0  # the lone bottom-right cell, padding never wins
    out4 = KerasSameMaxPool2d(4)(x)  # TF pads 3 rows: 1 on top, 2 at the bottom
    assert out4[0, 0].tolist() == [[0.0, -3.0], [-15.0, -18.0]]


@pytest.mark.parametrize("name", MESO_MODELS)
def test_shipped_weights_match_manifest_sha256(name: str) -> None:
    manifest = read_manifest(name)
    assert sha256_file(WEIGHTS_DIR / f"{name}.safetensors") == manifest["sha256"]
    assert manifest["output"] == "logit of P(real); p_fake = 1 - sigmoid"


@pytest.mark.shared
@needs_mesonet_dir
def test_meso4_df_reproduces_reference_outputs() -> None:
    names = list(MESO4_DF_REFERENCE)
    got = _p_real("meso4_df", _load_crops(names))
    np.testing.assert_allclose(got, list(MESO4_DF_REFERENCE.values()), atol=0.01)


@pytest.mark.shared
@needs_mesonet_dir
@pytest.mark.parametrize("name", ["meso4_df", "mesoinception4_df"])
def test_deepfake_models_rank_df_crops_below_real(name: str) -> None:
    p = _p_real(name, _load_crops(list(MESO4_DF_REFERENCE)))
    assert p[:2].max() < 0.1 < 0.9 < p[2:].min()


@pytest.mark.shared
@needs_mesonet_dir
@pytest.mark.parametrize("name", MESO_MODELS)
def test_conversion_reproduces_shipped_weights(name: str) -> None:
    from scripts.convert_mesonet import MODELS, keras_to_state_dict, read_keras_weights

    h5_name, factory, *_ = MODELS[name]
    assert read_manifest(name)["init_from"]["sha256"] == sha256_file(MESONET_DIR / h5_name)
    converted = keras_to_state_dict(factory(), read_keras_weights(MESONET_DIR / h5_name))
    shipped = load_file(str(WEIGHTS_DIR / f"{name}.safetensors"))
    assert converted.keys() == shipped.keys()
    for key, tensor in shipped.items():
        assert torch.equal(converted[key], tensor), key
