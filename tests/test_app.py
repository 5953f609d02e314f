"""Every page through ``streamlit.testing.v1.AppTest``, with a seeded analysis in session state."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from detector.paths import PROJECT_ROOT
from detector.pipeline import ExtractionSettings
from detector.types import Analysis
from pages import ui

PAGES = [
    "pages/analyze.py",
    "pages/timeline.py",
    "pages/explain.py",
    "pages/ensemble.py",
    "pages/report.py",
    "pages/models.py",
]


@pytest.fixture(scope="module")
def analysis(analyzer, videos) -> Analysis:
    return analyzer.analyze(videos["face"], ExtractionSettings(sampling="1fps"))


@pytest.fixture(autouse=True)
def no_preload(monkeypatch):
    """The app starts loading the default ensemble in the background; these tests need not."""
    monkeypatch.setattr(ui, "start_preload", lambda: None)


def _key(analysis: Analysis) -> tuple:
    models = tuple(m.name for m in analysis.models) or ("meso4_df",)
    return (analysis.video.sha256 if analysis.video else "x", "1fps", models)


def _app(analysis: Analysis | None = None) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    if analysis is not None:
        key = _key(analysis)
        at.session_state[ui.ANALYSES] = {key: analysis}
        at.session_state[ui.CURRENT] = key
    return at


def _texts(at: AppTest) -> str:
    parts = (
        [m.value for m in at.markdown] + [e.value for e in at.error] + [i.value for i in at.info]
    )
    parts += [c.value for c in at.caption] + [str(m.value) for m in at.metric]
    return "\n".join(parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_an_analysis(page):
    at = _app()
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_an_analysis(page, analysis):
    at = _app(analysis)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception


def test_analyze_page_shows_the_verdict_card(analysis):
    at = _app(analysis)
    at.run()
    text = _texts(at)
    assert "Manipulation score" in "\n".join(m.label for m in at.metric)
    assert analysis.verdict.explanation[:40] in text


def test_ensemble_lab_reweights_without_inference(analysis, monkeypatch):
    at = _app(analysis)
    at.run()
    at.switch_page("pages/ensemble.py")
    at.run()
    before = at.session_state[ui.SCORING][_key(analysis)]
    models = analysis.scores.models
    monkeypatch.setattr(ui, "get_analyzer", lambda *_: pytest.fail("inference ran"))
    at.slider(key=ui.weight_key(models[0])).set_value(1.0).run()
    at.slider(key=ui.weight_key(models[1])).set_value(0.0).run()
    at.selectbox(key=ui.AGGREGATION).set_value("median").run()
    after = at.session_state[ui.SCORING][_key(analysis)]
    assert after.aggregation == "median" and before.aggregation == "mean"
    assert after.weights[models[1]] == 0.0
    assert not at.exception


def test_ensemble_lab_shows_the_paper_tables():
    at = _app()
    at.run()
    at.switch_page("pages/ensemble.py")
    at.run()
    text = _texts(at)
    assert "Table 3. Video1 output analysis (class 0)" in text
    assert "Table 4. Video2 output analysis (class 1)" in text
    frames = [df.value for df in at.dataframe]
    medians = {frame["Median"].get("Ensemble 0.5/0.5") for frame in frames if "Median" in frame}
    assert "0.3241" in medians and "0.7385" in medians


@pytest.mark.parametrize("status", ["no_faces", "unreadable", "too_short"])
def test_states_without_a_verdict_are_words_not_numbers(status):
    failed = Analysis(
        status=status, message=f"clip.mp4: {status} happened", video=None, sampling="1fps"
    )
    at = _app(failed)
    at.run()
    assert ui.STATUS_TITLES[status] in _texts(at)
    assert not at.metric  # no score anywhere
    for page in PAGES[1:4]:
        at.switch_page(page)
        at.run()
        assert not at.exception
        assert not at.metric


def test_upload_of_a_non_video_is_refused_in_words():
    at = _app()
    at.run()
    at.radio(key=ui.SOURCE).set_value("Upload a file").run()
    uploader = at.get("file_uploader")[0]
    uploader.upload("photo.mp4", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "video/mp4").run()
    # AppTest drops sidebar widgets after the first rerun of a multipage app: re-seed them.
    at.session_state[ui.MODELS] = ["meso4_df"]
    at.button(key="run_upload").click().run()
    assert "this is a PNG image, not a video file" in _texts(at)
    assert not at.exception
