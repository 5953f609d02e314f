"""Every page through ``streamlit.testing.v1.AppTest``, with a seeded analysis in session state."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from detector.pipeline import ExtractionSettings
from detector.reporting.record import CaseInfo
from detector.settings import PROJECT_ROOT
from detector.types import Analysis
from detector.verdict.scoring import default_scoring
from pages import state, ui

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
        at.session_state[state.ANALYSES] = {key: analysis}
        at.session_state[state.CURRENT] = key
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


def test_models_page_gives_each_face_models_cross_dataset_figure_or_says_it_has_none():
    from detector.models import get_spec, list_models, model_card

    at = _app()
    at.run()
    at.switch_page("pages/models.py")
    at.run()
    assert not at.exception, at.exception
    shown = _texts(at)
    measured = [n for n in list_models() if model_card(n).metrics.get("crossval")]
    assert {"clip_vit_b16", "xception", "lstm_efficientnet_lite0"} <= set(measured)
    labels = [m.label for m in at.metric]
    every = [
        x
        for x in labels
        if x.startswith("cross-dataset AUC") and x.endswith("all validation fakes")
    ]
    assert len(every) == len(measured)
    # the two-stream members need each face's next raw frame: measured on the clips alone
    flow = [n for n in list_models() if get_spec(n).inputs == "crop_and_flow"]
    assert flow and set(flow) <= set(measured)
    assert labels.count("cross-dataset AUC (part of the set): all validation fakes") == len(flow)
    assert shown.count("left out: the FF++ validation videos") == len(flow)
    unmeasured = [n for n in list_models() if model_card(n).available and n not in measured]
    assert shown.count("Not measured on the cross-dataset validation") == len(unmeasured)
    # a member whose recipe was retrained on other draws says how far its figure moved
    spread = model_card("clip_vit_b16").metrics["retraining_spread"]["video_auc_all"]
    assert (
        f"cross-dataset AUC (all validation fakes) was {min(spread['retrained']):.2f}–"
        f"{max(spread['retrained']):.2f}, against {spread['shipped']:.2f}" in shown
    )


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
    before = at.session_state[state.SCORING][_key(analysis)]
    models = analysis.scores.models
    monkeypatch.setattr(ui, "get_analyzer", lambda *_: pytest.fail("inference ran"))
    at.slider(key=ui.weight_key(models[0])).set_value(1.0).run()
    at.slider(key=ui.weight_key(models[1])).set_value(0.0).run()
    other = "mean" if before.aggregation == "median" else "median"
    at.selectbox(key=state.AGGREGATION).set_value(other).run()
    after = at.session_state[state.SCORING][_key(analysis)]
    assert after.aggregation == other != before.aggregation
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
    assert state.STATUS_TITLES[status] in _texts(at)
    assert not at.metric  # no score anywhere
    for page in PAGES[1:4]:
        at.switch_page(page)
        at.run()
        assert not at.exception
        assert not at.metric


def test_upload_of_a_non_video_is_refused_in_words():
    at = _app()
    at.run()
    at.radio(key=state.SOURCE).set_value("Upload a file").run()
    uploader = at.get("file_uploader")[0]
    uploader.upload("photo.mp4", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "video/mp4").run()
    # AppTest drops sidebar widgets after the first rerun of a multipage app: re-seed them.
    at.session_state[state.MODELS] = ["meso4_df"]
    at.button(key="run_upload").click().run()
    assert "this is a PNG image, not a video file" in _texts(at)
    assert not at.exception


@pytest.fixture(scope="module")
def crowd(analyzer, videos) -> Analysis:
    """Three people."""
    return analyzer.analyze(videos["three_faces"], ExtractionSettings(sampling="1fps"))


def _warnings(at: AppTest) -> str:
    return "\n".join(w.value for w in at.warning)


@pytest.mark.parametrize(
    "point",
    [
        {"customdata": [3, 25]},  # a list, as documented
        {"customdata": {"0": 3, "1": 25}},  # a typed-array row serialised by the browser
        {"customdata": 3},  # one-column custom data
        {"customdata": "3"},
        {"curve_number": "ensemble", "point_index": 1},  # no custom data: found in the figure
    ],
)
def test_a_timeline_click_finds_its_face_whatever_shape_it_arrives_in(analysis, point):
    from pages import charts

    scoring = default_scoring()
    fig = charts.timeline_figure(analysis, scoring)
    ensemble = next(i for i, t in enumerate(fig.data) if t.name.startswith("Ensemble"))
    if point.get("curve_number") == "ensemble":
        point = {"curve_number": ensemble, "point_index": 1}
        expected = int(fig.data[ensemble].customdata[1][0])
    else:
        expected = 3
    selection = {"points": [point], "point_indices": [0], "box": [], "lasso": []}
    assert charts.face_id_from_selection(selection, fig, analysis.scores.face_ids) == expected


def test_a_click_left_over_from_another_clip_is_ignored(analysis):
    from pages import charts

    fig = charts.timeline_figure(analysis, default_scoring())
    foreign = {"points": [{"customdata": [10_000, 1]}]}
    assert charts.face_id_from_selection(foreign, fig, analysis.scores.face_ids) is None
    assert charts.face_id_from_selection(None, fig, analysis.scores.face_ids) is None
    assert charts.face_id_from_selection({"points": [{}]}, fig, analysis.scores.face_ids) is None


def test_the_opened_face_shows_its_frame_and_the_video_there(analysis, videos):
    at = _app(analysis)
    face_id = int(analysis.scores.face_ids[2])
    at.session_state[state.VIDEOS] = {_key(analysis): videos["face"].read_bytes()}
    at.session_state[state.SELECTED_FACE] = {_key(analysis): face_id}
    at.run()
    at.switch_page("pages/timeline.py")
    at.run()
    assert not at.exception
    t = int(analysis.face(face_id).timestamp_s)
    assert f"The player starts at {t} s" in _texts(at)


def test_a_newly_chosen_file_clears_the_shown_result(analysis):
    at = _app(analysis)
    at.run()
    assert at.metric
    at.get("file_uploader")[0].upload("next.mp4", b"\x00" * 64, "video/mp4").run()
    assert not at.metric and at.session_state[state.CURRENT] is None
    assert _key(analysis) in at.session_state[state.ANALYSES]  # still in the session's list


def test_excluding_a_person_recomputes_without_inference_and_is_marked(crowd, monkeypatch):
    monkeypatch.setattr(ui, "get_analyzer", lambda *_: pytest.fail("inference ran"))
    at = _app(crowd)
    at.run()
    decider = crowd.verdict.deciding_track_id
    at.selectbox(key=ui.exclusion_key(decider)).set_value("not a face").run()
    assert not at.exception
    scoring = at.session_state[state.SCORING][_key(crowd)]
    assert scoring.exclusions == {decider: "not a face"}
    assert f"person {decider + 1} excluded (not a face)" in _warnings(at)
    assert f"Person {decider + 1} decides" not in _texts(at)
    at.button(key="reset_card").click().run()
    assert "Custom settings" not in _warnings(at)
    assert at.session_state[ui.exclusion_key(decider)] == state.INCLUDED
    assert f"Person {decider + 1} decides" in _texts(at)


def test_lab_changes_are_marked_and_reset_to_defaults(analysis):
    at = _app(analysis)
    at.run()
    at.switch_page("pages/ensemble.py")
    at.run()
    assert "Custom settings" not in _warnings(at)
    other = "mean" if default_scoring().aggregation == "median" else "median"
    at.selectbox(key=state.AGGREGATION).set_value(other).run()
    assert f"frames combined by {other} over frames" in _warnings(at)
    at.button(key="reset_lab").click().run()
    assert "Custom settings" not in _warnings(at)
    assert at.session_state[state.AGGREGATION] == default_scoring().aggregation


def test_no_server_path_can_be_typed_in_the_browser(analysis):
    at = _app(analysis)
    at.run()
    for page in PAGES:
        at.switch_page(page)
        at.run()
        labels = [t.label for t in at.text_input]
        assert all("folder" not in label.lower() for label in labels), labels


def test_gradcam_runs_on_all_of_a_persons_frames(analysis):
    at = _app(analysis)
    at.run()
    at.switch_page("pages/explain.py")
    at.run()
    at.selectbox(key=state.CAM_MODEL).set_value("xception").run()
    at.button(key="run_gradcam").click().run()
    assert not at.exception
    cams = at.session_state[state.GRADCAMS]
    assert len(cams) == len(analysis.tracks[0].face_ids)
    assert f"xception on person 1: {len(cams)} frame(s)" in _texts(at)


def test_the_session_keeps_its_last_clips(analysis, monkeypatch):
    monkeypatch.setattr(ui, "analyse_upload", lambda *_: analysis)
    at = _app()
    old = {(f"sha{k}", "1fps", ("m",)): analysis for k in range(state.MAX_KEPT)}
    at.session_state[state.ANALYSES] = dict(old)
    at.session_state[state.VIDEOS] = {k: b"v" for k in list(old)[-state.MAX_VIDEOS_KEPT :]}
    at.run()
    at.radio(key=state.SOURCE).set_value("Example clip").run()
    at.session_state[state.MODELS] = ["meso4_df"]  # see test_upload_of_a_non_video...
    at.button(key="run_example").click().run()
    assert not at.exception
    kept = at.session_state[state.ANALYSES]
    assert len(kept) == state.MAX_KEPT and ("sha0", "1fps", ("m",)) not in kept
    assert len(at.session_state[state.VIDEOS]) <= state.MAX_VIDEOS_KEPT
    new = at.session_state[state.CURRENT]
    assert new == list(kept)[-1] and new in at.session_state[state.VIDEOS]
    # Switching between them (the sidebar's list) is operated by the browser test: AppTest
    # drops sidebar widgets after the first rerun of a multipage app.


def _prepare(at: AppTest) -> AppTest:
    """Press the Report page's form button (the case fields reach the session only with it)."""
    [button] = [b for b in at.button if b.label == "Prepare the report"]
    return button.click().run()


