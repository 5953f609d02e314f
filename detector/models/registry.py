"""One registry of model specs, in the manner of timm's ``register_model``.

A :class:`ModelSpec` says everything the rest of the project needs to know about a member of the
ensemble: how to build the network, what input it wants, how its raw output maps to ``p_fake``,
which layer Grad-CAM should look at, and which weights file (with which sha256) it loads.

Provenance, licence, training data and measured metrics are not code: they live in the weights
manifest ``weights/<name>.json`` written by the conversion / training scripts, and are joined to the
spec by :func:`model_card`. The weights folder is resolved at call time (``DEEPFAKE_WEIGHTS_DIR``
or the shipped ``weights/``, see :func:`detector.settings.weights_dir`) unless a caller passes one.

Families are listed in :data:`FAMILIES`; each family module declares its specs in ``SPECS`` and
registers nothing by being imported.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from detector import settings as paths
from detector.errors import UnknownModelError, WeightsIntegrityError, WeightsMissingError
from detector.models.spec import FakeLogit, ModelSpec
from detector.models.weights import load_state_dict

# The families, in one explicit list: each module declares its members in ``SPECS``.
FAMILIES = (
    "aasist",
    "clip",
    "efficientnet",
    "facenet",
    "inception_resnet_v2",
    "mesonet",
    "temporal",
    "two_stream",
    "xception",
)


@functools.cache
def _registry() -> dict[str, ModelSpec]:
    registry: dict[str, ModelSpec] = {}
    for family in FAMILIES:
        for spec in importlib.import_module(f"detector.models.families.{family}").SPECS:
            if spec.name in registry:
                raise ValueError(f"model {spec.name!r} is declared twice")
            registry[spec.name] = spec
    return registry


FACE_KINDS = ("frame", "track")
"""The kinds of the face ensemble's members (the model picker, the Ensemble lab, evaluation)."""


def list_models(
    *,
    available_only: bool = False,
    weights_dir: Path | None = None,
    kinds: tuple[str, ...] = FACE_KINDS,
) -> list[str]:
    """Registered model names of the given kinds (by default the face members; ``("audio",)``:
    the voice members), optionally only those whose weights file exists."""
    names = sorted(n for n, spec in _registry().items() if spec.kind in kinds)
    if available_only:
        wdir = weights_dir or paths.weights_dir()
        names = [n for n in names if (wdir / f"{n}.safetensors").is_file()]
    return names


def needs_next_frames(names: Sequence[str]) -> bool:
    """Whether a member among ``names`` needs each crop's next raw frame (optical flow)."""
    return any(get_spec(n).inputs == "crop_and_flow" for n in names)


def get_spec(name: str) -> ModelSpec:
    try:
        return _registry()[name]
    except KeyError:
        known = ", ".join(sorted(_registry())) or "none"
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
    kind: str = "frame"  # "track": one score per window of a person's crops; "audio": the voice
    precision: str = ""  # what an analysis ran it in ("fp32" / "bf16"); empty on a bare card


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
        # a converted member without its own init names the archive its weights came from
        init_from=man.get("init_from") or str(man.get("source", {}).get("archive", "")),
        licence=man.get("licence", ""),
        data_terms=man.get("data_terms", ""),
        metrics=man.get("metrics", {}),
        notes=man.get("notes", ""),
        kind=spec.kind,
    )
