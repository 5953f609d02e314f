"""One registry of model specs, in the manner of timm's ``register_model``.

A :class:`ModelSpec` says everything the rest of the project needs to know about a member of the
ensemble: how to build the network, what input it wants, how its raw output maps to ``p_fake``,
which layer Grad-CAM should look at, and which weights file (with which sha256) it loads.

Provenance, licence, training data and measured metrics are not code: they live in the weights
manifest ``weights/<name>.json`` written by the conversion / training scripts, and are joined to the
spec by :func:`model_card`. The weights folder is resolved at call time (``DEEPFAKE_WEIGHTS_DIR``
or the shipped ``weights/``, see :func:`detector.settings.weights_dir`) unless a caller passes one.

Every network built by :func:`create_model` returns one *fake logit* per input image, shape
``(N, 1)``: ``sigmoid(logit) == p_fake``. Models whose original output is about the real class
(MesoNet outputs P(real)) are wrapped so that the sign is flipped once, here, and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from detector import settings as paths
from detector.errors import UnknownModelError, WeightsIntegrityError, WeightsMissingError
from detector.models.weights import load_state_dict


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline, the UI and the tests need to know about one ensemble member.

    Attributes:
        name: registry key, also the stem of ``weights/<name>.safetensors`` and ``<name>.json``.
        family: architecture family shown to analysts ("MesoNet", "Xception", ...).
        factory: builds the bare network (no weights loaded).
        input_size: square side in pixels the face crop is resized to.
        mean: per-channel mean subtracted from RGB in [0, 1].
        std: per-channel std dividing RGB in [0, 1].
        positive_class: which class the network's single logit is for; "real" logits are negated.
        gradcam_layer: dotted attribute path of the Grad-CAM target layer inside the *bare* network.
        description: one line for model cards.
        kind: "frame" models score one crop; "track" models score a sequence of crops of one person.
        sequence_length: frames per sequence for "track" models.
        inputs: "crop", or "crop_and_flow": the member also needs each crop's next raw frame
            (the pipeline then decodes it) to compute optical flow.
        batch_size: crops per forward pass; the fastest on this project's 2-core CPU, as
            ``python -m detector bench --batch-sweep`` measures it (a speed setting only: scores
            do not depend on it).
        base_loader: for members whose weights file holds only what training changed (the
            CLIP member: head and LayerNorms), loads the frozen backbone (sha256-checked) into
            the bare network first; the file must then hold every key outside ``base_prefix``.
        base_prefix: the state-dict prefix the base loader fills.
        gradcam_tokens: the Grad-CAM layer outputs ViT tokens (class token first, then a square
            grid of patches) rather than a feature map.
    """

    name: str
    family: str
    factory: Callable[[], nn.Module]
    input_size: int
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    positive_class: Literal["fake", "real"] = "fake"
    gradcam_layer: str = ""
    description: str = ""
    kind: Literal["frame", "track"] = "frame"
    sequence_length: int = 1
    default_weight: float = 1.0
    inputs: Literal["crop", "crop_and_flow"] = "crop"
    batch_size: int = 16
    base_loader: Callable[[nn.Module], None] | None = None
    base_prefix: str = ""
    gradcam_tokens: bool = False

    @property
    def weights_path(self) -> Path:
        return paths.weights_dir() / f"{self.name}.safetensors"

    @property
    def manifest_path(self) -> Path:
        return paths.weights_dir() / f"{self.name}.json"


class FakeLogit(nn.Module):
    """Wraps a bare network so its output is always one logit for "fake", shape (N, 1)."""

    def __init__(self, net: nn.Module, positive_class: Literal["fake", "real"]) -> None:
        super().__init__()
        self.net = net
        self.sign = -1.0 if positive_class == "real" else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return self.sign * out.reshape(out.shape[0], -1)[:, :1]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a spec to the registry (once per name)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(*, available_only: bool = False, weights_dir: Path | None = None) -> list[str]:
    """Registered model names, optionally only those whose weights file exists."""
    _ensure_families_imported()
    names = sorted(_REGISTRY)
    if available_only:
        wdir = weights_dir or paths.weights_dir()
        names = [n for n in names if (wdir / f"{n}.safetensors").is_file()]
    return names


def get_spec(name: str) -> ModelSpec:
    _ensure_families_imported()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None


def read_manifest(name: str, weights_dir: Path | None = None) -> dict:
    """The manifest written beside a weights file: sha256, provenance, licence, metrics."""
    path = (weights_dir or paths.weights_dir()) / f"{name}.json"
    if not path.is_file():
        raise WeightsMissingError(f"model {name!r} has no manifest at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def create_model(
    name: str,
    *,
    weights_dir: Path | None = None,
    device: torch.device | str = "cpu",
    load_weights: bool = True,
) -> nn.Module:
    """Build a registered model in eval mode, with its verified weights loaded.

    ``load_weights=False`` gives the randomly initialised network, for tests of shapes only; it is
    never used to score a video.
    """
    spec = get_spec(name)
    net = spec.factory()
    if load_weights:
        wdir = weights_dir or paths.weights_dir()
        manifest = read_manifest(name, wdir)
        state = load_state_dict(wdir / f"{name}.safetensors", manifest["sha256"])
        if spec.base_loader is None:
            net.load_state_dict(state)
        else:
            spec.base_loader(net)
            result = net.load_state_dict(state, strict=False)
            missing = [k for k in result.missing_keys if not k.startswith(spec.base_prefix)]
            if result.unexpected_keys or missing:
                raise WeightsIntegrityError(
                    f"{name}: the weights file does not fit the network (unexpected "
                    f"{result.unexpected_keys[:5]}, missing {missing[:5]})"
                )
    model = FakeLogit(net, spec.positive_class)
    return model.eval().to(device)


@dataclass(frozen=True)
class ModelCard:
    """A spec joined with its manifest, for the Models page, the report and ``--json``."""

    name: str
    family: str
    description: str
    input_size: int
    weights_file: str
    sha256: str | None
    available: bool
    trained_on: str
    init_from: str
    licence: str
    data_terms: str
    metrics: dict = field(default_factory=dict)
    notes: str = ""
    kind: str = "frame"  # "track": a temporal member, one score per window of a person's crops


def model_card(name: str, weights_dir: Path | None = None) -> ModelCard:
    spec = get_spec(name)
    wdir = weights_dir or paths.weights_dir()
    try:
        man = read_manifest(name, wdir)
    except WeightsMissingError:
        man = {}
    return ModelCard(
        name=name,
        family=spec.family,
        description=spec.description,
        input_size=spec.input_size,
        weights_file=f"{name}.safetensors",
        sha256=man.get("sha256"),
        available=(wdir / f"{name}.safetensors").is_file() and "sha256" in man,
        trained_on=man.get("trained_on", "not trained: no weights shipped"),
        init_from=man.get("init_from", ""),
        licence=man.get("licence", ""),
        data_terms=man.get("data_terms", ""),
        metrics=man.get("metrics", {}),
        notes=man.get("notes", ""),
        kind=spec.kind,
    )


def _ensure_families_imported() -> None:
    """Import the family modules, each of which registers its specs (no import-time work else)."""
    from detector.models import families  # noqa: F401
