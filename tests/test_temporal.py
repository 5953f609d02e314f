"""Temporal members: window cutting, sequence generation, network shapes, scoring per track, and
int8 weight storage (used for the large members)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from detector.models import create_model, get_spec
from detector.models.weights import INT8_SUFFIX, dequantize_state, load_state_dict, quantize_state
from detector.scoring.ensemble import Ensemble, track_windows
from detector.training.images import default_landmarks
from detector.training.sequences import FaceSequence, make_sequence
from detector.training.storage import save_weights
from tests.test_train import _face


def test_windows_cover_each_track_once_in_order():
    ids = np.array([0] * 25 + [1] * 3 + [0] * 2)
    windows = track_windows(ids, 10)
    rows = np.concatenate(windows)
    assert sorted(rows.tolist()) == list(range(len(ids)))
    assert all(len(w) <= 10 for w in windows)
    for w in windows:
        assert len(set(ids[w])) == 1, "a window mixes two people"
        assert np.all(np.diff(w) > 0), "a window is out of time order"
    assert [len(w) for w in windows if ids[w[0]] == 0] == [9, 9, 9]
    assert [len(w) for w in windows if ids[w[0]] == 1] == [3]


@pytest.mark.parametrize("name", ["resnext50_lstm", "lstm_efficientnet_lite0", "lstm_xception"])
def test_temporal_networks_give_one_fake_logit_per_sequence(name):
    spec = get_spec(name)
    assert spec.kind == "track" and spec.sequence_length == 10
    torch.manual_seed(0)
    net = create_model(name, load_weights=False)
    x = torch.rand(2, 3, 3, spec.input_size, spec.input_size)
    with torch.inference_mode():
        out = net(x)
        z = net.net.class_logits(x)
    assert out.shape == (2, 1)
    # the fake logit is the 2-way softmax's log-odds: sigmoid(out) == softmax(z)[:, 1]
    assert torch.allclose(torch.sigmoid(out[:, 0]), torch.softmax(z, 1)[:, 1], atol=1e-5)
    assert net.net.head.lstm.hidden_size == 2048 and net.net.head.dropout.p == 0.4


def _sequence(n: int = 4) -> FaceSequence:
    img = _face(96)
    return FaceSequence("000", 0, (img,) * n, (default_landmarks(96, 96),) * n)


def test_augmentation_is_the_same_on_every_frame_of_a_real_sequence():
    seq = make_sequence(_sequence(), "real", np.random.default_rng(1), 64)
    assert seq.shape == (4, 64, 64, 3)
    assert all(np.array_equal(seq[0], f) for f in seq[1:]), "augmentation adds flicker to reals"


def test_track_fakes_are_consistent_and_flicker_fakes_are_not():
    base = make_sequence(_sequence(6), "real", np.random.default_rng(0), 96, train=False)
    track = make_sequence(_sequence(6), "sbi_track", np.random.default_rng(2), 96, train=False)
    assert not np.array_equal(track[0], base[0])
    assert all(np.array_equal(track[0], f) for f in track[1:])
    for seed in range(5):
        flick = make_sequence(_sequence(6), "sbi_flicker", np.random.default_rng(seed), 96, False)
        same = [np.array_equal(f, base[0]) for f in flick]
        assert any(same) and not all(same), "flicker must mix blended and untouched frames"


def _donor(n: int = 3) -> FaceSequence:
    """Another person: a face with a blue band across the eyes, each frame a little brighter."""
    frames = []
    for k in range(n):
        img = _face(96, seed=9)
        img[34:44, 30:66] = (0, 0, 255)
        frames.append(np.clip(img.astype(int) + 10 * k, 0, 255).astype(np.uint8))
    return FaceSequence("111", 0, tuple(frames), (default_landmarks(96, 96),) * n)


def test_swap_track_puts_another_person_on_every_frame_with_one_swap():
    target, donor = _sequence(6), _donor(1)
    other = FaceSequence("222", 0, (_face(96, seed=4),), (default_landmarks(96, 96),))
    base = make_sequence(target, "real", np.random.default_rng(0), 96, train=False)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        swap = make_sequence(target, "swap_track", rng, 96, train=False, donors=[target, donor])
        assert not np.array_equal(swap[0], base[0])
        # one set of random choices for the whole track: identical frames stay identical
        assert all(np.array_equal(swap[0], f) for f in swap[1:]), "the swap flickers"
        # the same choices with another donor: another face (never the target's own)
        rng = np.random.default_rng(seed)
        by_other = make_sequence(target, "swap_track", rng, 96, train=False, donors=[other])
        assert not np.array_equal(swap[0], by_other[0]), "the donor's face is not what goes in"


def test_swap_track_takes_the_donors_frames_in_order_and_never_the_same_person():
    target = _sequence(4)
    swap = make_sequence(
        target, "swap_track", np.random.default_rng(1), 96, train=False, donors=[_donor(2)]
    )
    assert np.array_equal(swap[0], swap[2]) and np.array_equal(swap[1], swap[3])
    assert not np.array_equal(swap[0], swap[1])  # the donor's frames 0, 1, 0, 1
    with pytest.raises(ValueError, match="another person"):
        make_sequence(target, "swap_track", np.random.default_rng(1), 96, donors=[target])


def test_int8_storage_round_trip(tmp_path):
    torch.manual_seed(0)
    state = {
        "conv.weight": torch.randn(64, 32, 3, 3),
        "fc.weight": torch.randn(2, 4096),
        "bn.weight": torch.randn(64),
        "steps": torch.tensor(3),
    }
    q = quantize_state(state)
    assert q["conv.weight"].dtype == torch.int8 and "conv.weight" + INT8_SUFFIX in q
    assert q["bn.weight"].dtype == torch.float16 and q["steps"].dtype == torch.int64
    back = dequantize_state(q)
    assert set(back) == set(state)
    for k in ("conv.weight", "fc.weight"):
        scale = state[k].reshape(len(state[k]), -1).abs().amax(1) / 127
        err = (back[k] - state[k]).reshape(len(state[k]), -1).abs().amax(1)
        assert torch.all(err <= scale / 2 + 1e-6)
    sha = save_weights(state, tmp_path / "m.safetensors", "int8")
    loaded = load_state_dict(tmp_path / "m.safetensors", sha)
    assert all(torch.equal(loaded[k], back[k]) for k in state)


def test_ensemble_scores_temporal_member_per_window(tmp_path):
    """A temporal member gives every crop of a window the window's score, tracks separately."""
    torch.manual_seed(0)
    name = "lstm_efficientnet_lite0"
    net = get_spec(name).factory()
    sha = save_weights(net.state_dict(), tmp_path / f"{name}.safetensors", torch.float32)
    (tmp_path / f"{name}.json").write_text(json.dumps({"sha256": sha, "metrics": {}}))
    ens = Ensemble([name], weights_dir=tmp_path, precision="fp32")
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (7, 64, 64, 3), dtype=np.uint8)
    ids = np.array([0, 0, 0, 1, 1, 0, 0])
    p = ens.score(crops, ids)[:, 0]
    assert ens.temporal_names == (name,)
    assert np.allclose(p[[0, 1, 2, 5, 6]], p[0]) and np.allclose(p[[3, 4]], p[3])
    assert p[0] != p[3]
    from detector.models.preprocess import preprocess

    module = ens.members[name].module
    x = preprocess(crops[[3, 4]], get_spec(name), torch.device("cpu"))[None]
    with torch.inference_mode():
        direct = torch.sigmoid(module(x)).item()
    assert p[3] == pytest.approx(direct, abs=1e-5)


