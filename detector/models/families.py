"""Importing this module registers every model family's specs (one import per family file)."""

from detector.models import mesonet  # noqa: F401
