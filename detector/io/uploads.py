"""Stage uploaded bytes as a private temporary file, judged by content, removed afterwards.

The uploaded file name is never used to build a path: the bytes go to a fresh private directory
under a fixed name whose suffix comes from the sniffed container. The directory is removed when
the ``with`` block ends, whether the analysis succeeded or failed.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from detector.io.sniff import SUFFIX, require_media

TEMP_PREFIX = "deepfake-upload-"


def display_name(name: str | None, limit: int = 120) -> str:
    """A safe label for an uploaded file's name (for reports only, never a path)."""
    base = re.split(r"[\\/]", name or "")[-1].strip()
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in base) or "upload"
    return cleaned[:limit]


@contextmanager
def staged_upload(data: bytes, name: str = "upload") -> Iterator[Path]:
    """Write ``data`` to a private temp file for the duration of the block, then delete it.

    Raises:
        VideoReadError: the bytes are not a video container (an image, an archive, text...).
    """
    kind = require_media(data[:4096], name)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
        path = Path(tmp) / f"upload{SUFFIX[kind]}"
        path.write_bytes(data)
        path.chmod(0o600)
        yield path
