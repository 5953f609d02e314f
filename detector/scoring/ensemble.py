"""Score face crops with every selected model, in batches, under inference mode.

The DFDC winner's shape: the crops of the video are stacked (a chunk at a time, so a long video's
crops are never copied whole), every model runs over them in batches, and the raw ``p_fake``
matrix (faces x models) is kept so that re-weighting and re-aggregation never run a network again.

On a CPU, each per-frame member is traced and frozen once at load
(:func:`detector.scoring.graphs.freeze_for_cpu`):
BatchNorm folded into the convolutions, weights cast to bf16 where the member's manifest shows
its validation AUC holds, oneDNN channels-last kernels, and the batch size its spec found fastest.
Crops are resized once per input size and shared by the members that want that size.
``python -m scripts.bench`` measures the result.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from detector.models import (
    ModelCard,
    ModelSpec,
    create_model,
    get_spec,
    model_card,
    needs_next_frames,
)
from detector.models.preprocess import as_batch, normalised, preprocess, resized_to, with_flow
from detector.scoring.device import (
    bf16_kernels,
    native_bf16,
    release_free_memory,
    resolve_device,
)
from detector.scoring.frozen import build_in_child, cache_key, cached, file_stamps, load_frozen
from detector.scoring.graphs import freeze_for_cpu
from detector.threads import CoreWorkers


@dataclass(frozen=True)
class LoadedModel:
    """A member ready to score: ``module`` is the eager network, or its frozen CPU graph."""

    spec: ModelSpec
    card: ModelCard
    module: nn.Module
    low_precision: bool = False
    frozen: bool = False
    cost: float = 0.0  # parameters x input pixels: the heaviest members are started first

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Fake logits (float32) of a normalised float32 batch, in the member's precision."""
        if self.frozen:
            return self.module(x.to(torch.bfloat16) if self.low_precision else x).float()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.low_precision):
            return self.module(x).float()


def precision_word(low_precision: bool, kernels: str | None) -> str:
    """How an analysis records a member's precision on a CPU with these bf16 ``kernels``
    (:func:`detector.scoring.device.bf16_kernels`): "fp32"; "bf16" on AVX-512 BF16; "bf16 (AMX)"
    on AMX tiles; "bf16 (emulated)" where the CPU has no native bf16 (forced; not calibrated)."""
    if not low_precision:
        return "fp32"
    return {"AMX": "bf16 (AMX)", "AVX512_BF16": "bf16"}.get(kernels or "", "bf16 (emulated)")


def frozen_on_cpu(spec: ModelSpec) -> bool:
    """Whether an optimised ensemble on a CPU runs this member as a frozen graph (per-frame
    members on face crops), which decides the precision check that applies to it."""
    return spec.kind == "frame" and spec.inputs == "crop"


def bf16_holds(
    card: ModelCard, tolerance: float = 0.005, frozen: bool = False, kernels: str | None = "here"
) -> bool:
    """Whether the model's manifest shows validation AUC unchanged (within ``tolerance``) in bf16.

    For a member frozen for the CPU, the check of that path (``metrics.precision_check``, by
    ``scripts/check_precision.py``: eager float32 against the frozen bf16 graph on the same
    validation crops) decides where it exists (on AMX kernels, also its AMX check where one was
    made: ``bf16_holds_amx``); otherwise the training run's ``bf16_val_auc``, measured with bf16
    autocast as eager members run. ``kernels``: the bf16 kernels asked about
    (:func:`detector.scoring.device.bf16_kernels`' words); "here": this process's.
    """
    if kernels == "here":
        kernels = bf16_kernels()
    m = card.metrics or {}
    check = m.get("precision_check")
    if frozen and check:  # a check of other precisions only (e.g. int8) admits no bf16
        bf16, fp32 = check.get("bf16_frozen_auc"), check.get("fp32_eager_auc")
        if bf16 is None or fp32 is None or check.get("bf16_holds") is False:
            return False  # not measured, or a subset of the validation moved (the CLIP member)
        if check.get("bf16_holds_amx") is False and kernels == "AMX":
            return False  # measured on AMX kernels too, and it moved there
        return abs(bf16 - fp32) <= tolerance
    val = m.get("val") or {}
    fp32 = val.get("frame_auc", val.get("video_auc"))  # temporal members: per-sequence AUC
    bf16 = m.get("bf16_val_auc")
    if isinstance(bf16, dict):
        bf16 = bf16.get("frame_auc")
    return fp32 is not None and bf16 is not None and abs(float(fp32) - float(bf16)) <= tolerance


