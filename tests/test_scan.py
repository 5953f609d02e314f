"""``python -m detector scan``: what is scanned, the results log, resuming, and a real kill.

The analyses are real (MTCNN, the face embedder and the small ``mesoinception4_f2f`` member on
tiny generated clips, two frames each), so the lines are the documents ``analyze --json`` prints.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detector import cli
from detector.batch import records as scan_records
from detector.batch.discover import Discovery, discover
from detector.batch.records import ScanOutputError, ScanSettings, parse_log, read_records
from detector.batch.scan import run_scan
from detector.batch.work import EngineOptions
from detector.cli.common import EXIT_USAGE, settings_from
from detector.errors import BadSettingsError
from detector.io import synthetic
from detector.io.files import sha256_file
from detector.pipeline import ExtractionSettings
from detector.settings import PROJECT_ROOT
from detector.verdict.scoring import default_scoring
from detector.verdict.verdict import VERDICT_WORDS

MODEL = "mesoinception4_f2f"
SAMPLING = "first:2"
CLI_SETTINGS = ["--models", MODEL, "--sampling", SAMPLING]


def light_settings(sampling: str = SAMPLING) -> ScanSettings:
    """What ``scan --models mesoinception4_f2f --sampling first:2`` asks for (as the CLI builds it)."""
    args = cli.build_parser().parse_args(["scan", "x", "--out", "y", *CLI_SETTINGS])
    models, extraction, scoring = settings_from(args)
    return ScanSettings(tuple(models), extraction, scoring, "cpu")


def make_clips(folder: Path, n_faces: int = 4) -> Path:
    """``n_faces`` small clips with a face (different backgrounds), one without, and clutter."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_faces):
        synthetic.astronaut_clip(
            folder / f"face{k}.mp4", seconds=2, fps=10, width=320, height=240, seed=k
        )
    synthetic.blank_clip(folder / "blank.mp4", seconds=2, fps=10)
    return folder


@pytest.fixture(scope="module")
def light_analyzer():
    from detector.pipeline import Analyzer

    return Analyzer([MODEL], device="cpu").load()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = make_clips(tmp_path_factory.mktemp("scan") / "clips")
    (root / "notes.txt").write_text("not a clip\n")
    (root / "damaged.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    shutil.copy(root / "face0.mp4", root / "face0_again.mp4")
    return root


@pytest.fixture(scope="module")
def full_scan(clips, light_analyzer, tmp_path_factory) -> Path:
    """An uninterrupted scan of ``clips`` (the reference for the other runs)."""
    out = tmp_path_factory.mktemp("full")
    run_scan(discover([clips]), light_settings(), out, analyzer=light_analyzer, progress=False)
    return out


def lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / scan_records.RESULTS).read_text().splitlines()]


def by_name(records: list[dict]) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in records}


# ---------------------------------------------------------------- what is scanned


def test_folders_give_their_videos_and_files_named_as_videos(tmp_path):
    make_clips(tmp_path / "top" / "deeper", n_faces=1)
    top = tmp_path / "top"
    synthetic.blank_clip(top / "blank.mp4", seconds=1, fps=10).rename(top / "no_suffix")
    (top / "readme.txt").write_text("hello\n")
    (top / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 32)
    (top / "broken.mp4").write_bytes(b"random bytes, not a video")
    flat = discover([top])
    assert sorted(p.name for p in flat.clips) == ["broken.mp4", "no_suffix"]
    assert sorted((s.path.name, s.what) for s in flat.skipped) == [
        ("photo.jpg", "a JPEG image"),
        ("readme.txt", "a text file"),
    ]
    deep = discover([top], recursive=True)
    assert sorted(p.name for p in deep.clips) == [
        "blank.mp4",
        "broken.mp4",
        "face0.mp4",
        "no_suffix",
    ]


def test_a_text_file_given_is_a_list_of_paths(tmp_path, monkeypatch):
    make_clips(tmp_path / "c", n_faces=2)
    monkeypatch.chdir(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text("# clips to check\nc/face1.mp4\n\n  c/face0.mp4  \nc\n")
    found = discover([listing, tmp_path / "c" / "face0.mp4"])
    names = [p.name for p in found.clips]
    assert names == ["face1.mp4", "face0.mp4", "blank.mp4"]  # each clip once, in order given
    assert all(p.is_absolute() for p in found.clips)


def test_a_listed_path_that_is_missing_stops_the_scan_before_it_starts(tmp_path):
    make_clips(tmp_path / "c", n_faces=1)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'c' / 'face0.mp4'}\n{tmp_path / 'gone.mp4'}\n")
    with pytest.raises(BadSettingsError, match=r"gone\.mp4"):
        discover([listing])
    with pytest.raises(BadSettingsError, match="no such file or folder"):
        discover([tmp_path / "nothing_here"])


