"""Scan many clips with one set of loaded models: ``python -m detector scan PATH ... --out DIR``.

Every clip gets one line in ``DIR/results.jsonl``: the document ``analyze --json`` prints, plus
``path``, ``sha256``, ``settings_fingerprint``, ``wall_time_s`` and ``worker``; a clip without a
verdict gets its status and message, never a score. A line is appended whole (one ``write``
call, then ``fsync``), so a scan killed at any moment loses at most the clip it was analysing;
``--resume`` cuts off a torn last line and skips every clip already recorded under the same
settings, matched by content (sha256) rather than by name. ``summary.csv`` (one row per clip) is
rewritten from the log at the end of every run, and ``manifest.json`` records the settings, the
models with their weight hashes, software versions and each run's start and end.

What is scanned: files given by name are always scanned (a non-video gets its ``unreadable``
line, as ``analyze`` would say); a text file given by name is a list of paths, one per line, when
at least one of its lines names an existing file or folder. In folders, a file is scanned when its
bytes are a video container, or when its name says it is one (a damaged ``.mp4`` gets its
``unreadable`` line); anything else there (notes, images, a scan's own output) is not a clip: it
is listed in the manifest under ``not_scanned``, with what it is.

Engines: ``local`` (this process: one analyzer, shared by ``--workers`` threads) and ``ray``
(:mod:`detector.batch.ray_engine`). Both produce each line with :func:`analyse_clip`, and only
this process writes the files.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import hashlib
import io
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.errors import BadSettingsError, WeightsMissingError
from detector.pipeline import ExtractionSettings
from detector.sniff import DESCRIPTION, is_video_container, sniff
from detector.types import Analysis, ScoringSettings

if TYPE_CHECKING:
    from detector.pipeline import Analyzer

RESULTS = "results.jsonl"
SUMMARY = "summary.csv"
MANIFEST = "manifest.json"
LOCK = ".scan.lock"

INTERNAL_ERROR = "internal_error"
RETRY_ON_RESUME = frozenset({INTERNAL_ERROR, "timeout"})
"""Outcomes that may differ on another try: ``--resume`` analyses these clips again and appends a
newer line (``summary.csv`` shows the newest line of each clip)."""

ENGINES = ("local", "ray")
SUMMARY_COLUMNS = (
    "path",
    "status",
    "label",
    "score",
    "people",
    "duration_s",
    "wall_time_s",
    "message",
    "sha256",
)
# Names that say "video" when the bytes do not: such a file in a folder is a damaged clip, and
# gets its line; a file with another name and no video bytes is not a clip.
_SUFFIXES = ".mp4 .m4v .mov .qt .mkv .webm .avi .ts .m2ts .mts .mpg .mpeg .vob .flv .ogv .ogg .wmv"
VIDEO_SUFFIXES = frozenset(f"{_SUFFIXES} .asf .y4m .3gp .3g2".split())
HEAD_BYTES = 4096


class ScanOutputError(BadSettingsError):
    """The output folder cannot take this scan: it holds another scan's results, results made
    with other settings, a damaged line, or another scan is writing to it right now."""


# ---------------------------------------------------------------- what to scan


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
            if kind is None or is_video_container(kind) or p.suffix.lower() in VIDEO_SUFFIXES:
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


# ---------------------------------------------------------------- settings


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
        canonical = json.dumps(self.record(), sort_keys=True, default=_json_default)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- one clip -> one line


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
    from detector.report import analysis_to_dict

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
    return json.dumps(record, default=_json_default)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ---------------------------------------------------------------- reading results.jsonl


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


# ---------------------------------------------------------------- summary


def summary_row(record: dict) -> dict:
    """A clip in the summary: status, label and score (empty without a verdict), people seen."""
    verdict = record.get("verdict") or {}
    video = record.get("video") or {}
    status = record.get("status", "")
    people = len(record.get("tracks") or []) if status in ("ok", "no_faces") else ""
    return {
        "path": record.get("path", ""),
        "status": status,
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


# ---------------------------------------------------------------- the output folder


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


# ---------------------------------------------------------------- the scan


@dataclass(frozen=True)
class EngineOptions:
    """Where the clips are analysed.

    Attributes:
        engine: "local" (this process) or "ray".
        workers: local: threads sharing one analyzer; ray: actors in the pool, each with its own.
        address: a running Ray cluster to join ("auto" or host:port); None starts a local one.
        cpus_per_worker / gpus_per_worker: what each Ray actor reserves (torch uses as many
            threads as CPUs reserved); None: this machine's cores shared by the workers for a
            local Ray instance, 1 on a cluster.
    """

    engine: str = "local"
    workers: int = 1
    address: str | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise BadSettingsError(
                f"unknown engine {self.engine!r}; use one of {', '.join(ENGINES)}"
            )
        if self.workers < 1:
            raise BadSettingsError("--workers must be at least 1")
        if self.engine == "local" and (
            self.address or self.cpus_per_worker is not None or self.gpus_per_worker
        ):
            raise BadSettingsError(
                "--address, --cpus-per-worker and --gpus-per-worker need --engine ray"
            )
        if (self.cpus_per_worker is not None and self.cpus_per_worker <= 0) or (
            self.gpus_per_worker < 0
        ):
            raise BadSettingsError(
                "--cpus-per-worker must be above 0, --gpus-per-worker at least 0"
            )


@dataclass(frozen=True)
class Work:
    """A clip to analyse (the first path of its content); the engine returns ``index`` with it."""

    index: int
    path: Path
    sha256: str


@dataclass
class ScanResult:
    """What a run did. ``by_status`` counts the lines written in this run."""

    out_dir: Path
    clips: int
    already_done: int = 0
    analysed: int = 0
    copied: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def internal_errors(self) -> int:
        return self.by_status.get(INTERNAL_ERROR, 0)


@dataclass(frozen=True)
class _Entry:
    path: str
    sha256: str | None
    fingerprint: str | None
    status: str
    row: dict


def _entry(record: dict) -> _Entry:
    return _Entry(
        record["path"],
        record.get("sha256"),
        record.get("settings_fingerprint"),
        record["status"],
        summary_row(record),
    )


def run_scan(
    discovery: Discovery,
    settings: ScanSettings,
    out_dir: Path,
    *,
    resume: bool = False,
    engine: EngineOptions | None = None,
    analyzer: Analyzer | None = None,
    progress: bool = True,
) -> ScanResult:
    """Analyse every clip not yet in ``out_dir/results.jsonl`` and rewrite the summary.

    ``analyzer`` (local engine only) reuses loaded models; otherwise they are loaded once, before
    the first clip, and a weights problem stops the scan before any line is written.

    Raises:
        ScanOutputError: results are there and ``resume`` is False; or they were made with other
            settings; or a line before the last is damaged; or another scan holds the folder.
    """
    engine = engine or EngineOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = settings.fingerprint()
    log = ResultsLog(out_dir)
    try:
        return _run(
            discovery, settings, fingerprint, out_dir, log, resume, engine, analyzer, progress
        )
    finally:
        log.close()


def _run(
    discovery: Discovery,
    settings: ScanSettings,
    fingerprint: str,
    out_dir: Path,
    log: ResultsLog,
    resume: bool,
    engine: EngineOptions,
    analyzer: Analyzer | None,
    progress: bool,
) -> ScanResult:
    from tqdm import tqdm

    contents = log.read(_entry)
    if contents.entries and not resume:
        raise ScanOutputError(
            f"{log.path} already holds {len(contents.entries)} result(s): add --resume to "
            "continue that scan, or choose another --out"
        )
    others = {e.fingerprint for _, _, e in contents.entries} - {fingerprint}
    if others:
        raise ScanOutputError(
            f"{log.path} was written with other settings (fingerprint {', '.join(sorted(map(str, others)))}; "
            f"these are {fingerprint}): choose another --out to scan with these settings"
        )
    notes = list(discovery.notes)
    if contents.torn_bytes:
        log.truncate(contents.end)
        notes.append(
            f"dropped an incomplete last line ({contents.torn_bytes} bytes) left by an "
            "interrupted scan; its clip is analysed again"
        )
    done_paths: set[tuple[str, str | None]] = set()
    by_content: dict[str, tuple[int, int]] = {}  # sha256 -> (offset, length) of its first line
    rows: dict[str, dict] = {}
    for offset, length, e in contents.entries:
        rows.pop(e.path, None)
        rows[e.path] = e.row
        if e.status in RETRY_ON_RESUME:
            continue
        done_paths.add((e.path, e.sha256))
        if e.sha256 is not None:
            by_content.setdefault(e.sha256, (offset, length))

    # Which clips are done, which are copies of done ones, which need analysing.
    already: list[Path] = []
    unreadable: list[tuple[Path, OSError]] = []
    copies: list[tuple[Path, str]] = []
    groups: dict[str, list[Path]] = {}
    work: list[Work] = []
    hashing = tqdm(
        discovery.clips,
        desc="hashing",
        unit="clip",
        file=sys.stderr,
        leave=False,
        disable=not progress,
    )
    for path in hashing:
        try:
            sha = sha256_file(path)
        except OSError as exc:  # vanished or not permitted: a line saying so (once)
            if (str(path), None) in done_paths:
                already.append(path)
            else:
                unreadable.append((path, exc))
            continue
        if (str(path), sha) in done_paths:
            already.append(path)
        elif sha in by_content:
            copies.append((path, sha))
        elif sha in groups:
            groups[sha].append(path)
        else:
            groups[sha] = [path]
            work.append(Work(len(work), path, sha))
    hashing.close()

    manifest = _start_manifest(out_dir, settings, fingerprint, resume, engine, discovery)
    result = ScanResult(out_dir, clips=len(discovery.clips), already_done=len(already))
    bar = tqdm(
        total=len(discovery.clips),
        initial=len(already),
        unit="clip",
        desc="scan",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    for note in notes:
        bar.write(f"note: {note}")

    def write(line: str, record: dict | None = None) -> None:
        record = record if record is not None else json.loads(line)
        offset = log.append(line)
        path, status = record["path"], record["status"]
        if status not in RETRY_ON_RESUME and record.get("sha256"):
            by_content.setdefault(record["sha256"], (offset, len(line) + 1))
        rows.pop(path, None)
        rows[path] = summary_row(record)
        result.by_status[status] = result.by_status.get(status, 0) + 1
        if status == INTERNAL_ERROR:
            bar.write(f"{record['message']}\n{record.get('traceback', '')}".rstrip())
        counts = " ".join(f"{k}={v}" for k, v in sorted(result.by_status.items()))
        bar.set_postfix_str(counts, refresh=False)
        bar.update(1)

    def copy_of(path: Path, sha: str) -> None:
        offset, length = by_content[sha]
        record = log.line_at(offset, length)
        record = record | {"path": str(path), "copied_from": record["path"], "wall_time_s": 0.0}
        write(to_line(record), record)
        result.copied += 1

    finished = False
    try:
        for path, exc in unreadable:
            record = unreadable_record(path, exc, settings, fingerprint)
            write(to_line(record), record)
        for path, sha in copies:
            copy_of(path, sha)
        if work:
            for index, line in _engine_lines(work, settings, fingerprint, engine, analyzer):
                item = work[index]
                write(line)
                result.analysed += 1
                for other in groups[item.sha256][1:]:
                    copy_of(other, item.sha256)
        finished = True
    finally:
        bar.close()
        write_atomic(out_dir / SUMMARY, summary_csv(rows.values()))
        _end_manifest(out_dir, manifest, result, finished)
    return result


def _engine_lines(
    work: Sequence[Work],
    settings: ScanSettings,
    fingerprint: str,
    engine: EngineOptions,
    analyzer: Analyzer | None,
) -> Iterator[tuple[int, str]]:
    if engine.engine == "ray":
        from detector.batch.ray_engine import ray_lines

        return ray_lines(work, settings, fingerprint, engine)
    return local_lines(work, settings, fingerprint, engine.workers, analyzer)


def local_lines(
    work: Sequence[Work],
    settings: ScanSettings,
    fingerprint: str,
    workers: int = 1,
    analyzer: Analyzer | None = None,
) -> Iterator[tuple[int, str]]:
    """``(index, line)`` per clip, analysed in this process by one analyzer (loaded first, so a
    weights problem stops the scan before any line), with ``workers`` threads sharing it."""
    from detector.pipeline import Analyzer

    analyzer = analyzer or Analyzer(settings.models, device=settings.device)
    analyzer.load()

    def one(w: Work) -> tuple[int, str]:
        return w.index, analyse_clip(analyzer, w.path, w.sha256, settings, fingerprint)

    if workers <= 1:
        for w in work:
            yield one(w)
        return
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    from itertools import islice

    queue = iter(work)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan") as pool:
        running = {pool.submit(one, w) for w in islice(queue, workers)}
        try:
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
                    if (w := next(queue, None)) is not None:
                        running.add(pool.submit(one, w))
        finally:
            for future in running:
                future.cancel()


# ---------------------------------------------------------------- the manifest


def _start_manifest(
    out_dir: Path,
    settings: ScanSettings,
    fingerprint: str,
    resume: bool,
    engine: EngineOptions,
    discovery: Discovery,
) -> dict:
    path = out_dir / MANIFEST
    manifest: dict = {}
    if resume and path.exists():
        try:
            manifest = json.loads(path.read_text("utf-8"))
        except ValueError:  # written atomically, so only an edit can break it: start it again
            manifest = {}
        if manifest.get("settings_fingerprint") != fingerprint:
            manifest = {}
    record = settings.record()
    manifest = {
        "tool": "python -m detector scan",
        "settings_fingerprint": fingerprint,
        "settings": record,
        "models": record["models"],
        "runs": manifest.get("runs", []),
    }
    manifest["runs"].append(
        {
            "started": _now(),
            "ended": None,
            "finished": False,
            "command": sys.argv,
            "host": platform.node(),
            "engine": asdict(engine),
            "device": settings.device,
            "resume": resume,
            "clips": len(discovery.clips),
            "not_scanned": [{"path": str(s.path), "what": s.what} for s in discovery.skipped],
            "notes": list(discovery.notes),
            "software": _software(engine),
        }
    )
    write_atomic(path, json.dumps(manifest, indent=2, default=_json_default))
    return manifest


def _end_manifest(out_dir: Path, manifest: dict, result: ScanResult, finished: bool) -> None:
    run = manifest["runs"][-1]
    run.update(
        ended=_now(),
        finished=finished,
        already_done=result.already_done,
        analysed=result.analysed,
        copied=result.copied,
        lines_by_status=dict(sorted(result.by_status.items())),
    )
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2, default=_json_default))


def _software(engine: EngineOptions) -> dict:
    from importlib import metadata

    from detector.report import software_versions

    versions = software_versions()
    for pkg in ("tqdm", *(("ray", "pyarrow") if engine.engine == "ray" else ())):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return versions


# ---------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The scan's own options (the analysis options are added by the CLI, as for ``analyze``)."""
    p.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="video files, folders, or text files listing one path per line",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for results.jsonl and the rest")
    p.add_argument("--recursive", action="store_true", help="also scan the folders' sub-folders")
    p.add_argument("--resume", action="store_true", help="continue the scan already in --out")
    p.add_argument("--engine", choices=ENGINES, default="local", help="local (default) or ray")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local: threads sharing one set of models; ray: actors, each with its own",
    )
    p.add_argument(
        "--address", default=None, help="ray: a running cluster to join (e.g. auto, host:6379)"
    )
    p.add_argument(
        "--cpus-per-worker",
        type=float,
        default=None,
        help="ray: CPUs each actor reserves (its torch threads); default: this machine's cores "
        "shared by the workers on a local instance, 1 on a cluster",
    )
    p.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="ray: GPUs each actor reserves"
    )


