"""A scan's records: one line of results.jsonl per clip (the analyze --json document plus path, sha256, settings fingerprint), written whole and synced, read back (a torn last line is cut off), and the summary rows."""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import os
import platform
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.errors import BadSettingsError, WeightsMissingError
from detector.pipeline import ExtractionSettings
from detector.reporting.record import json_default
from detector.types import Analysis, ScoringSettings
from detector.verdict.verdict import VERDICT_WORDS

if TYPE_CHECKING:
    from detector.pipeline import Analyzer


RESULTS = "results.jsonl"


SUMMARY = "summary.csv"


MANIFEST = "manifest.json"


LOCK = ".scan.lock"


INTERNAL_ERROR = "internal_error"


RETRY_ON_RESUME = frozenset({INTERNAL_ERROR, "timeout"})


SUMMARY_COLUMNS = (
    "path",
    "status",
    "verdict",
    "label",
    "score",
    "people",
    "duration_s",
    "wall_time_s",
    "message",
    "sha256",
)


class ScanOutputError(BadSettingsError):
    """The output folder cannot take this scan: it holds another scan's results, results made
    with other settings, a damaged line, or another scan is writing to it right now."""


@dataclass(frozen=True)
class ScanSettings:
    """What every clip of a scan is analysed with; ``fingerprint`` identifies it for resuming.

    ``device`` is not part of the fingerprint: it changes where the work runs, not what it means.
    """

    models: tuple[str, ...]
    extraction: ExtractionSettings
    scoring: ScoringSettings
    device: str = "auto"

    def record(self) -> dict:
        """The settings as JSON: models with their weights' sha256, extraction and scoring."""
        from detector.models import model_card, read_manifest

        try:
            identity = read_manifest("face_identity").get("sha256")
        except WeightsMissingError:  # loading the analyzer refuses it, loudly
            identity = None
        extraction = asdict(replace(self.extraction, trust_anchors=None))
        anchors = self.extraction.trust_anchors
        extraction["trust_anchors_sha256"] = anchors.sha256 if anchors is not None else None
        return {
            "models": [{"name": m, "weights_sha256": model_card(m).sha256} for m in self.models],
            "face_identity_sha256": identity,
            "extraction": extraction,
            "scoring": asdict(self.scoring),
        }

    def fingerprint(self) -> str:
        canonical = json.dumps(self.record(), sort_keys=True, default=json_default)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def analyse_clip(
    analyzer: Analyzer, path: Path, sha256: str, settings: ScanSettings, fingerprint: str
) -> str:
    """Analyse one clip and return its results line (JSON, without the newline).

    Input problems come back from the analyzer as statuses. Any other exception is this clip's
    ``internal_error`` line (with the traceback), so one clip cannot end a scan of thousands; the
    command exits with 4 and ``--resume`` tries such clips again.
    """
    t0 = time.perf_counter()
    extra = {}
    try:
        analysis = analyzer.analyze(path, settings.extraction, settings.scoring)
    except Exception as exc:  # recorded as this clip's status, printed, and retried on resume
        analysis = Analysis(
            status=INTERNAL_ERROR,
            message=f"{path.name}: internal error ({type(exc).__name__}: {exc})",
            video=None,
            sampling=settings.extraction.sampling,
        )
        extra["traceback"] = traceback.format_exc()
    record = clip_record(analysis, str(path), sha256, fingerprint, time.perf_counter() - t0)
    return to_line(record | extra)


def clip_record(
    analysis: Analysis, path: str, sha256: str | None, fingerprint: str | None, wall_time_s: float
) -> dict:
    """The ``analyze --json`` document of one clip, with where it came from and what it cost
    (``fingerprint`` None: not part of a scan, e.g. the app's Batch page)."""
    from detector.reporting.record import analysis_to_dict

    return {
        "path": path,
        "sha256": sha256,
        "settings_fingerprint": fingerprint,
        "wall_time_s": round(wall_time_s, 3),
        "worker": platform.node(),
        **analysis_to_dict(analysis),
    }


def unreadable_record(path: Path, error: OSError, settings: ScanSettings, fingerprint: str) -> dict:
    """The line of a clip that could not even be read to hash it (vanished, no permission)."""
    why = error.strerror or str(error)
    analysis = Analysis(
        status="unreadable",
        message=f"{path.name}: the file could not be read ({why})",
        video=None,
        sampling=settings.extraction.sampling,
    )
    return clip_record(analysis, str(path), None, fingerprint, 0.0)


def to_line(record: dict) -> str:
    """One line of JSON: ASCII only, so no character in it can end the line early."""
    return json.dumps(record, default=json_default)