def test_flow_is_zero_for_a_still_face_and_follows_a_shift():
    from detector.models.families.two_stream import FLOW_SCALE, farneback_flow

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (240, 240, 3), dtype=np.uint8), (0, 0), 3)
    still = farneback_flow(base[:224, :224], base[:224, :224], 224)
    assert still.shape == (2, 224, 224) and np.abs(still).max() < 0.05
    moved = farneback_flow(base[:224, 4:228], base[:224, :224], 224)  # content moves right 4 px
    centre = moved[:, 60:164, 60:164] * FLOW_SCALE
    assert np.median(centre[0]) == pytest.approx(4.0, abs=1.0)
    assert abs(np.median(centre[1])) < 1.0


@pytest.mark.parametrize("name", ["two_stream_frame", "two_stream_video"])
def test_two_stream_members_take_packed_crop_and_flow(name, tmp_path):
    from detector.models.preprocess import preprocess

    spec = get_spec(name)
    assert spec.inputs == "crop_and_flow"
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (4, 80, 80, 3), dtype=np.uint8)
    x = preprocess(crops, spec, torch.device("cpu"), [crops[1], None, crops[3], crops[0]])
    assert x.shape == (4, 5, 224, 224)
    assert torch.all(x[1, 3:] == 0), "a crop without a next frame gets zero motion"
    net = create_model(name, load_weights=False)
    with torch.inference_mode():
        out = net(x[None] if spec.kind == "track" else x)
    assert out.shape == ((1, 1) if spec.kind == "track" else (4, 1))


