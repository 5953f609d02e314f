"""Which files a scan analyses: files given by name always, text files listing paths, and in folders the files whose bytes (or name) say video; the rest is listed, not scanned."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from detector.errors import BadSettingsError
from detector.io.files import VIDEO_SUFFIXES
from detector.io.sniff import DEMUXER, DESCRIPTION, sniff

if TYPE_CHECKING:
    pass


# Names that say "video" when the bytes do not: such a file in a folder is a damaged clip, and
# gets its line; a file with another name and no video bytes is not a clip.
HEAD_BYTES = 4096


@dataclass(frozen=True)
class SkippedFile:
    """A file found in a folder that is not a clip (its bytes and its name say so)."""

    path: Path
    what: str


@dataclass(frozen=True)
class Discovery:
    """The clips to scan, in order (each once), and the files in folders that are not clips."""

    clips: tuple[Path, ...]
    skipped: tuple[SkippedFile, ...] = ()
    notes: tuple[str, ...] = ()


def discover(
    paths: Sequence[Path], recursive: bool = False, exclude: Path | None = None
) -> Discovery:
    """Expand files, folders and lists of paths into the clips to scan.

    Relative paths in a list are read from the current directory, as on the command line. A text
    file named inside a list is a clip, not another list.

    Raises:
        BadSettingsError: a path (given or listed) does not exist.
    """
    clips: list[Path] = []
    skipped: list[SkippedFile] = []
    notes: list[str] = []
    missing: list[str] = []
    excluded = exclude.resolve() if exclude is not None else None

    def add_folder(folder: Path) -> None:
        found = sorted(folder.rglob("*") if recursive else folder.iterdir())
        for p in found:
            if not p.is_file() or (excluded is not None and excluded in p.resolve().parents):
                continue
            kind = _sniff_file(p)
            if kind is None or (kind in DEMUXER) or p.suffix.lower() in VIDEO_SUFFIXES:
                clips.append(p)  # unreadable files get their line too (kind None)
            else:
                skipped.append(SkippedFile(p, DESCRIPTION.get(kind, "not a video file")))

    def add(p: Path, listed: bool) -> None:
        if p.is_dir():
            add_folder(p)
        elif not p.exists():
            missing.append(str(p))
        elif not listed and _sniff_file(p) == "text":
            entries = _list_entries(p)
            if any(e.exists() for e in entries):
                for e in entries:
                    add(e, listed=True)
            else:
                notes.append(
                    f"{p}: a text file, but none of its lines names an existing file or folder, "
                    "so it is scanned as a clip"
                )
                clips.append(p)
        else:
            clips.append(p)

    for p in paths:
        add(_absolute(p), listed=False)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise BadSettingsError(f"no such file or folder: {shown}")
    unique: dict[Path, Path] = {}
    for c in clips:
        unique.setdefault(c.resolve(), c)
    return Discovery(tuple(unique.values()), tuple(skipped), tuple(notes))


def _absolute(p: Path) -> Path:
    return Path(os.path.normpath(Path(p).expanduser().absolute()))


def _sniff_file(p: Path) -> str | None:
    """What the first bytes look like; None when the file cannot be read."""
    try:
        with open(p, "rb") as f:
            return sniff(f.read(HEAD_BYTES))
    except OSError:
        return None


def _list_entries(p: Path) -> list[Path]:
    text = p.read_bytes().decode("utf-8", errors="surrogateescape")
    lines = (line.strip() for line in text.splitlines())
    return [_absolute(Path(line)) for line in lines if line and not line.startswith("#")]
