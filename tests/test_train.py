"""Training tools: synthetic-fake generators, id splits and a tiny end-to-end training run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from detector.io.files import sha256_file
from detector.models.weights import load_state_dict
from detector.training import dataset, fakes, images, splits


def _face(size: int = 128, seed: int = 0) -> np.ndarray:
    """A crude face on a noisy background: skin ellipse, two eyes, a mouth."""
    rng = np.random.default_rng(seed)
    img = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
    c = size // 2
    cv2.ellipse(img, (c, c), (size // 3, size * 2 // 5), 0, 0, 360, (200, 160, 140), -1)
    for x in (c - size // 7, c + size // 7):
        cv2.circle(img, (x, c - size // 10), size // 20, (40, 30, 30), -1)
    cv2.ellipse(img, (c, c + size // 5), (size // 8, size // 25), 0, 0, 360, (150, 60, 60), -1)
    return img


def _swap_other_person(img, marks, rng):
    """identity_swap with a second, differently drawn face as the source."""
    other = _face(112, seed=5)
    other[40:60, 30:80] = (20, 20, 200)  # a feature only the other person has
    other_marks = images.default_landmarks(112, 112) if marks is not None else None
    return fakes.identity_swap(img, marks, other, other_marks, rng)


@pytest.mark.parametrize("generator", [fakes.self_blend, fakes.face_warp, _swap_other_person])
@pytest.mark.parametrize("with_landmarks", [True, False])
def test_generators_change_only_the_masked_face(generator, with_landmarks):
    img = _face(128)
    marks = images.default_landmarks(128, 128) if with_landmarks else None
    for seed in range(5):
        fake, mask = generator(img, marks, np.random.default_rng(seed))
        assert fake.shape == img.shape and fake.dtype == np.uint8
        assert mask.shape == img.shape[:2] and mask.min() >= 0.0 and mask.max() <= 1.0
        changed = np.abs(fake.astype(int) - img.astype(int)).max(axis=2) > 0
        assert changed.any(), "the generator left the image unchanged"
        near = cv2.dilate((mask > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert not (changed & ~near).any(), "pixels changed outside the blending mask"
        assert mask[64, 64] > 0.3, "the mask does not cover the face centre"


def test_generators_are_deterministic_given_the_seed():
    img = _face(96)
    a, _ = fakes.self_blend(img, None, np.random.default_rng(3))
    b, _ = fakes.self_blend(img, None, np.random.default_rng(3))
    assert np.array_equal(a, b)


def test_identity_swap_puts_the_other_face_in_and_is_seeded():
    target = _face(128)
    source = _face(128, seed=9)
    source[44:56, 40:88] = (0, 0, 255)  # a blue band across the source's eyes
    marks = images.default_landmarks(128, 128)
    plain = fakes.SwapParams(
        seed=1, jitter=0.0, full_affine=False, colour=0.0, blur=0.0, downscale=1.0, ratio=1.0
    )
    fake, mask = fakes.apply_swap(target, marks, source, marks, plain)
    band = (slice(46, 54), slice(44, 84))
    assert mask[band].min() > 0.5
    blue = fake[band].astype(int)
    assert (blue[..., 2] - blue[..., 0]).mean() > 100, "the source's feature is not in the fake"
    assert np.abs(fake[:6, :6].astype(int) - target[:6, :6].astype(int)).max() == 0
    a = fakes.identity_swap(target, marks, source, marks, np.random.default_rng(4))[0]
    b = fakes.identity_swap(target, marks, source, marks, np.random.default_rng(4))[0]
    assert np.array_equal(a, b)


def test_augment_returns_requested_size():
    out = dataset.augment(_face(150), 64, np.random.default_rng(0))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


def test_video_compress_degrades_like_a_small_h264_frame_and_is_seeded():
    face = _face(224)
    a = dataset.video_compress(face, np.random.default_rng(3), crf=(44, 45), scale=(0.35, 0.36))
    b = dataset.video_compress(face, np.random.default_rng(3), crf=(44, 45), scale=(0.35, 0.36))
    light = dataset.video_compress(face, np.random.default_rng(3), crf=(18, 18), scale=(1.0, 1.0))
    assert a.shape == face.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    # the background's pixel noise is what heavy compression removes first
    err = np.abs(a.astype(int) - face).mean()
    assert err > np.abs(light.astype(int) - face).mean() and err > 5


def test_the_codec_augmentation_is_off_unless_asked_and_keeps_old_pool_keys():
    from detector.training.clip_pool import PoolSpec

    face = _face(150)
    plain = dataset.augment(face, 64, np.random.default_rng(0))
    assert np.array_equal(plain, dataset.augment(face, 64, np.random.default_rng(0)))
    assert dataset.AugmentSettings().codec == 0.0
    assert "codec" not in PoolSpec().key() and PoolSpec(codec=0.5).key()["codec"] == 0.5
    coded = dataset.augment(face, 64, np.random.default_rng(0), dataset.AugmentSettings(codec=1.0))
    assert coded.shape == (64, 64, 3) and not np.array_equal(plain, coded)


def test_ids_from_file_names():
    assert splits.ffpp_video_id("000_3.jpg") == "000"
    assert splits.ffpp_video_id("000_003_3.jpg") == "000_003"
    assert splits.ffpp_target_id("000_003_3.jpg") == "000"
    assert splits.person_id("0_0_aidai_0014.jpg") == "aidai"
    assert splits.person_id("augmented_image_7.jpg") == "augmented"
    assert splits.person_id("2020-06-23-120048 (copy).jpg") == "2020-06-23"


def test_split_is_by_id_deterministic_and_disjoint():
    ids = [f"{i:03d}" for i in range(100)]
    a = splits.split_ids(ids, seed=0)
    b = splits.split_ids(reversed(ids), seed=0)
    assert a == b
    assert [len(a[k]) for k in ("train", "val", "test")] == [70, 15, 15]
    sets = [set(a[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == set(ids)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _write_faces(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / name), _face(64, seed=k)[..., ::-1])


def test_tiny_training_run_writes_loadable_weights(tmp_path, monkeypatch):
    from detector.training.config import TrainConfig, load_splits
    from detector.training.train import train
    from detector.training.trainables import Trainable

    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path / "cache"))
    real, fake = tmp_path / "real", tmp_path / "fake"
    _write_faces(real, [f"{i:03d}_{k}.jpg" for i in range(4) for k in range(2)])
    _write_faces(fake, [f"{i:03d}_{i + 10:03d}_0.jpg" for i in range(4)])
    tiny = Trainable("tiny", "tiny test CNN", _Tiny, None, 32, (0.5,) * 3, (0.25,) * 3, "fc.")
    cfg = TrainConfig(
        model="tiny",
        real=(real,),
        fake=(fake,),
        sbi=True,
        fwa=True,
        epochs=1,
        epoch_size=8,
        batch_size=4,
        split_file=tmp_path / "split.json",
        device="cpu",
        threads=1,
        out=tmp_path / "weights",
        work_dir=tmp_path / "work",
    )
    manifest = train(cfg, trainable=tiny, command="test", log=lambda m: None)

    split = json.loads((tmp_path / "split.json").read_text())
    groups = [set(split[k]) for k in ("train", "val", "test")]
    assert sum(len(g) for g in groups) == 4 and len(set().union(*groups)) == 4
    splits = load_splits(cfg, log=lambda m: None)
    seen: dict[str, str] = {}
    for name in ("train", "val", "test"):
        for g in getattr(splits, name).groups:
            assert seen.setdefault(g, name) == name, f"id {g} is in two splits"

    path = tmp_path / "weights" / "tiny.safetensors"
    assert manifest["sha256"] == sha256_file(path)
    on_disk = json.loads((tmp_path / "weights" / "tiny.json").read_text())
    for key in ("sha256", "init_from", "licence", "data_terms", "trained_on", "metrics", "notes"):
        assert key in on_disk
    assert on_disk["history"] and (tmp_path / "work" / "last.pt").is_file()
    net = _Tiny()
    net.load_state_dict(load_state_dict(path, on_disk["sha256"]))
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 1)


def test_saved_weights_have_deterministic_bytes(tmp_path):
    from safetensors import safe_open

    from detector.training.storage import save_weights

    state = _Tiny().state_dict()
    a = save_weights(state, tmp_path / "a.safetensors", torch.float16)
    b = save_weights(state, tmp_path / "b.safetensors", torch.float16)
    assert a == b
    with safe_open(str(tmp_path / "a.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_shipped_split_matches_the_shared_data():
    from detector.settings import PROJECT_ROOT, data_dir

    split_file = PROJECT_ROOT / "weights" / "splits" / "ffpp_split.json"
    real = data_dir() / "ffpp_frames" / "real"
    if not real.is_dir():
        pytest.skip(f"{real} not found: the FaceForensics++ crops live in ../shared/data")
    split = json.loads(split_file.read_text())
    ids = {splits.ffpp_target_id(p) for p in images.list_images(real)}
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert set().union(*parts) == ids
    assert sum(len(p) for p in parts) == len(ids)


def test_teachers_give_soft_targets_and_pooled_features():
    from detector.training.distill import Teachers

    teacher = Teachers(["efficientnet_lite0"], torch.device("cpu"))
    imgs = np.stack([_face(224, seed) for seed in range(3)])
    soft, feats = teacher(imgs)
    assert soft.shape == (3,) and torch.all((soft > 0) & (soft < 1))
    assert [f.shape for f in feats] == [(3, 1280)] and teacher.feature_sizes == [1280]
    with pytest.raises(ValueError, match="teachers must be"):
        Teachers(["meso4_f2f"], torch.device("cpu"))  # P(real) output, no timm head


def _reals(groups: list[str], size: int = 64) -> dataset.FaceSet:
    n = len(groups)
    return dataset.FaceSet(
        images=tuple(_face(size, seed=k) for k in range(n)),
        labels=np.zeros(n, np.int64),
        groups=tuple(groups),
        videos=tuple(groups),
        landmarks=tuple(images.default_landmarks(size, size) for _ in range(n)),
        names=tuple(f"{g}_{k}.png" for k, g in enumerate(groups)),
        origins=("reals",) * n,
    )


def test_swap_fakes_put_a_face_of_another_group_onto_a_real_one(monkeypatch):
    data = _reals(["a", "a", "b", "c"])
    pairs = []

    def record(target, target_marks, source, source_marks, rng):
        pairs.append(
            tuple(next(k for k, im in enumerate(data.images) if im is x) for x in (target, source))
        )
        return target.copy(), np.ones(target.shape[:2], np.float32)

    monkeypatch.setattr(dataset, "identity_swap", record)
    sampler = dataset.TrainingSampler(data, 32, {"swap": 1.0}, seed=0)
    batches = list(sampler.epoch(0, 12, 4))
    assert all(labels.tolist() == [1.0] * 4 for _, labels in batches)
    assert all(imgs.shape == (4, 32, 32, 3) for imgs, _ in batches)
    assert len(pairs) == 12
    assert all(data.groups[t] != data.groups[s] for t, s in pairs)
    # one group only: no other person to swap in, so the source has no data
    with pytest.raises(ValueError, match="no source with data"):
        dataset.TrainingSampler(_reals(["a", "a"]), 32, {"swap": 1.0})


def test_aligned_training_reads_every_source_as_the_pipeline_cuts_it(tmp_path, monkeypatch):
    """--aligned: train on the CLIP pool's sources (every FF++ method, originals, photos),
    select on their held-out part, test on the split file's test ids; a run with swap fakes and
    the H.264 augmentation says so in its manifest."""
    from detector.training import clip_pool
    from detector.training.config import TrainConfig, load_splits
    from detector.training.train import train
    from detector.training.trainables import Trainable

    def aligned(n: int, group: str, seed: int) -> clip_pool.Aligned:
        return clip_pool.Aligned(
            [_face(64, seed=seed + k) for k in range(n)],
            [images.default_landmarks(64, 64) for _ in range(n)],
            [f"{group}{k}" for k in range(n)],
            [f"{group}{k}.png" for k in range(n)],
        )

    def sources(part, log=print):
        n = 3 if part == "train" else 2
        out = {"real": [aligned(n, f"{part}_orig", 0), aligned(n, f"{part}_photo", 10)]}
        for m in ("Deepfakes", "FaceSwap"):
            out[f"ffpp:{m}"] = [aligned(n, f"{part}_{m}", 20)]
        return out

    def ffpp_frames(folder, group_fn, log=print):
        a = aligned(4, "x", 30)
        a.groups, a.names = ["000", "001", "002", "003"], [f"00{k}_0.png" for k in range(4)]
        return a

    monkeypatch.setattr(clip_pool, "aligned_sources", sources)
    monkeypatch.setattr(clip_pool, "align_folder", ffpp_frames)
    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path / "cache"))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["000"], "val": ["001"], "test": ["002", "003"]}))
    cfg = TrainConfig(
        model="tiny",
        real=(),
        aligned=True,
        swap=True,
        mix={"real": 0.5, "fake": 0.35, "swap": 0.15},
        codec=0.5,
        epochs=1,
        epoch_size=8,
        batch_size=4,
        split_file=split,
        device="cpu",
        threads=1,
        out=tmp_path / "weights",
        work_dir=tmp_path / "work",
    )
    data = load_splits(cfg, log=lambda m: None)
    assert (data.train.labels == 0).sum() == 6 and (data.train.labels == 1).sum() == 6
    assert len(set(data.train.origins)) == 4, "each real folder is its own origin"
    assert len(data.val) == 8 and data.val_id.all()
    assert sorted(data.test.groups) == ["002", "002", "003", "003"]
    assert sorted(data.test.labels.tolist()) == [0, 0, 1, 1]

    tiny = Trainable("tiny", "tiny test CNN", _Tiny, None, 32, (0.5,) * 3, (0.25,) * 3, "fc.")
    manifest = train(cfg, trainable=tiny, command="test", log=lambda m: None)
    assert "cut as the pipeline cuts faces" in manifest["trained_on"]
    assert "identity-swap fakes" in manifest["trained_on"]
    assert "FaceForensics++" in manifest["data_terms"]
    assert "swap 0.15" in manifest["notes"] and "ffpp_methods" in manifest["notes"]
    assert "50% of crops re-encoded as one small H.264 frame" in manifest["notes"]
    assert {"val", "test"} <= set(manifest["metrics"])


def test_train_cli_takes_folders_or_the_aligned_sources_not_both(tmp_path):
    from detector.cli import main

    real = tmp_path / "real"
    real.mkdir()
    for argv in (
        ["train", "--model", "xception", "--aligned", "--real", str(real)],
        ["train", "--model", "xception", "--aligned", "--fake", str(real)],
        ["train", "--model", "xception"],
    ):
        assert main(argv) != 0
