"""Importing this module registers every model family's specs (one import per family file)."""

from detector.models.families import (  # noqa: F401
    clip,
    efficientnet,
    facenet,
    inception_resnet_v2,
    mesonet,
    temporal,
    two_stream,
    xception,
)