@dataclass(frozen=True)
class LogContents:
    """The complete result lines of a log, where they end, and what follows them.

    ``entries`` holds ``(offset, length, keep(record))`` per line; ``torn_bytes`` counts the
    bytes after the last complete line: a line cut short by a kill, never a result.
    """

    entries: list[tuple[int, int, Any]]
    end: int
    torn_bytes: int


def parse_log(lines: Iterable[bytes], keep: Callable[[dict], Any], name: str) -> LogContents:
    """Read result lines (each ending in a newline). A torn last line is left out; so is a last
    line that is not a result (a crash of the machine can leave zeros there).

    Raises:
        ScanOutputError: a line before the last one is not a result (the file was edited or
            belongs to something else): nothing is guessed.
    """
    entries: list[tuple[int, int, Any]] = []
    offset = 0
    bad: tuple[int, int] | None = None  # (line number, length) of an unreadable complete line
    for number, raw in enumerate(lines, 1):
        if bad is not None:
            raise ScanOutputError(
                f"{name}: line {bad[0]} is not a scan result (a damaged or edited file); "
                "fix or move it, or choose another --out"
            )
        if not raw.endswith(b"\n"):
            return LogContents(entries, offset, len(raw))
        record = _as_record(raw)
        if record is None:
            bad = (number, len(raw))
            continue
        entries.append((offset, len(raw), keep(record)))
        offset += len(raw)
    return LogContents(entries, offset, bad[1] if bad else 0)


def _as_record(raw: bytes) -> dict | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    ok = isinstance(record, dict) and isinstance(record.get("status"), str) and "path" in record
    return record if ok else None


def read_records(data: bytes, name: str = RESULTS) -> tuple[list[dict], int]:
    """Every result in a ``results.jsonl`` (the app reads uploaded ones), and the bytes of a torn
    last line that was left out (0 when there was none)."""
    contents = parse_log(io.BytesIO(data), lambda r: r, name)
    return [r for _, _, r in contents.entries], contents.torn_bytes


def summary_row(record: dict) -> dict:
    """A clip in the summary: status, verdict in words, label and score (empty without a
    verdict), people seen."""
    verdict = record.get("verdict") or {}
    video = record.get("video") or {}
    status = record.get("status", "")
    people = len(record.get("tracks") or []) if status in ("ok", "no_faces") else ""
    return {
        "path": record.get("path", ""),
        "status": status,
        # the analyst's words; "label" is the same verdict as a key for programs
        "verdict": VERDICT_WORDS.get(verdict.get("label", ""), ""),
        "label": verdict.get("label", ""),
        "score": verdict.get("p_fake", ""),
        "people": people,
        "duration_s": video.get("duration_s", ""),
        "wall_time_s": record.get("wall_time_s", ""),
        "message": record.get("message", ""),
        "sha256": record.get("sha256") or "",
    }


def latest_rows(records: Iterable[dict]) -> list[dict]:
    """One summary row per path: its newest line (a retried clip has more than one)."""
    rows: dict[str, dict] = {}
    for r in records:
        row = summary_row(r)
        rows.pop(row["path"], None)
        rows[row["path"]] = row
    return list(rows.values())


def ranked(rows: Iterable[dict]) -> list[dict]:
    """Summary rows, highest score first; clips without a verdict after them, by status."""

    def key(row: dict) -> tuple:
        scored = row["score"] != ""
        return (not scored, -float(row["score"]) if scored else 0.0, row["status"], row["path"])

    return sorted(rows, key=key)


def summary_csv(rows: Iterable[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class ResultsLog:
    """``results.jsonl``, opened for appending by one scan at a time (an exclusive lock)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / RESULTS
        self._lock_fd = os.open(out_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ScanOutputError(f"{out_dir}: another scan is writing there now") from None
        self._fd: int | None = None

    def read(self, keep: Callable[[dict], Any]) -> LogContents:
        if not self.path.exists():
            return LogContents([], 0, 0)
        with open(self.path, "rb") as f:
            return parse_log(f, keep, str(self.path))

    def truncate(self, size: int) -> None:
        """Cut a torn last line off before anything is appended after it."""
        with open(self.path, "r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())

    def line_at(self, offset: int, length: int) -> dict:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return json.loads(f.read(length))

    def append(self, line: str) -> int:
        """Append one line in one ``write`` (repeated only if the kernel writes less), then
        ``fsync``; returns the offset the line starts at."""
        if self._fd is None:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if created:
                _fsync_dir(self.path.parent)
        data = (line + "\n").encode()
        offset = os.lseek(self._fd, 0, os.SEEK_END)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        return offset

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        os.close(self._lock_fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace a file whole: a reader sees the old or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
