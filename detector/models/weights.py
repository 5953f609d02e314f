"""Safe weight loading: safetensors only, each file checked against the sha256 in its manifest.

No pickle is ever read: a state dict comes from ``safetensors.torch.load_file`` after the file's
digest has matched the recorded one, so a swapped or tampered file is refused before it is parsed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file

from detector.errors import WeightsIntegrityError, WeightsMissingError


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


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
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
