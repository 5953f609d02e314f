"""Safe weight loading: safetensors only, each file checked against the sha256 in its manifest.

No pickle is ever read: a state dict comes from ``safetensors.torch.load_file`` after the file's
digest has matched the recorded one, so a swapped or tampered file is refused before it is parsed.

Large members may be *stored* with int8 weights (:func:`quantize_state`): every conv / linear /
LSTM weight matrix is kept as int8 with one float32 scale per output channel (key
``<name>.int8_scale``), everything else as float16. Loading dequantises to float32, so the
networks compute exactly as before; only the stored values are rounded. The trainer uses this
storage only when validation AUC holds (see each manifest's ``dtype`` and metrics).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from detector.errors import WeightsIntegrityError, WeightsMissingError
from detector.io.files import sha256_file


def load_state_dict(path: Path, expected_sha256: str) -> dict[str, torch.Tensor]:
    """Load a safetensors state dict after checking its sha256; tensors come back as float32."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsIntegrityError(f"{path.name}: only .safetensors weights are loaded")
    if not path.is_file():
        raise WeightsMissingError(f"weights file not found: {path}")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise WeightsIntegrityError(
            f"{path.name}: sha256 {actual[:12]}… does not match the manifest's "
            f"{expected_sha256[:12]}…; the file was changed or replaced, refusing to load it"
        )
    state = load_file(str(path), device="cpu")
    return dequantize_state(state)


INT8_SUFFIX = ".int8_scale"
INT8_MIN_ELEMENTS = 4096  # small tensors (biases, BatchNorm, tiny kernels) stay float16


def quantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Symmetric per-output-channel int8 for large weight matrices, float16 for the rest."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if not v.is_floating_point():
            out[k] = v.contiguous().clone()
        elif v.ndim >= 2 and v.numel() >= INT8_MIN_ELEMENTS:
            flat = v.float().reshape(v.shape[0], -1)
            scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8)
            out[k] = q.reshape(v.shape).contiguous()
            out[k + INT8_SUFFIX] = scale.contiguous()
        else:
            out[k] = v.to(torch.float16).contiguous().clone()
    return out


def dequantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float32 tensors from a stored state (int8 weights times their per-channel scales)."""
    out = {}
    for k, v in state.items():
        if k.endswith(INT8_SUFFIX):
            continue
        scale = state.get(k + INT8_SUFFIX)
        if scale is not None:
            shape = (-1,) + (1,) * (v.ndim - 1)
            out[k] = v.float() * scale.float().reshape(shape)
        else:
            out[k] = v.float() if v.is_floating_point() else v
    return out
