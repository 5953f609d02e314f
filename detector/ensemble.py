"""Score face crops with every selected model: one batched forward per model, inference mode.

The DFDC winner's shape: all crops of the video are stacked once, every model runs over the stack
in batches, and the raw ``p_fake`` matrix (faces x models) is kept so that re-weighting and
re-aggregation never run a network again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detector.device import resolve_device
from detector.models import ModelCard, ModelSpec, create_model, get_spec, model_card


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    card: ModelCard
    module: nn.Module
    low_precision: bool = False


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX (bf16 is then fast, not emulated)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_holds(card: ModelCard, tolerance: float = 0.005) -> bool:
    """Whether the model's manifest shows validation AUC unchanged (within ``tolerance``) in bf16."""
    m = card.metrics or {}
    val = m.get("val") or {}
    fp32 = val.get("frame_auc", val.get("video_auc"))  # temporal members: per-sequence AUC
    bf16 = m.get("bf16_val_auc")
    if isinstance(bf16, dict):
        bf16 = bf16.get("frame_auc")
    return fp32 is not None and bf16 is not None and abs(float(fp32) - float(bf16)) <= tolerance


def preprocess(
    crops: np.ndarray, spec: ModelSpec, device: torch.device, next_crops=None
) -> torch.Tensor:
    """uint8 N x H x W x 3 RGB crops -> normalised float N x 3 x S x S at the model's input size.

    Members with ``inputs == "crop_and_flow"`` get 2 more channels: the optical flow from each crop
    to ``next_crops[i]`` (the same box in the next raw frame; zero motion where it is None).
    """
    x = _rgb(crops, spec, device)
    if spec.inputs == "crop_and_flow":
        from detector.models.two_stream import flow_batch

        flow = flow_batch(crops, next_crops, spec.input_size).to(device)
        x = torch.cat([x, flow.contiguous(memory_format=torch.channels_last)], dim=1)
    return x


def _rgb(crops: np.ndarray, spec: ModelSpec, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device).permute(0, 3, 1, 2).float()
    x = x / 255.0
    if x.shape[-1] != spec.input_size or x.shape[-2] != spec.input_size:
        size = (spec.input_size, spec.input_size)
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


class Ensemble:
    """A set of loaded models that turns face crops into a ``(faces, models)`` p_fake matrix.

    Construct once (loading is the slow part) and reuse; the modules are never mutated after
    loading, so one instance can be shared by concurrent analyses.

    Args:
        names: registry names of the members.
        device: "auto", "cpu" or "cuda".
        weights_dir: where ``<name>.safetensors`` and ``<name>.json`` live.
        batch_size: crops per forward pass.
        precision: "fp32", or "auto": bf16 autocast for the members whose manifest shows the
            validation AUC holds in bf16, on hardware that runs bf16 natively (GPU or a CPU with
            AVX-512 BF16 / AMX); fp32 for the rest.
    """

    def __init__(
        self,
        names: Sequence[str],
        device: str = "auto",
        weights_dir: Path | None = None,
        batch_size: int = 16,
        precision: str = "auto",
    ) -> None:
        if not names:
            from detector.errors import BadSettingsError

            raise BadSettingsError("select at least one model")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        native = self.device.type == "cuda" or cpu_has_native_bf16()
        self.members: dict[str, LoadedModel] = {}
        for name in names:
            spec = get_spec(name)
            card = model_card(name, weights_dir)
            module = create_model(name, weights_dir=weights_dir, device=self.device)
            module = module.to(memory_format=torch.channels_last)
            low = precision == "auto" and native and bf16_holds(card)
            self.members[name] = LoadedModel(spec, card, module, low)

    @property
    def precision(self) -> str:
        """ "bf16" if every member runs in bf16, "fp32" if none does, else "mixed"."""
        lows = {m.low_precision for m in self.members.values()}
        return "mixed" if len(lows) > 1 else ("bf16" if lows == {True} else "fp32")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.members)

    @property
    def temporal_names(self) -> tuple[str, ...]:
        """Members that score windows of a person's track rather than single crops."""
        return tuple(n for n, m in self.members.items() if m.spec.kind == "track")

    @property
    def needs_next_frames(self) -> bool:
        """Whether a member needs each crop's next raw frame (two-stream optical flow)."""
        return any(m.spec.inputs == "crop_and_flow" for m in self.members.values())

    def score(
        self,
        crops: np.ndarray,
        track_ids: np.ndarray | None = None,
        next_crops: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """p_fake for every crop and model, shape ``(len(crops), len(self.names))``.

        ``track_ids`` (one per crop, crops of a track in time order) is needed by temporal
        members: each track is cut into windows of at most ``sequence_length`` consecutive crops,
        every window is scored once, and each crop gets its window's score. Without it, all
        crops are taken as one person. ``next_crops`` (the same box in the following raw frame,
        or None) feeds the two-stream members' optical flow.
        """
        out = np.zeros((len(crops), len(self.members)), dtype=np.float64)
        if len(crops) == 0:
            return out
        if next_crops is None and self.needs_next_frames:
            raise ValueError(
                "two-stream members need each crop's next frame (next_crops); decode with "
                "with_next=True"
            )
        with torch.inference_mode():
            for j, member in enumerate(self.members.values()):
                if member.spec.kind == "track":
                    ids = np.zeros(len(crops), int) if track_ids is None else track_ids
                    out[:, j] = self._score_windows(member, crops, np.asarray(ids), next_crops)
                    continue
                for start in range(0, len(crops), self.batch_size):
                    stop = start + self.batch_size
                    nxt = next_crops[start:stop] if next_crops is not None else None
                    batch = preprocess(crops[start:stop], member.spec, self.device, nxt)
                    with torch.autocast(
                        self.device.type, dtype=torch.bfloat16, enabled=member.low_precision
                    ):
                        logits = member.module(batch).float().reshape(-1)
                    out[start : start + len(batch), j] = torch.sigmoid(logits).cpu().numpy()
        return out

    def _score_windows(
        self, member: LoadedModel, crops: np.ndarray, ids: np.ndarray, next_crops=None
    ) -> np.ndarray:
        windows = track_windows(ids, member.spec.sequence_length)
        out = np.zeros(len(crops))
        by_len: dict[int, list[np.ndarray]] = {}
        for w in windows:
            by_len.setdefault(len(w), []).append(w)
        per_batch = max(1, self.batch_size // max(1, member.spec.sequence_length))
        for group in by_len.values():
            for s in range(0, len(group), per_batch):
                chunk = group[s : s + per_batch]
                rows = np.concatenate(chunk)
                nxt = [next_crops[i] for i in rows] if next_crops is not None else None
                flat = preprocess(crops[rows], member.spec, self.device, nxt)
                x = flat.reshape(len(chunk), len(chunk[0]), *flat.shape[1:])
                with torch.autocast(
                    self.device.type, dtype=torch.bfloat16, enabled=member.low_precision
                ):
                    p = torch.sigmoid(member.module(x).float().reshape(-1)).cpu().numpy()
                for w, pw in zip(chunk, p, strict=True):
                    out[w] = pw
        return out


def track_windows(track_ids: np.ndarray, length: int) -> list[np.ndarray]:
    """Row indices of each temporal window: every track cut into nearly equal runs of at most
    ``length`` consecutive crops (rows keep their order within a track)."""
    windows = []
    for tid in dict.fromkeys(track_ids.tolist()):
        rows = np.flatnonzero(track_ids == tid)
        n = max(1, -(-len(rows) // length))
        windows.extend(w for w in np.array_split(rows, n) if len(w))
    return windows
