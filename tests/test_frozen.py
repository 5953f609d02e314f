"""The on-disk cache of frozen graphs, the per-core work split, and the CPU-path facts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from detector.scoring import device, frozen
from detector.scoring.ensemble import Ensemble, chunk_bounds, work_split
from detector.scoring.graphs import bf16_graph_revision, fold_quick_gelu


@pytest.fixture()
def frozen_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_FROZEN_DIR", str(tmp_path / "frozen"))
    return tmp_path / "frozen"


def _graph() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    with torch.inference_mode():
        return torch.jit.freeze(torch.jit.trace(net, torch.zeros(1, 3, 8, 8)))


def test_cached_builds_once_then_loads_the_same_graph(frozen_dir):
    calls = []

    def build():
        calls.append(1)
        return _graph(), {"cost": 7.0}

    key = frozen.cache_key(name="toy")
    first, _ = frozen.cached("toy", key, build)
    second, info2 = frozen.cached("toy", key, build)
    assert len(calls) == 1 and info2["cost"] == 7.0 and len(info2["sha256"]) == 64
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        assert torch.equal(first(x), second(x))
    assert not list(frozen_dir.glob("*.part")), "no temporary file is left behind"


def test_a_corrupted_graph_is_rebuilt_never_loaded(frozen_dir):
    key = frozen.cache_key(name="toy")
    frozen.cached("toy", key, lambda: (_graph(), {}))
    graph = next(frozen_dir.glob("toy-*.pt"))
    graph.write_bytes(graph.read_bytes()[:-10] + b"0123456789")
    assert frozen.load_frozen("toy", key) is None
    rebuilt = []
    frozen.cached("toy", key, lambda: (rebuilt.append(1) or _graph(), {}))
    assert rebuilt and frozen.load_frozen("toy", key) is not None


def test_the_key_follows_weights_files_precision_and_the_isa_cap(tmp_path, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"a")
    base = frozen.cache_key(name="m", precision="fp32", files=frozen.file_stamps([f]))
    assert base == frozen.cache_key(name="m", precision="fp32", files=frozen.file_stamps([f]))
    assert base != frozen.cache_key(name="m", precision="bf16", files=frozen.file_stamps([f]))
    f.write_bytes(b"ab")  # another size: the weights are read and verified again
    assert base != frozen.cache_key(name="m", precision="fp32", files=frozen.file_stamps([f]))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert device.isa_cap() == "AVX2"
    assert frozen.cache_key(name="m") != base


def test_old_graphs_of_a_network_are_pruned(frozen_dir):
    for k in range(frozen.KEEP_PER_NAME + 2):
        frozen.cached("toy", frozen.cache_key(name="toy", k=k), lambda: (_graph(), {}))
    assert len(list(frozen_dir.glob("toy-*.pt"))) == frozen.KEEP_PER_NAME
    assert len(list(frozen_dir.glob("toy-*.json"))) == frozen.KEEP_PER_NAME


def test_a_second_ensemble_loads_the_cached_graph_with_the_same_scores(frozen_dir, monkeypatch):
    import detector.scoring.ensemble as ens_mod

    crops = np.random.default_rng(0).integers(0, 255, (5, 320, 320, 3), dtype=np.uint8)
    first = Ensemble(["mesoinception4_f2f"], device="cpu")
    assert len(list(frozen_dir.glob("mesoinception4_f2f-*.pt"))) == 1

    def no_freezing(*args, **kwargs):
        raise AssertionError("a cached member must not be traced and frozen again")

    monkeypatch.setattr(ens_mod, "freeze_for_cpu", no_freezing)
    second = Ensemble(["mesoinception4_f2f"], device="cpu")
    assert second.members["mesoinception4_f2f"].frozen
    np.testing.assert_array_equal(first.score(crops), second.score(crops))


def _no_freezing(*args, **kwargs):
    raise AssertionError("this process must only load the graph, not trace and freeze it")


def test_a_missing_graph_is_frozen_in_a_child_process_and_loaded_here(
    frozen_dir, tmp_path, monkeypatch
):
    """A cache miss is traced and frozen by a child process (so that this one never holds the
    eager float32 network and its copies), then loaded here: the same graph, the same scores,
    as when this process freezes it itself."""
    import detector.faces.identity as identity
    import detector.scoring.ensemble as ens_mod
    from detector.faces.identity import FaceEmbedder

    crops = np.random.default_rng(1).integers(0, 255, (3, 320, 320, 3), dtype=np.uint8)
    monkeypatch.setenv(frozen.IN_CHILD, "0")
    monkeypatch.setenv("DEEPFAKE_FROZEN_DIR", str(tmp_path / "here"))
    here = Ensemble(["mesoinception4_f2f"], device="cpu").score(crops)

    monkeypatch.delenv(frozen.IN_CHILD)
    monkeypatch.setenv("DEEPFAKE_FROZEN_DIR", str(frozen_dir))
    monkeypatch.setattr(ens_mod, "freeze_for_cpu", _no_freezing)
    monkeypatch.setattr(identity, "_frozen_for_cpu", _no_freezing)
    runs = len(frozen.CHILD_RUNS)
    loaded = Ensemble(["mesoinception4_f2f"], device="cpu")
    assert loaded.members["mesoinception4_f2f"].frozen
    assert len(list(frozen_dir.glob("mesoinception4_f2f-*.pt"))) == 1
    np.testing.assert_array_equal(loaded.score(crops), here)
    (child,) = frozen.CHILD_RUNS[runs:]  # one child, its time and memory recorded
    assert child["target"].endswith(":freeze_members") and child["peak_mb"] > 100
    FaceEmbedder(device="cpu")
    assert len(list(frozen_dir.glob("face_identity-*.pt"))) == 1


def test_a_corrupted_graph_is_rebuilt_by_the_child_not_here(frozen_dir, monkeypatch):
    import detector.scoring.ensemble as ens_mod

    Ensemble(["mesoinception4_f2f"], device="cpu")
    graph = next(frozen_dir.glob("mesoinception4_f2f-*.pt"))
    graph.write_bytes(graph.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setattr(ens_mod, "freeze_for_cpu", _no_freezing)
    assert Ensemble(["mesoinception4_f2f"], device="cpu").members["mesoinception4_f2f"].frozen


MEMBERS = "detector.scoring.ensemble:freeze_members"


def test_freezing_stays_in_this_process_when_asked_or_when_the_child_fails(
    frozen_dir, monkeypatch, caplog
):
    """Each way the child cannot be used returns False (the caller then freezes itself); what
    went wrong is logged, except a typed error, which the caller's own build raises."""
    key = frozen.cache_key(name="toy")
    for off in ("0", "off"):
        monkeypatch.setenv(frozen.IN_CHILD, off)
        assert not frozen.build_in_child(MEMBERS, {}, members={})
    monkeypatch.delenv(frozen.IN_CHILD)
    assert frozen.build_in_child(MEMBERS, {}, members={})
    with monkeypatch.context() as m:  # a cache this process may not write
        m.setattr(frozen.os, "access", lambda *a: False)
        assert not frozen.build_in_child(MEMBERS, {}, members={})
    with caplog.at_level("WARNING", logger="detector.scoring.frozen"):
        assert not frozen.build_in_child("detector.scoring.ensemble:no_such_function", {})
    assert "freezing in a child process failed" in caplog.text and "AttributeError" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="detector.scoring.frozen"):  # wrote nothing for "toy"
        assert not frozen.build_in_child(MEMBERS, {"toy": key}, members={})
    assert "no graph written under the caller's key for toy" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="detector.scoring.frozen"):  # a typed error
        assert not frozen.build_in_child(MEMBERS, {}, members={"no_such_model": False})
    assert not caplog.text

    def too_slow(*args, **kwargs):
        raise frozen.subprocess.TimeoutExpired(args[0], frozen.CHILD_TIMEOUT_S)

    monkeypatch.setattr(frozen.subprocess, "run", too_slow)
    with caplog.at_level("WARNING", logger="detector.scoring.frozen"):
        assert not frozen.build_in_child(MEMBERS, {}, members={})
    assert "timed out" in caplog.text


