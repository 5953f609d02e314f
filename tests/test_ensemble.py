"""The fast CPU path (frozen members, shared resizing, chunked crops) scores as the eager networks do."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from detector.models import create_model, get_spec, list_models, model_card
from detector.models.preprocess import preprocess
from detector.scoring.ensemble import (
    FP32_CPU_BATCH,
    Ensemble,
    LoadedModel,
    bf16_holds,
)
from detector.scoring.graphs import freeze_for_cpu
from detector.training.storage import save_weights

FRAME_MEMBERS = [
    n for n in list_models() if get_spec(n).kind == "frame" and get_spec(n).inputs == "crop"
]


@pytest.mark.parametrize("name", FRAME_MEMBERS)
def test_frozen_member_gives_the_eager_logits_for_any_batch_size(name):
    """Freezing folds BatchNorm and fixes spatial sizes; the batch size must stay free."""
    torch.manual_seed(0)
    spec = replace(get_spec(name), batch_size=2)
    eager = create_model(name, load_weights=False)
    for m in eager.modules():  # non-trivial BatchNorm statistics, so folding is exercised
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    crops = np.random.default_rng(0).integers(0, 255, (3, 96, 96, 3), dtype=np.uint8)
    x = preprocess(crops, spec, torch.device("cpu"))
    with torch.inference_mode():
        ref = eager(x).float()
        frozen = LoadedModel(
            spec, model_card(name), freeze_for_cpu(eager, spec, False), False, True
        )
        for n in (1, 2, 3):  # below, at and above the traced batch size
            got = frozen(x[:n])
            assert got.shape == (n, 1)
            assert torch.allclose(got, ref[:n], atol=1e-3 * (1 + ref.abs().max().item()))


def _ship(tmp_path, name: str, metrics: dict | None = None) -> None:
    torch.manual_seed(0)
    net = get_spec(name).factory()
    sha = save_weights(net.state_dict(), tmp_path / f"{name}.safetensors", torch.float32)
    manifest = {"sha256": sha, "metrics": metrics or {}}
    (tmp_path / f"{name}.json").write_text(json.dumps(manifest), "utf-8")


def test_optimised_ensemble_equals_the_eager_one_on_odd_sizes_and_lists(tmp_path):
    """Members of different input sizes and batch sizes (so the chunk is larger than one
    member's batch), crops not a multiple of any batch size."""
    names = ["meso4_df", "efficientnet_lite0", "facenet_irv1"]
    sizes = {get_spec(n).batch_size for n in names}
    assert len(sizes) > 1, "the test needs members of different batch sizes"
    for n in names:
        _ship(tmp_path, n)
    crops = np.random.default_rng(1).integers(0, 255, (21, 128, 128, 3), dtype=np.uint8)
    eager = Ensemble(names, weights_dir=tmp_path, precision="fp32", optimize=False)
    fast = Ensemble(names, weights_dir=tmp_path, precision="fp32")
    assert all(m.frozen for m in fast.members.values())
    assert not any(m.frozen for m in eager.members.values())
    ref = eager.score(crops)
    assert np.allclose(fast.score(crops), ref, atol=1e-5)
    assert np.allclose(fast.score(list(crops)), ref, atol=1e-5)  # a list is stacked per chunk
    assert fast.score(crops[:0]).shape == (0, 3)


def test_bf16_members_stay_close_and_are_chosen_by_the_precision_check(tmp_path):
    name = "meso4_df"
    check = {"fp32_eager_auc": 0.90, "bf16_frozen_auc": 0.899}
    _ship(tmp_path, name, {"precision_check": check})
    card = model_card(name, tmp_path)
    assert bf16_holds(card, frozen=True)
    assert not bf16_holds(card), "an eager member needs the autocast measure (bf16_val_auc)"
    worse = {"fp32_eager_auc": 0.90, "bf16_frozen_auc": 0.88}
    assert not bf16_holds(replace(card, metrics={"precision_check": worse}), frozen=True)
    int8_only = {"int8_dynamic": {"holds": False}}  # CLIP's manifest: no bf16 measured (yet)
    assert not bf16_holds(replace(card, metrics={"precision_check": int8_only}), frozen=True)
    moved = {**check, "bf16_holds": False}  # the overall AUC held, a validation subset did not
    assert not bf16_holds(replace(card, metrics={"precision_check": moved}), frozen=True)
    # checked on AMX too, where it moved: bf16 stays on AVX-512 BF16 CPUs, not on AMX ones
    amx_moved = replace(card, metrics={"precision_check": {**check, "bf16_holds_amx": False}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("detector.scoring.ensemble.bf16_kernels", lambda: "AMX")
        assert not bf16_holds(amx_moved, frozen=True)
        mp.setattr("detector.scoring.ensemble.bf16_kernels", lambda: "AVX512_BF16")
        assert bf16_holds(amx_moved, frozen=True)
    crops = np.random.default_rng(2).integers(0, 255, (5, 256, 256, 3), dtype=np.uint8)
    ref = Ensemble([name], weights_dir=tmp_path, precision="fp32").score(crops)
    low = Ensemble([name], weights_dir=tmp_path, precision="bf16")
    assert low.precision == "bf16"
    assert np.abs(low.score(crops) - ref).max() < 0.05
    # on the CPU, float32 members beside others score in small passes, one per core (memory);
    # bf16 ones, and a member alone on every core, in their spec's batch
    pair = [name, "meso4_f2f"]
    _ship(tmp_path, "meso4_f2f", {"precision_check": check})
    fp32 = Ensemble(pair, device="cpu", weights_dir=tmp_path, precision="fp32")
    low = Ensemble(pair, device="cpu", weights_dir=tmp_path, precision="bf16")
    spec = get_spec(name)
    one_per_core = fp32.workers is not None  # on 2 or more cores
    small = min(FP32_CPU_BATCH, spec.batch_size) if one_per_core else spec.batch_size
    assert fp32._batch_size(fp32.members[name]) == small == (2 if one_per_core else 8)
    assert low._batch_size(low.members[name]) == spec.batch_size == 8
    alone = fp32.only(name)
    assert alone._batch_size(alone.members[name]) == spec.batch_size


def test_bench_counts_flops_on_the_eager_network_of_any_member():
    """The frozen graph hides its convolutions from FlopCounterMode; the bench counts the spec's
    eager network instead (per crop; a temporal window divided by its length)."""
    from scripts.bench import flops_per_crop

    meso = flops_per_crop("meso4_df")
    assert 1e7 < meso < 1e9
    assert flops_per_crop("efficientnet_lite0") > 2 * meso
    lstm = 2 * 4 * 2048 * (1280 + 2048)  # the head's gate matmuls per time step
    assert flops_per_crop("lstm_efficientnet_lite0") == pytest.approx(
        flops_per_crop("efficientnet_lite0") + lstm, rel=1e-3
    )


def test_core_workers_run_single_threaded_and_leave_the_process_default_alone():
    import threading

    from detector.threads import CoreWorkers

    before = torch.get_num_threads()
    workers = CoreWorkers(2)
    seen: list[int] = []
    workers.run([lambda: seen.append(torch.get_num_threads()) for _ in range(4)])
    assert seen == [1, 1, 1, 1]
    assert torch.get_num_threads() == before
    later: list[int] = []
    t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert later == [before], "a thread started later must get the process default"


def test_an_amx_precision_check_is_recorded_beside_the_avx512_one():
    from scripts.check_precision import record

    row = {"fp32_eager_auc": 0.90, "bf16_frozen_auc": 0.899}
    metrics: dict = {}
    record(metrics, row, "AVX512_BF16")
    assert metrics["precision_check"]["bf16_kernels"] == "AVX512_BF16"
    record(metrics, {"fp32_eager_auc": 0.90, "bf16_frozen_auc": 0.88}, "AMX")
    check = metrics["precision_check"]
    assert check["bf16_frozen_auc"] == 0.899 and check["bf16_holds_amx"] is False
    assert check["amx"]["bf16_frozen_auc"] == 0.88
    # the AVX-512 BF16 check measured again afterwards (--isa) keeps the AMX one
    record(metrics, {"fp32_eager_auc": 0.90, "bf16_frozen_auc": 0.901}, "AVX512_BF16")
    check = metrics["precision_check"]
    assert check["bf16_frozen_auc"] == 0.901 and check["amx"]["bf16_frozen_auc"] == 0.88
    assert check["bf16_holds_amx"] is False