def test_a_text_file_naming_nothing_is_scanned_as_a_clip(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("Meeting notes\nnothing here is a path\n")
    found = discover([notes])
    assert found.clips == (notes,)
    assert "none of its lines names an existing file" in found.notes[0]


def test_the_output_folder_is_not_scanned(tmp_path):
    make_clips(tmp_path, n_faces=1)
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(tmp_path / "face0.mp4", out / "copy.mp4")
    found = discover([tmp_path], recursive=True, exclude=out)
    assert sorted(p.name for p in found.clips) == ["blank.mp4", "face0.mp4"]


def test_the_fingerprint_follows_the_settings_not_the_device():
    base = light_settings()
    assert base.fingerprint() == light_settings().fingerprint()
    assert ScanSettings(base.models, base.extraction, base.scoring, "cuda").fingerprint() == (
        base.fingerprint()
    )
    other = ScanSettings(base.models, ExtractionSettings(sampling="first:3"), base.scoring)
    assert other.fingerprint() != base.fingerprint()
    models = {m["name"]: m["weights_sha256"] for m in base.record()["models"]}
    assert len(models[MODEL]) == 64


# ---------------------------------------------------------------- the results log


def test_a_torn_last_line_is_left_out_and_a_damaged_middle_line_refused():
    good = b'{"path": "a", "status": "ok"}\n'
    contents = parse_log(io.BytesIO(good * 2 + b'{"path": "b", "sta'), lambda r: r, "log")
    assert len(contents.entries) == 2 and contents.torn_bytes == len(b'{"path": "b", "sta')
    assert contents.end == 2 * len(good)
    zeros = parse_log(io.BytesIO(good + b"\x00" * 10 + b"\n"), lambda r: r, "log")
    assert len(zeros.entries) == 1 and zeros.torn_bytes == 11  # a machine crash's zero-filled tail
    with pytest.raises(ScanOutputError, match="line 2 is not a scan result"):
        parse_log(io.BytesIO(good + b"garbage\n" + good), lambda r: r, "log")
    records, torn = read_records(good + b"{")
    assert records == [{"path": "a", "status": "ok"}] and torn == 1


def test_each_line_is_one_write_then_fsync(tmp_path, monkeypatch):
    calls = []
    real_write, real_fsync = os.write, os.fsync
    monkeypatch.setattr(
        os, "write", lambda fd, data: calls.append(("write", len(data))) or real_write(fd, data)
    )
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(("fsync", 0)) or real_fsync(fd))
    log = scan_records.ResultsLog(tmp_path)
    try:
        line = json.dumps({"path": "a", "status": "ok", "x": "y" * 100_000})
        log.append(line)
        log.append(line)
    finally:
        log.close()
    writes = [c for c in calls if c[0] == "write"]
    assert writes == [("write", len(line) + 1)] * 2
    assert [c[0] for c in calls][-2:] == ["write", "fsync"]
    assert (tmp_path / scan_records.RESULTS).read_text() == (line + "\n") * 2


def test_a_second_scan_cannot_write_to_the_same_folder_at_once(tmp_path):
    first = scan_records.ResultsLog(tmp_path)
    try:
        with pytest.raises(ScanOutputError, match="another scan is writing there now"):
            scan_records.ResultsLog(tmp_path)
    finally:
        first.close()
    scan_records.ResultsLog(tmp_path).close()  # free again once the first one is closed


# ---------------------------------------------------------------- a whole scan


def test_every_clip_gets_one_line_with_its_status(clips, full_scan):
    records = by_name(lines(full_scan))
    assert set(records) == {
        "face0.mp4",
        "face1.mp4",
        "face2.mp4",
        "face3.mp4",
        "face0_again.mp4",
        "blank.mp4",
        "damaged.mp4",
    }  # notes.txt is not a clip
    for k in range(4):
        r = records[f"face{k}.mp4"]
        assert r["status"] == "ok" and 0.0 <= r["verdict"]["p_fake"] <= 1.0
        assert r["sha256"] == sha256_file(clips / f"face{k}.mp4")
        assert r["settings"]["models"] == [MODEL] and r["settings"]["sampling"] == SAMPLING
        assert r["video"]["name"] == f"face{k}.mp4" and len(r["frames"]) == 2
    assert records["blank.mp4"]["status"] == "no_faces" and records["blank.mp4"]["verdict"] is None
    assert records["damaged.mp4"]["status"] == "unreadable"
    assert records["damaged.mp4"]["verdict"] is None and records["damaged.mp4"]["message"]
    again = records["face0_again.mp4"]  # same bytes as face0.mp4: not analysed twice
    assert again["copied_from"] == str(clips / "face0.mp4")
    assert again["verdict"] == records["face0.mp4"]["verdict"]
    assert len({r["settings_fingerprint"] for r in records.values()}) == 1


