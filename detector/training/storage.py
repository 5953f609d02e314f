"""How trained weights are stored: float32, float16 or int8 (kept only when validation AUC holds), with their sha256."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch, timm and facenet-pytorch load lazily: `--help` stays fast
    import torch


def save_weights(state: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | str) -> str:
    """Write a state dict as safetensors with deterministic bytes; returns its sha256.

    ``dtype`` is a float dtype, or "int8" for int8 weight storage (see
    :func:`detector.models.weights.quantize_state`).
    """
    from safetensors.torch import save_file

    from detector.io.files import sha256_file
    from detector.models.weights import quantize_state

    if dtype == "int8":
        tensors = quantize_state(state)
    else:
        tensors = {
            k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu())
            .contiguous()
            .clone()
            for k, v in state.items()
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return sha256_file(path)


STORAGE_NOTES = {
    "float32": "float32",
    "float16": "float16 (validation AUC within 0.002 of float32)",
    "int8": "int8 per-channel weights, float16 for the rest (validation AUC within 0.002 of "
    "float32; dequantised to float32 when loaded)",
}


def choose_storage(
    net, best: dict, val_auc: Callable[[], float], fp32_auc: float, allow_int8: bool = False
) -> tuple[str, dict]:
    """The smallest storage whose validation AUC stays within 0.002 of float32.

    Loads each candidate's rounded weights into ``net``, measures, and leaves ``net`` holding the
    chosen storage's weights. Returns (storage name, the AUCs measured).
    """

    from detector.models.weights import dequantize_state, quantize_state

    candidates = {
        "float16": {k: v.half().float() if v.is_floating_point() else v for k, v in best.items()}
    }
    if allow_int8:
        candidates["int8"] = dequantize_state(quantize_state(best))
    measured: dict[str, float] = {}
    chosen = "float32"
    for name in ("int8", "float16"):
        if name not in candidates:
            continue
        net.load_state_dict(candidates[name])
        measured[f"{name if name == 'int8' else 'fp16'}_weights_val_auc"] = auc = val_auc()
        if abs(auc - fp32_auc) <= 0.002:
            chosen = name
            break
    net.load_state_dict(candidates[chosen] if chosen != "float32" else best)
    return chosen, measured