def cmd_scan(
    args: argparse.Namespace,
    models: Sequence[str] | None,
    extraction: ExtractionSettings,
    scoring: ScoringSettings,
) -> int:
    """Run ``scan`` with the settings the CLI parsed. Exit 0 when every clip has its line (4 when
    some of them are internal errors)."""
    engine = EngineOptions(
        args.engine, args.workers, args.address, args.cpus_per_worker, args.gpus_per_worker
    )
    settings = ScanSettings(tuple(models or scoring.weights), extraction, scoring, args.device)
    discovery = discover(args.paths, recursive=args.recursive, exclude=args.out)
    if not discovery.clips:
        raise BadSettingsError(
            "no clip to scan"
            + (
                f" ({len(discovery.skipped)} file(s) found are not videos)"
                if discovery.skipped
                else ""
            )
        )
    result = run_scan(discovery, settings, args.out, resume=args.resume, engine=engine)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_status.items())) or "nothing new"
    print(
        f"{result.clips} clip(s): {result.already_done} already done, {result.analysed} analysed, "
        f"{result.copied} same content as another; lines written: {counts}; "
        f"results in {Path(args.out) / RESULTS}",
        file=sys.stderr,
    )
    if discovery.skipped:
        print(
            f"{len(discovery.skipped)} file(s) in the folders are not videos and were not scanned "
            f"(listed in {Path(args.out) / MANIFEST})",
            file=sys.stderr,
        )
    return 4 if result.internal_errors else 0
