"""Speech detection with Silero VAD (v6, 16 kHz), from the weights bundled in its PyPI package.

The ``silero-vad`` package ships ``silero_vad/data/silero_vad_16k.safetensors`` beside its
TorchScript and ONNX files. This module rebuilds the small network (an STFT done as a fixed
convolution, four conv layers, an LSTM cell, a sigmoid head; the layout of the package's own
``tinygrad_model.py``) in PyTorch and loads that file after checking its sha256: no TorchScript,
no pickle, nothing fetched from a hub. The package is located without importing it (its
``__init__`` sets torch's thread count as a side effect).

As in the package, audio is read in 512-sample chunks (32 ms), each with the 64 samples before it
as context; the LSTM carries its state across chunks. The conv part of every chunk is computed
in one batch and only the LSTM steps run in order, so ten seconds take a few milliseconds.
Speech stretches follow the package's ``get_speech_timestamps`` rules (threshold with
hysteresis, minimum speech and silence durations, padding), without its ``max_speech_duration``
splitting.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detector.errors import WeightsIntegrityError, WeightsMissingError
from detector.models.weights import load_state_dict

SAMPLE_RATE = 16_000
CHUNK = 512
CONTEXT = 64
PACKAGE = "silero-vad==6.2.3"
WEIGHTS_FILE = "data/silero_vad_16k.safetensors"
WEIGHTS_SHA256 = "c59271c284ae9c8335d795d60e0bfdb71aaaceec578d9bd9ffc1b8153c319ea1"


@dataclass(frozen=True)
class VadSettings:
    """Speech-detection rules (the Silero defaults, in seconds)."""

    threshold: float = 0.5
    min_speech_s: float = 0.25
    min_silence_s: float = 0.1
    pad_s: float = 0.03


class SileroVAD(nn.Module):
    """Silero VAD v6, 16 kHz branch: one speech probability per 512-sample chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 258, kernel_size=256, stride=128, bias=False)
        self.conv1 = nn.Conv1d(129, 128, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, kernel_size=3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, kernel_size=3, padding=1)
        self.lstm_cell = nn.LSTMCell(128, 128)
        self.final_conv = nn.Conv1d(128, 1, 1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Speech probabilities (n_chunks,) for a mono 16 kHz waveform (samples,)."""
        n = max(1, -(-wave.numel() // CHUNK))
        wave = F.pad(wave, (CONTEXT, n * CHUNK - wave.numel()))
        chunks = wave.unfold(0, CHUNK + CONTEXT, CHUNK)  # (n, 576): context + chunk
        x = F.pad(chunks, (0, CONTEXT), mode="reflect").unsqueeze(1)
        x = self.stft_conv(x)
        x = torch.sqrt(x[:, :129] ** 2 + x[:, 129:] ** 2)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = torch.relu(conv(x))
        feats = x.squeeze(-1)  # (n, 128)
        h = c = torch.zeros(1, 128, dtype=feats.dtype)
        hidden = []
        for i in range(n):
            h, c = self.lstm_cell(feats[i : i + 1], (h, c))
            hidden.append(h)
        out = self.final_conv(torch.relu(torch.cat(hidden)).unsqueeze(-1))
        return torch.sigmoid(out).reshape(n)


def weights_path() -> Path:
    """The bundled weights inside the installed ``silero-vad`` package (not imported)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissingError(
            f"the speech detector needs the {PACKAGE} package (pip install {PACKAGE})"
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def load_vad() -> SileroVAD:
    """The speech detector with its bundled weights, sha256-checked, loaded strictly."""
    path = weights_path()
    try:
        state = load_state_dict(path, WEIGHTS_SHA256)
    except WeightsIntegrityError as exc:
        raise WeightsIntegrityError(f"{exc} (expected the file of {PACKAGE})") from None
    model = SileroVAD()
    model.load_state_dict(state, strict=True)
    return model.eval()


def speech_probabilities(model: SileroVAD, samples: np.ndarray) -> np.ndarray:
    """One speech probability per 32 ms chunk."""
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(samples, np.float32))).numpy()


def speech_stretches(
    probs: np.ndarray, n_samples: int, settings: VadSettings | None = None
) -> list[tuple[int, int]]:
    """(start, end) sample indices of speech, from per-chunk probabilities (Silero's rules)."""
    s = settings or VadSettings()
    neg = max(s.threshold - 0.15, 0.01)
    min_speech = SAMPLE_RATE * s.min_speech_s
    min_silence = SAMPLE_RATE * s.min_silence_s
    pad = int(SAMPLE_RATE * s.pad_s)
    found: list[list[int]] = []
    triggered, start, temp_end = False, 0, 0
    for i, p in enumerate(probs):
        cur = CHUNK * i
        if p >= s.threshold and temp_end:
            temp_end = 0
        if p >= s.threshold and not triggered:
            triggered, start = True, cur
            continue
        if p < neg and triggered:
            if not temp_end:
                temp_end = cur
            if cur - temp_end < min_silence:
                continue
            if temp_end - start > min_speech:
                found.append([start, temp_end])
            triggered, temp_end = False, 0
    if triggered and n_samples - start > min_speech:
        found.append([start, n_samples])
    for i, seg in enumerate(found):  # pad, without overlapping the neighbours
        if i == 0:
            seg[0] = max(0, seg[0] - pad)
        if i < len(found) - 1:
            silence = found[i + 1][0] - seg[1]
            if silence < 2 * pad:
                seg[1] += silence // 2
                found[i + 1][0] = max(0, found[i + 1][0] - silence // 2)
            else:
                seg[1] = min(n_samples, seg[1] + pad)
                found[i + 1][0] = max(0, found[i + 1][0] - pad)
        else:
            seg[1] = min(n_samples, seg[1] + pad)
    return [(a, b) for a, b in found]
