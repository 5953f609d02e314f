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
this process writes the files."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from detector.batch.work import EngineOptions, Work
from detector.io.files import sha256_file
from detector.reporting.record import json_default

if TYPE_CHECKING:
    from detector.pipeline import Analyzer
from detector.batch.discover import Discovery
from detector.batch.records import (
    INTERNAL_ERROR,
    MANIFEST,
    RETRY_ON_RESUME,
    SUMMARY,
    ResultsLog,
    ScanOutputError,
    ScanSettings,
    _now,
    analyse_clip,
    summary_csv,
    summary_row,
    to_line,
    unreadable_record,
    write_atomic,
)

"""Outcomes that may differ on another try: ``--resume`` analyses these clips again and appends a
newer line (``summary.csv`` shows the newest line of each clip)."""


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

    analyzer = analyzer or Analyzer(settings.models, device=settings.device, spare_children=True)
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
    write_atomic(path, json.dumps(manifest, indent=2, default=json_default))
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
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2, default=json_default))


def _software(engine: EngineOptions) -> dict:
    from importlib import metadata

    from detector.reporting.record import software_versions

    versions = software_versions()
    for pkg in ("tqdm", *(("ray", "pyarrow") if engine.engine == "ray" else ())):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return versions