@pytest.mark.parametrize(
    ("n", "batch", "cores", "sizes"),
    [
        (10, 8, 2, [5, 5]),  # one member on both cores, not 8 + 2
        (16, 8, 2, [8, 8]),
        (3, 16, 2, [2, 1]),
        (1, 8, 2, [1]),
        (20, 4, 2, [4, 4, 4, 4, 4]),
        (7, 8, 1, [7]),
        (0, 8, 2, []),
    ],
)
def test_work_split_gives_every_core_a_share_within_the_batch_size(n, batch, cores, sizes):
    parts = work_split(n, batch, cores)
    assert [s.stop - s.start for s in parts] == sizes
    assert sum(s.stop - s.start for s in parts) == n
    assert not parts or (parts[0].start == 0 and parts[-1].stop == n)
    assert all(a.stop == b.start for a, b in itertools.pairwise(parts))


@pytest.mark.parametrize(
    ("n", "chunk", "bounds"),
    [
        (10, 8, [(0, 10)]),  # ten crops: one pass, not 8 + 2
        (11, 8, [(0, 8), (8, 11)]),
        (16, 8, [(0, 8), (8, 16)]),
        (26, 8, [(0, 8), (8, 16), (16, 26)]),
        (2, 8, [(0, 2)]),
        (0, 8, []),
        (5, 1, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
    ],
)
def test_a_small_last_chunk_joins_the_one_before(n, chunk, bounds):
    assert chunk_bounds(n, chunk) == bounds


def test_quick_gelu_folded_into_silu_is_the_same_function():
    """CLIP's MLPs, fc2(QuickGELU(fc1(x))), become fc2'(SiLU(fc1'(x))) in its frozen bf16 graph:
    the same outputs in float32, every MLP rewritten, nothing else touched."""
    import copy

    import torch
    from timm.layers import QuickGELU
    from timm.models.vision_transformer import VisionTransformer

    from detector.models import get_spec

    torch.manual_seed(0)
    vit = VisionTransformer(
        img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=3, act_layer=QuickGELU
    ).eval()
    folded = copy.deepcopy(vit)
    assert fold_quick_gelu(folded) == 3
    assert not any(isinstance(m, QuickGELU) for m in folded.modules())
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), vit(x), rtol=1e-5, atol=1e-5)
    assert fold_quick_gelu(folded) == 0  # nothing left to fold
    assert bf16_graph_revision(get_spec("clip_vit_b16")) == 2
    assert bf16_graph_revision(get_spec("xception")) == 1


def test_bf16_is_native_only_with_the_flags_and_not_when_capped(monkeypatch):
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(device, "cpu_flags", lambda: ("avx2", "fma", "avx512f", "avx512_bf16"))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert device.native_bf16() and device.cpu_path() == "AVX512_BF16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    assert not device.native_bf16() and device.cpu_path() == "AVX512_CORE_VNNI"
    monkeypatch.setattr(device, "cpu_flags", lambda: ("avx2", "fma"))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert not device.native_bf16() and device.cpu_path() == "AVX2"


def test_amx_cpu_keeps_native_bf16_when_capped_at_avx512_bf16_and_loses_it_below(monkeypatch):
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    flags = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    monkeypatch.setattr(device, "cpu_flags", lambda: flags)
    assert device.native_bf16() and device.cpu_path() == "AMX"
    assert device.bf16_kernels() == "AMX"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # as an EPYC 9004 runs bf16
    assert device.native_bf16() and device.cpu_path() == "AVX512_CORE_BF16"
    assert device.bf16_kernels() == "AVX512_BF16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    assert not device.native_bf16() and device.bf16_kernels() is None
    assert set(device.ISA_CAPS["AVX512_CORE_BF16"]) == set(device.ISA_CAPS["AVX2"])
