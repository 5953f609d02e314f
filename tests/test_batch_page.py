"""The Batch page through ``streamlit.testing.v1.AppTest``: several uploads analysed in the session,
a finished scan's results.jsonl read from an upload, the table, opening a clip, the summary."""

from __future__ import annotations

import csv
import io
import tempfile

import pytest
from streamlit.testing.v1 import AppTest

from detector.batch.records import clip_record, ranked, summary_row, to_line
from detector.pipeline import ExtractionSettings
from detector.settings import PROJECT_ROOT
from detector.types import Analysis
from pages import batch_ui, ui

PAGE = "pages/batch.py"
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 100


@pytest.fixture(autouse=True)
def no_preload(monkeypatch):
    monkeypatch.setattr(ui, "start_preload", lambda: None)


def _app() -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page(PAGE)
    at.run()
    return at


def _uploader(at: AppTest, label: str):
    return next(u for u in at.get("file_uploader") if u.label == label)


@pytest.fixture(scope="module")
def results_file(analyzer, videos) -> bytes:
    """A results.jsonl as a scan writes it: a verdict, no face, an unreadable file, a torn tail."""
    ok = analyzer.analyze(videos["face"], ExtractionSettings())
    blank = analyzer.analyze(videos["blank"], ExtractionSettings())
    bad = Analysis(
        status="unreadable",
        message="![tracker](http://example.invalid/x.png) is not a video",
        video=None,
        sampling="1fps",
    )
    lines = [
        to_line(clip_record(a, f"/data/{name}", "0" * 64, "f" * 16, 1.0))
        for a, name in ((blank, "blank.mp4"), (bad, "bad.mp4"), (ok, "face.mp4"))
    ]
    return ("\n".join(lines) + "\n").encode() + b'{"path": "/data/cut.mp4", "sta'


def test_the_page_is_in_the_navigation_and_renders_empty():
    at = _app()
    assert not at.exception
    assert not at.dataframe
    assert "Scan several clips" in [t.value for t in at.title]


def test_a_results_file_is_listed_by_score_and_opened_as_its_document(results_file):
    at = _app()
    at.radio(key=batch_ui.SOURCE).set_value(batch_ui.FROM_RESULTS).run()
    _uploader(at, "results.jsonl of a finished scan").upload(
        "results.jsonl", results_file, "application/octet-stream"
    ).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["clip"]) == ["/data/face.mp4", "/data/blank.mp4", "/data/bad.mp4"]
    assert list(table["status"]) == ["ok", "no_faces", "unreadable"]
    assert table["result"][1] == ui.STATUS_TITLES["no_faces"]
    assert table["score"][0] is not None and table["score"][1:].isna().all()
    assert any("incomplete" in w.value for w in at.warning)  # the torn last line
    assert at.get("download_button")

    choice = at.selectbox(key=batch_ui.CHOICE)
    choice.set_value(2).run()  # face.mp4: a verdict
    assert "Manipulation score" in [m.label for m in at.metric]
    choice.set_value(1).run()  # bad.mp4: words, no score
    assert not at.metric
    assert ui.STATUS_TITLES["unreadable"] in [e.value for e in at.error]
    texts = [t.value for t in at.text]
    assert any("http://example.invalid" in t for t in texts)  # shown as text ...
    assert not any("example.invalid" in m.value for m in at.markdown)  # ... never as Markdown


def test_the_summary_is_the_scan_summary_sorted_by_score(results_file):
    from detector.batch.records import read_records

    records, torn = read_records(results_file)
    assert torn and len(records) == 3
    batch = batch_ui.Batch("results.jsonl", tuple(batch_ui.Entry(r) for r in records))
    rows = list(csv.DictReader(io.StringIO(batch_ui.summary(batch))))
    assert [r["path"] for r in rows] == [r["path"] for r in ranked(map(summary_row, records))]
    assert rows[0]["path"] == "/data/face.mp4" and rows[0]["score"] != ""
    assert rows[1]["score"] == "" and rows[1]["status"] == "no_faces"


def test_uploaded_clips_are_analysed_here_and_one_opens_on_the_analyze_page(
    videos, tmp_path, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where uploads are staged
    at = _app()
    _uploader(at, "Video files").set_value(
        [
            ("face.mp4", videos["face"].read_bytes(), "video/mp4"),
            ("photo.mp4", PNG, "video/mp4"),
        ]
    ).run()
    # AppTest drops sidebar widgets after the first rerun of a multipage app: re-seed them.
    at.session_state[ui.MODELS] = ["meso4_df"]
    at.button(key="run_batch").click().run()
    assert not at.exception
    assert not list(tmp_path.iterdir())  # every staged upload was deleted
    table = at.dataframe[0].value
    assert list(table["clip"]) == ["face.mp4", "photo.mp4"]
    assert list(table["status"]) == ["ok", "unreadable"]
    batch = at.session_state[batch_ui.BATCH]
    assert all(e.analysis is not None for e in batch.entries)

    face = next(i for i, e in enumerate(batch.entries) if e.record["path"] == "face.mp4")
    at.selectbox(key=batch_ui.CHOICE).set_value(face).run()
    at.button(key="open_batch_clip").click().run()
    assert not at.exception
    key = at.session_state[ui.CURRENT]
    assert key == (batch.entries[face].record["sha256"], "1fps", ("meso4_df",))
    assert at.session_state[ui.ANALYSES][key] is batch.entries[face].analysis
    assert key in at.session_state[ui.VIDEOS]  # the player has the clip
    assert "Manipulation score" in [m.label for m in at.metric]  # the Analyze page's card


def test_more_clips_than_the_page_keeps_are_refused_in_words(monkeypatch):
    monkeypatch.setattr(ui, "analyse_upload", lambda *a: pytest.fail("analysed"))
    at = _app()
    files = [(f"c{k}.mp4", PNG, "video/mp4") for k in range(batch_ui.MAX_UPLOADS + 1)]
    _uploader(at, "Video files").set_value(files).run()
    at.session_state[ui.MODELS] = ["meso4_df"]
    at.button(key="run_batch").click().run()
    assert f"this page analyses at most {batch_ui.MAX_UPLOADS}" in at.error[0].value
    assert batch_ui.BATCH not in at.session_state
