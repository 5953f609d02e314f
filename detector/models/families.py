"""Importing this module registers every model family's specs (one import per family file)."""

from detector.models import efficientnet, facenet, mesonet, xception  # noqa: F401