def test_the_summary_and_the_manifest(clips, full_scan):
    rows = list(csv.DictReader((full_scan / scan_records.SUMMARY).open()))
    assert tuple(rows[0]) == scan_records.SUMMARY_COLUMNS
    by = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == 7
    assert by["blank.mp4"]["score"] == "" and by["blank.mp4"]["people"] == "0"
    assert by["damaged.mp4"]["label"] == "" and by["damaged.mp4"]["people"] == ""
    face = by_name(lines(full_scan))["face1.mp4"]
    assert float(by["face1.mp4"]["score"]) == face["verdict"]["p_fake"]
    assert by["face1.mp4"]["people"] == "1" and float(by["face1.mp4"]["duration_s"]) == 2.0
    assert by["face1.mp4"]["verdict"] == VERDICT_WORDS[face["verdict"]["label"]]
    assert by["damaged.mp4"]["verdict"] == ""
    manifest = json.loads((full_scan / scan_records.MANIFEST).read_text())
    assert (
        manifest["models"][0]["name"] == MODEL
        and len(manifest["models"][0]["weights_sha256"]) == 64
    )
    assert manifest["settings"]["extraction"]["sampling"] == SAMPLING
    run = manifest["runs"][-1]
    assert run["finished"] and run["started"] <= run["ended"]
    assert run["analysed"] == 6 and run["copied"] == 1 and run["already_done"] == 0
    assert run["not_scanned"] == [{"path": str(clips / "notes.txt"), "what": "a text file"}]
    assert "torch" in run["software"] and "tqdm" in run["software"]


def test_existing_results_are_never_overwritten_or_appended_to_without_resume(clips, full_scan):
    before = (full_scan / scan_records.RESULTS).read_bytes()
    code = cli.main(["scan", str(clips), "--out", str(full_scan), *CLI_SETTINGS])
    assert code == EXIT_USAGE
    other = ["--models", MODEL, "--sampling", "first:3", "--resume"]
    assert cli.main(["scan", str(clips), "--out", str(full_scan), *other]) == EXIT_USAGE
    assert (full_scan / scan_records.RESULTS).read_bytes() == before


def test_resume_analyses_nothing_that_is_done(
    clips, full_scan, light_analyzer, monkeypatch, tmp_path
):
    out = tmp_path / "out"
    shutil.copytree(full_scan, out)
    monkeypatch.setattr(light_analyzer, "analyze", lambda *a, **k: pytest.fail("analysed again"))
    result = run_scan(
        discover([clips]),
        light_settings(),
        out,
        resume=True,
        analyzer=light_analyzer,
        progress=False,
    )
    assert result.already_done == 7 and result.analysed == 0 and result.copied == 0
    assert (out / scan_records.RESULTS).read_bytes() == (
        full_scan / scan_records.RESULTS
    ).read_bytes()
    assert len(json.loads((out / scan_records.MANIFEST).read_text())["runs"]) == 2


def test_a_torn_line_is_cut_off_and_its_clip_analysed_again(
    clips, full_scan, light_analyzer, tmp_path
):
    out = tmp_path / "out"
    shutil.copytree(full_scan, out)
    data = (out / scan_records.RESULTS).read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\n") + 1 + 500  # 500 bytes into the last line
    (out / scan_records.RESULTS).write_bytes(data[:cut])
    last = json.loads(data[data.rstrip(b"\n").rfind(b"\n") + 1 :])
    result = run_scan(
        discover([clips]),
        light_settings(),
        out,
        resume=True,
        analyzer=light_analyzer,
        progress=False,
    )
    assert result.already_done == 6 and result.analysed + result.copied == 1
    records = lines(out)
    assert sorted(r["path"] for r in records) == sorted(r["path"] for r in lines(full_scan))
    again = by_name(records)[Path(last["path"]).name]
    assert again["status"] == last["status"] and again["verdict"] == last["verdict"]