def _case(at: AppTest) -> CaseInfo:
    return at.session_state[state.CASE] if state.CASE in at.session_state else CaseInfo()


def test_case_fields_outlive_a_page_change(analysis):
    at = _app(analysis)
    at.run()
    at.switch_page("pages/report.py")
    at.run()
    at.text_input(key=state.CASE_ID_INPUT).input("CASE-9")
    at.text_area(key=state.NOTES_INPUT).input("first line\nsecond line")
    _prepare(at)
    at.switch_page("pages/analyze.py")
    at.run()
    at.switch_page("pages/report.py")
    at.run()
    assert at.text_input(key=state.CASE_ID_INPUT).value == "CASE-9"
    assert _case(at).case_id == "CASE-9"
    said = [m.value for m in at.markdown]
    assert any("carry case id CASE\\-9, no analyst, 2 lines of notes" in m for m in said)


def test_report_files_are_made_on_click_after_the_case_is_prepared(analysis):
    """The case fields are a form: what was typed reaches the files only with "Prepare the
    report" (fields that commit on blur lost the last one typed when the analyst went straight
    to a download). The exports are callables Streamlit runs on click, not files stored by
    every run: a run rendering the PDF (about a second) overlapped the next one and the file
    the page offered had been removed (a 404 in the browser)."""
    at = _app(analysis)
    at.run()
    at.switch_page("pages/report.py")
    at.run()
    assert not at.exception and not at.get("download_button")
    assert any("Prepare the report" in i.value for i in at.info)
    at.text_input(key=state.ANALYST_INPUT).input("A. Analyst")  # (AppTest cannot type
    _prepare(at)  # without submitting a form: the browser test checks that)
    assert not at.exception and _case(at).analyst == "A. Analyst"
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert set(buttons) == {"Download PDF report", "Download JSON", "Download CSV"}
    for proto in buttons.values():
        assert proto.deferred_file_id and not proto.url and proto.ignore_rerun


def test_the_page_icon_is_a_bundled_file():
    icon = PROJECT_ROOT / "assets" / "icon.png"
    assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "page_icon=PROJECT_ROOT" in (PROJECT_ROOT / "app.py").read_text()