def test_resnext50_lstm_freezes_a_trained_per_frame_trunk_only_when_given_one(tmp_path):
    """Paper 001's ResNeXt has no shipped per-frame member: end to end by default, frozen over a
    ``train --model resnext50_32x4d`` run when ``--trunk-dir`` names it."""
    from pathlib import Path

    from detector.models.backbones import resnext50_32x4d
    from detector.training.temporal import TemporalConfig, build, frozen_trunk

    cfg = TemporalConfig(model="resnext50_lstm", real=(Path("r"),))
    assert frozen_trunk(cfg) is None
    torch.manual_seed(0)
    trunk = resnext50_32x4d(1)
    sha = save_weights(trunk.state_dict(), tmp_path / "resnext50_32x4d.safetensors", torch.float32)
    (tmp_path / "resnext50_32x4d.json").write_text(json.dumps({"sha256": sha}), "utf-8")
    frozen = TemporalConfig(model="resnext50_lstm", real=(Path("r"),), trunk_dir=tmp_path)
    assert frozen_trunk(frozen) == "resnext50_32x4d"
    net = build(frozen, torch.device("cpu"))
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert all(p.requires_grad for p in net.head.parameters())
    w = trunk.state_dict()["conv1.weight"]
    assert torch.equal(net.backbone.state_dict()["conv1.weight"], w)


def test_tiny_temporal_run_trains_and_validates_on_swap_tracks(tmp_path, monkeypatch):
    """A frozen-trunk temporal run with swap_track views: the other person comes from another
    training video, validation holds swap tracks too, and the manifest says what it trained on;
    one real training video is refused in words."""
    from detector.errors import BadSettingsError
    from detector.training.temporal import TemporalConfig, train_temporal
    from tests.test_train import _write_faces

    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path / "cache"))
    real, fake = tmp_path / "real", tmp_path / "fake"
    _write_faces(real, [f"{i:03d}_{k}.jpg" for i in range(10) for k in range(2)])
    _write_faces(fake, [f"{i:03d}_{i + 50:03d}_{k}.jpg" for i in range(10) for k in range(2)])
    cfg = TemporalConfig(
        model="lstm_efficientnet_lite0",
        real=(real,),
        fake=(fake,),
        views={"real": 1, "fake": 1, "swap_track": 1},
        epochs=1,
        batch_size=4,
        split_file=tmp_path / "split.json",
        amp="none",
        threads=1,
        out=tmp_path / "weights",
    )
    (tmp_path / "weights").mkdir()
    manifest = train_temporal(cfg, command="test", log=lambda m: None)
    assert "swap_track temporal fakes" in manifest["trained_on"]
    assert manifest["config"]["views"]["swap_track"] == 1
    n_val = manifest["split"]["n_videos"]["val"]
    assert manifest["metrics"]["val_all"]["n_videos"] > n_val  # synthetic val tracks beside
    one = tmp_path / "one"
    _write_faces(one, [f"000_{k}.jpg" for k in range(2)])
    with pytest.raises(BadSettingsError, match="two real training videos"):
        train_temporal(
            TemporalConfig(**{**cfg.__dict__, "real": (one,), "split_file": tmp_path / "s1.json"}),
            log=lambda m: None,
        )
