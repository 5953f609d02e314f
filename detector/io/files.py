"""Files on disk: their sha256, and the suffixes that mark video clips and audio files.

Uploads and the files given to ``analyze`` are recognised by their bytes (:mod:`detector.io.sniff`);
suffixes only pick the clips out of labelled folders and tell the uploaders what to offer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# File names that say "video" (a damaged file with such a name is still listed, and refused in words).
VIDEO_SUFFIXES = (
    *(".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".mpg"),
    *(".mpeg", ".vob", ".flv", ".ogv", ".ogg", ".wmv", ".asf", ".y4m", ".3gp", ".3g2"),
)
# Audio-only files the uploaders offer too (their voice is judged; the faces get "no video stream").
AUDIO_SUFFIXES = (".m4a", ".wav", ".mp3", ".flac", ".aac")


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