def member_cache_key(
    name: str,
    spec: ModelSpec,
    card: ModelCard,
    low_precision: bool,
    weights_dir: Path | None = None,
) -> str | None:
    """The frozen-graph cache key of a member: its weights' recorded sha256 (and the backbone's),
    the size and modification time of those files (a changed file is a new key, so it is loaded
    and verified again, and a corrupted one raises as without the cache), the precision, the
    traced input size and batch (plus what :func:`cache_key` adds). None when the member has no
    recorded weights sha256 (nothing is cached)."""
    if not card.sha256:
        return None
    from detector import settings as paths
    from detector.errors import WeightsMissingError
    from detector.models import read_manifest
    from detector.models.assets import assets_dir

    try:
        man = read_manifest(name, weights_dir)
    except WeightsMissingError:
        man = {}

    backbone = man.get("backbone") or {}
    files = [(weights_dir or paths.weights_dir()) / card.weights_file]
    if backbone.get("name"):
        files.append(assets_dir() / f"{backbone['name']}.safetensors")
    return cache_key(
        name=name,
        weights=card.sha256,
        backbone=backbone.get("sha256"),
        files=file_stamps(files),
        precision="bf16" if low_precision else "fp32",
        input=spec.input_size,
        batch=spec.batch_size,
    )


def _frozen_member(
    name: str, spec: ModelSpec, low: bool, weights_dir: Path | None, device: torch.device
) -> tuple[nn.Module, dict]:
    """The member's weights, loaded and verified, traced and frozen (and its cost)."""
    net = create_model(name, weights_dir=weights_dir, device=device)
    return freeze_for_cpu(net, spec, low), {"cost": _cost(net, spec)}


def freeze_members(members: dict[str, bool], weights_dir: str | None = None) -> None:
    """Trace, freeze and cache each member (name -> in bf16 or not) on the CPU: what the child
    process of :func:`detector.scoring.frozen.build_in_child` runs for a loading ensemble."""
    wdir = None if weights_dir is None else Path(weights_dir)
    cpu = torch.device("cpu")
    for name, low in members.items():
        spec = get_spec(name)
        key = member_cache_key(name, spec, model_card(name, wdir), low, wdir)
        cached(name, key, functools.partial(_frozen_member, name, spec, low, wdir, cpu))


def _cost(net: nn.Module, spec: ModelSpec) -> float:
    """Parameters x input pixels: the heaviest members are started first."""
    return float(sum(p.numel() for p in net.parameters()) * spec.input_size**2)


