"""Model registry and families. ``create_model(name)`` builds a verified, eval-mode member."""

from detector.models.registry import (
    FACE_KINDS,
    ModelCard,
    ModelSpec,
    create_model,
    get_spec,
    list_models,
    model_card,
    needs_next_frames,
    read_manifest,
)

__all__ = [
    "FACE_KINDS",
    "ModelCard",
    "ModelSpec",
    "create_model",
    "get_spec",
    "list_models",
    "model_card",
    "needs_next_frames",
    "read_manifest",
]