def test_an_internal_error_is_a_line_an_exit_code_and_retried_on_resume(
    clips, light_analyzer, monkeypatch, tmp_path
):
    real = light_analyzer.analyze

    def flaky(path, *args, **kwargs):
        if Path(path).name == "face2.mp4":
            raise RuntimeError("simulated failure")
        return real(path, *args, **kwargs)

    one = Discovery((clips / "face1.mp4", clips / "face2.mp4"))
    monkeypatch.setattr(light_analyzer, "analyze", flaky)
    result = run_scan(one, light_settings(), tmp_path, analyzer=light_analyzer, progress=False)
    assert result.internal_errors == 1 and result.by_status["ok"] == 1
    failed = by_name(lines(tmp_path))["face2.mp4"]
    assert failed["status"] == "internal_error" and failed["verdict"] is None
    assert "RuntimeError: simulated failure" in failed["message"]
    assert "Traceback" in failed["traceback"]
    monkeypatch.setattr(light_analyzer, "analyze", real)
    again = run_scan(
        one, light_settings(), tmp_path, resume=True, analyzer=light_analyzer, progress=False
    )
    assert again.already_done == 1 and again.analysed == 1 and not again.internal_errors
    rows = list(csv.DictReader((tmp_path / scan_records.SUMMARY).open()))
    assert [r["status"] for r in rows] == ["ok", "ok"]  # the newest line of each clip


def test_local_threads_give_the_same_lines(clips, full_scan, light_analyzer, tmp_path):
    found = discover([clips])
    run_scan(
        found,
        light_settings(),
        tmp_path,
        engine=EngineOptions(workers=2),
        analyzer=light_analyzer,
        progress=False,
    )
    ref = by_name(lines(full_scan))
    for name, r in by_name(lines(tmp_path)).items():
        assert r["status"] == ref[name]["status"]
        assert r["verdict"] == ref[name]["verdict"], name


def test_engine_options_are_checked():
    with pytest.raises(BadSettingsError, match="need --engine ray"):
        EngineOptions("local", address="auto")
    with pytest.raises(BadSettingsError, match="at least 1"):
        EngineOptions("ray", workers=0)


# ---------------------------------------------------------------- killed for real


def _scan_command(clips: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "detector",
        "scan",
        str(clips),
        "--out",
        str(out),
        *CLI_SETTINGS,
        *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *([path] if path else [])])
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def test_a_scan_killed_midway_resumes_without_losing_or_redoing_a_clip(tmp_path, full_scan):
    clips = make_clips(tmp_path / "clips", n_faces=7)
    out = tmp_path / "out"
    n = len(discover([clips]).clips)
    proc = subprocess.Popen(
        _scan_command(clips, out), cwd=PROJECT_ROOT, env=_env(), stderr=subprocess.DEVNULL
    )
    results = out / scan_records.RESULTS
    deadline = time.monotonic() + 300
    try:
        while not (results.exists() and results.read_bytes().count(b"\n") >= 1):
            assert proc.poll() is None, "the scan ended before a line was written"
            assert time.monotonic() < deadline, "no line within 300 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = results.read_bytes()
    done = killed.count(b"\n")
    assert 1 <= done < n, f"{done} of {n} clips were done when the scan was killed"

    resumed = subprocess.run(
        _scan_command(clips, out, "--resume"),
        cwd=PROJECT_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = results.read_bytes()
    complete = killed[: killed.rfind(b"\n") + 1]
    assert final.startswith(complete)  # the lines written before the kill are untouched
    records = [json.loads(x) for x in final.splitlines()]
    assert sorted(Path(r["path"]).name for r in records) == sorted(p.name for p in clips.iterdir())
    assert len({r["sha256"] for r in records}) == n  # each clip exactly once: none redone
    run = json.loads((out / scan_records.MANIFEST).read_text())["runs"][-1]
    assert run["already_done"] == done and run["analysed"] == n - done and run["finished"]

    # The same results as the uninterrupted scan: face0 and blank are the same clips there.
    reference = by_name(lines(full_scan))
    for name in ("face0.mp4", "face1.mp4", "blank.mp4"):
        got = by_name(records)[name]
        assert got["sha256"] == reference[name]["sha256"]
        assert got["status"] == reference[name]["status"]
        assert got["verdict"] == reference[name]["verdict"], name
    summary = list(csv.DictReader((out / scan_records.SUMMARY).open()))
    assert len(summary) == n


def test_the_command_line_refuses_an_empty_scan_in_words(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("hello\n")
    assert cli.main(["scan", str(tmp_path), "--out", str(tmp_path / "out")]) == EXIT_USAGE
    assert "no clip to scan (1 file(s) found are not videos)" in capsys.readouterr().err
    assert cli.main(["scan", str(tmp_path / "nope.mp4"), "--out", str(tmp_path)]) == EXIT_USAGE


def test_default_scoring_is_what_a_plain_scan_uses():
    args = cli.build_parser().parse_args(["scan", "x", "--out", "y"])
    models, _, scoring = settings_from(args)
    assert models == list(default_scoring().weights) and scoring == default_scoring()