class Ensemble:
    """A set of loaded models that turns face crops into a ``(faces, models)`` p_fake matrix.

    Construct once (loading is the slow part) and reuse; the modules are never mutated after
    loading, so one instance can be shared by concurrent analyses.

    Args:
        names: registry names of the members.
        device: "auto", "cpu" or "cuda".
        weights_dir: where ``<name>.safetensors`` and ``<name>.json`` live.
        batch_size: crops per forward pass; on a CPU, per-frame members use their spec's
            ``batch_size`` (the fastest measured there), or :data:`FP32_CPU_BATCH` for a
            float32 member beside others.
        precision: "fp32"; "auto": bf16 for the members whose manifest shows the validation
            AUC holds in bf16, on hardware that runs bf16 natively (GPU or a CPU with AVX-512
            BF16 / AMX), fp32 for the rest; "bf16": every member in bf16 (to measure it).
        optimize: on a CPU, freeze the per-frame members (:func:`freeze_for_cpu`); False keeps
            the eager networks (for comparisons).
    """

    def __init__(
        self,
        names: Sequence[str],
        device: str = "auto",
        weights_dir: Path | None = None,
        batch_size: int = 16,
        precision: str = "auto",
        optimize: bool = True,
    ) -> None:
        if not names:
            from detector.errors import BadSettingsError

            raise BadSettingsError("select at least one model")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        native = self.device.type == "cuda" or native_bf16()
        self.members: dict[str, LoadedModel] = {}
        plans = []
        for name in names:
            spec = get_spec(name)
            if spec.kind == "audio":
                from detector.errors import BadSettingsError

                raise BadSettingsError(
                    f"{name} is an audio member: it judges the voice, apart from the faces "
                    "(the voice settings choose it), not face crops"
                )
            card = model_card(name, weights_dir)
            freeze = optimize and self.device.type == "cpu" and frozen_on_cpu(spec)
            low = precision == "bf16" or (
                precision == "auto" and native and bf16_holds(card, frozen=freeze)
            )
            key = (
                member_cache_key(name, spec, card, low, weights_dir)
                if freeze and card.available
                else None
            )
            plans.append((name, spec, card, freeze, low, key))
        hits = {name: load_frozen(name, key) for name, *_, key in plans if key}
        missing = {name: low for name, *_, low, key in plans if key and hits[name] is None}
        keys = {name: key for name, *_, key in plans if name in missing}
        wdir = None if weights_dir is None else str(weights_dir)
        target = "detector.scoring.ensemble:freeze_members"
        if missing and build_in_child(target, keys, members=missing, weights_dir=wdir):
            hits.update({name: load_frozen(name, key) for name, key in keys.items()})
        for name, spec, card, freeze, low, key in plans:
            if freeze:  # loaded above, or (no cache, no child) traced and frozen here
                build = functools.partial(_frozen_member, name, spec, low, weights_dir, self.device)
                module, info = hits.get(name) or cached(name, key, build)
                cost = float(info["cost"])
            else:
                module = create_model(name, weights_dir=weights_dir, device=self.device)
                cost = _cost(module, spec)
                module = module.to(memory_format=torch.channels_last)
            self.members[name] = LoadedModel(spec, card, module, low, freeze, cost)
        release_free_memory()
        frame_members = sum(m.spec.kind == "frame" for m in self.members.values())
        cores = torch.get_num_threads()
        parallel = optimize and self.device.type == "cpu" and frame_members > 1 and cores > 1
        self.workers = CoreWorkers(min(cores, frame_members), "ensemble-core") if parallel else None

    @property
    def precision(self) -> str:
        """ "bf16" if every member runs in bf16, "fp32" if none does, else "mixed"."""
        lows = {m.low_precision for m in self.members.values()}
        return "mixed" if len(lows) > 1 else ("bf16" if lows == {True} else "fp32")

    @property
    def precisions(self) -> dict[str, str]:
        """The precision each member runs in, in the words of the calibration's precision paths:
        "fp32", "bf16" (AVX-512 BF16 kernels), "bf16 (AMX)", "bf16 (emulated)" on the CPU
        (:func:`precision_word`); "fp32 on GPU" / "bf16 on GPU" on a GPU."""
        if self.device.type != "cpu":
            word = {False: "fp32 on GPU", True: "bf16 on GPU"}
            return {n: word[m.low_precision] for n, m in self.members.items()}
        kernels = bf16_kernels()
        return {n: precision_word(m.low_precision, kernels) for n, m in self.members.items()}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.members)

    @property
    def temporal_names(self) -> tuple[str, ...]:
        """Members that score windows of a person's track rather than single crops."""
        return tuple(n for n, m in self.members.items() if m.spec.kind == "track")

    def only(self, name: str, member: LoadedModel | None = None) -> Ensemble:
        """A view of this ensemble with one member (the loaded one, or ``member``) that shares
        the loaded networks and scores on every core in the calling thread (for measuring one
        member alone)."""
        one = copy.copy(self)
        one.members = {name: member or self.members[name]}
        one.workers = None
        return one

    @property
    def needs_next_frames(self) -> bool:
        """Whether a member needs each crop's next raw frame (two-stream optical flow)."""
        return needs_next_frames(self.members)

    def score(
        self,
        crops: np.ndarray | Sequence[np.ndarray],
        track_ids: np.ndarray | None = None,
        next_crops: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """p_fake for every crop and model, shape ``(len(crops), len(self.names))``.

        ``crops`` is an N x H x W x 3 uint8 array or a sequence of H x W x 3 crops (stacked a
        chunk at a time, so a long video's crops are never copied whole).

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
        columns = {name: j for j, name in enumerate(self.members)}
        per_frame = {n: m for n, m in self.members.items() if m.spec.kind == "frame"}
        batch = {n: self._batch_size(m) for n, m in per_frame.items()}
        chunk = max(batch.values(), default=1)
        heaviest_first = sorted(per_frame, key=lambda n: -per_frame[n].cost)
        sizes = {m.spec.input_size for m in per_frame.values()}
        if self.workers is not None:
            # the workers allocate from their own heap arenas, which cannot reuse what the
            # calling thread freed (face detection's buffers): hand that back to the OS first
            release_free_memory()

        cores = self.workers.n if self.workers is not None else 1

        def member_task(name: str, start: int, part: np.ndarray, resized: dict, rows: slice):
            def run() -> None:
                member = per_frame[name]
                spec = member.spec
                with torch.inference_mode():
                    x = normalised(resized[spec.input_size][rows], spec.mean, spec.std)
                    sub = part[rows]
                    at = start + rows.start
                    nxt = next_crops[at : at + len(sub)] if next_crops is not None else None
                    x = with_flow(x, sub, spec, self.device, nxt)
                    logits = member(x).reshape(-1)
                    out[at : at + len(logits), columns[name]] = torch.sigmoid(logits).cpu().numpy()

            return run

        with torch.inference_mode():
            for start, stop in chunk_bounds(len(crops) if per_frame else 0, chunk):
                part = np.stack(crops[start:stop])
                raw = as_batch(part, self.device)
                resized = {size: resized_to(raw, size) for size in sizes}  # shared by members
                tasks = [
                    member_task(n, start, part, resized, rows)
                    for n in heaviest_first
                    for rows in work_split(len(part), batch[n], cores)
                ]
                if self.workers is not None:
                    self.workers.run(tasks)
                else:
                    for task in tasks:
                        task()
            for name in self.temporal_names:
                ids = np.zeros(len(crops), int) if track_ids is None else track_ids
                out[:, columns[name]] = self._score_windows(
                    self.members[name], crops, np.asarray(ids), next_crops
                )
        return out

    def _batch_size(self, member: LoadedModel) -> int:
        if self.device.type != "cpu":
            return self.batch_size
        if member.low_precision or self.workers is None:
            return member.spec.batch_size
        return min(member.spec.batch_size, FP32_CPU_BATCH)

    def _score_windows(
        self, member: LoadedModel, crops, ids: np.ndarray, next_crops=None
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
                flat = preprocess(np.stack([crops[i] for i in rows]), member.spec, self.device, nxt)
                x = flat.reshape(len(chunk), len(chunk[0]), *flat.shape[1:])
                p = torch.sigmoid(member(x).reshape(-1)).cpu().numpy()
                for w, pw in zip(chunk, p, strict=True):
                    out[w] = pw
        return out


FP32_CPU_BATCH = 2
"""The batch of a member scored in float32 on the CPU beside other members, whose forward passes
each run on one core (:class:`CoreWorkers`, :func:`work_split`): on two cores, chunks of 2 crops,
one crop per pass and core. In float32 that costs about the same per crop as chunks of 8 (passes
of 4) and holds far less memory: ``python -m scripts.chunk_memory`` (its table is in
docs/performance-history.md, 2026-12-05e). The spec's ``batch_size`` stays for bf16 members (smaller
chunks cost time there) and for a member scored alone on every core (chunks of 2 on two threads
cost 23-44 % more time per crop: the bench's "alone" rows of
``docs/bench/2026-12-05e-amx-xeon-capped-avx2-edfd853.json``). Next to a bf16 member the chunk
is that member's batch, and the float32 member's passes hold at most this many crops.
"""


def chunk_bounds(n: int, chunk: int) -> list[tuple[int, int]]:
    """(start, stop) of ``n`` crops cut into chunks of ``chunk``, a last chunk of at most a
    quarter of ``chunk`` joined to the one before it: ten crops in chunks of eight are one pass
    per member, not 8 + 2 (0.497 -> 0.472 s for the default pair in bf16 on AMX, measured in a
    throwaway probe), and only that chunk grows, by a quarter at most."""
    bounds = [(i, min(n, i + chunk)) for i in range(0, n, chunk)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] <= chunk // 4:
        (start, _), (_, stop) = bounds[-2], bounds.pop()
        bounds[-1] = (start, stop)
    return bounds


def work_split(n: int, batch: int, cores: int) -> list[slice]:
    """Rows of ``n`` crops cut into forward passes of at most ``batch`` crops, and into at least
    ``cores`` passes where there are enough crops, so that every core gets a share of each
    member (one member alone on one core left the other idle: the CLIP member took 4.5 s of a
    10-crop analysis on one core while the other finished the rest in under 1 s)."""
    if n == 0:
        return []
    size = max(1, min(batch, -(-n // cores)))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def track_windows(track_ids: np.ndarray, length: int) -> list[np.ndarray]:
    """Row indices of each temporal window: every track cut into nearly equal runs of at most
    ``length`` consecutive crops (rows keep their order within a track)."""
    windows = []
    for tid in dict.fromkeys(track_ids.tolist()):
        rows = np.flatnonzero(track_ids == tid)
        n = max(1, -(-len(rows) // length))
        windows.extend(w for w in np.array_split(rows, n) if len(w))
    return windows
