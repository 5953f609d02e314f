"""The hostile-input corpus (``tests/hostile.py``) through the library, the CLI and the app.

Every case must end in the status the corpus expects, with a message in words; analysable cases
must come out *right* (faces found once rotation is applied, the corrupt frame reported as a gap,
the hour-long clip sampled without decoding it all), never with a sentinel score.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from detector.errors import DetectorError, VideoReadError
from detector.io import synthetic
from detector.io.decode import DecodeStats, iter_frames
from detector.io.isolated.decoder import IsolatedDecoder
from detector.io.probe import parse_sampling, probe
from detector.io.sniff import require_media, sniff
from detector.io.uploads import TEMP_PREFIX, display_name
from detector.pipeline import ExtractionSettings
from detector.reporting.record import analysis_to_dict, json_default
from detector.settings import PROJECT_ROOT
from detector.types import SampledFrame
from tests.hostile import CASES, Case, encode, mjpeg_avi

CLI_CASES = [n for n, c in CASES.items() if c.cli]
STATUSES = {
    "ok",
    "no_faces",
    "unreadable",
    "no_video_stream",
    "unsupported_codec",
    "too_short",
    "too_large",
    "timeout",
}
APP_CASES = ["png_renamed", "zero_bytes", "truncated_mp4", "y4m_bomb", "path_like_name"]


def _assert_outcome(case: Case, status: str, message: str) -> None:
    assert status == case.status, message
    assert message.strip(), "an outcome without words"
    for words in case.says:
        assert words.lower() in message.lower(), message


@pytest.mark.parametrize("name", list(CASES))
def test_library_outcome(name, hostile, analyzer):
    case = CASES[name]
    analysis = analyzer.analyze(hostile(name), name=case.display_name)
    _assert_outcome(case, analysis.status, analysis.message)
    if analysis.ok:
        assert analysis.verdict is not None and analysis.scores is not None
    else:
        assert analysis.verdict is None and analysis.scores is None
    if case.check is not None:
        case.check(analysis)
    # The CLI's --json document (what `python -m detector analyze FILE --json` prints).
    doc = json.loads(json.dumps(analysis_to_dict(analysis), default=json_default))
    assert (doc["status"], doc["message"]) == (analysis.status, analysis.message)
    assert (doc["verdict"] is None) == (not analysis.ok)
    assert len(doc["gaps"]) == len(analysis.gaps) and doc["notes"] == list(analysis.notes)


def test_an_hour_long_video_is_sampled_without_decoding_it_all(hostile):
    path = hostile("very_long")
    info = probe(path)
    stats = DecodeStats()
    frames = [
        f
        for f in iter_frames(path, info, parse_sampling("1fps"), stats=stats)
        if isinstance(f, SampledFrame)
    ]
    assert info.frame_count == 14_400 and len(frames) == 600
    assert frames[-1].timestamp_s > 3500  # spread over the whole hour, not its first minutes
    assert stats.keyframe_interval_s == pytest.approx(2.0)
    assert stats.seeks > 500
    assert stats.frames_decoded < info.frame_count / 10
    assert stats.packets < info.frame_count / 5


def test_the_isolated_decoder_reports_the_same_bounded_work(hostile):
    path = hostile("very_long")
    with IsolatedDecoder(path, "hour.mp4", parse_sampling("even:50")) as decoder:
        items = list(decoder)
    assert len(items) == 50
    assert decoder.stats.frames_decoded < decoder.info.frame_count / 20


def _cli(video: Path, *options: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detector", "analyze", str(video), "--json", *options],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="module")
def cli_runs(request, hostile):
    """The CLI on every selected case, run two at a time (each run loads torch on its own)."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_cli_outcome"
    ]
    paths = {name: hostile(name) for name in selected}  # generated here, in one thread
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: pool.submit(_cli, path) for name, path in paths.items()}


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_outcome(name, cli_runs):
    case = CASES[name]
    run = cli_runs[name].result()
    assert "Traceback" not in run.stderr, run.stderr
    doc = json.loads(run.stdout)
    _assert_outcome(case, doc["status"], doc["message"])
    if case.status == "ok":
        assert run.returncode == 0, run.stderr
        assert doc["verdict"] is not None
    else:
        assert run.returncode == 3, run.stderr
        assert doc["verdict"] is None
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{case.status}: "), run.stderr


def test_the_cli_refuses_bad_settings_with_exit_2(hostile):
    run = _cli(hostile("zero_bytes"), "--sampling", "fast")
    assert run.returncode == 2
    assert json.loads(run.stdout)["status"] == "bad_settings"
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


# ---------------------------------------------------------------- the app


def test_the_app_explains_bad_uploads_and_stays_usable(hostile):
    from streamlit.testing.v1 import AppTest

    from pages import state

    uploads_before = set(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    at.run()
    at.radio(key="source").set_value("Upload a file").run()
    for name in APP_CASES:
        case = CASES[name]
        upload_name = case.display_name or hostile(name).name
        at.get("file_uploader")[0].upload(upload_name, hostile(name).read_bytes(), "video/mp4")
        at.run()
        # AppTest drops sidebar widgets after the first rerun of a multipage app: re-seed them.
        at.session_state[state.MODELS] = ["meso4_df"]
        at.button(key="run_upload").click().run()
        assert not at.exception, (name, at.exception)
        shown = "\n".join([e.value for e in at.error] + [m.value for m in at.markdown])
        if case.status == "ok":
            assert not at.error, (name, [e.value for e in at.error])
            assert "Manipulation score" in [m.label for m in at.metric]
            shown_name = display_name(upload_name)  # "passwd.mp4", never the path
            assert shown_name in [s.value for s in at.subheader]
        else:
            assert state.STATUS_TITLES[case.status] in shown, (name, shown)
            assert all(w.lower() in shown.lower() for w in case.says), (name, shown)
            assert not at.metric  # words, never a number
    at.radio(key="source").set_value("Example clip").run()
    at.session_state[state.MODELS] = ["meso4_df"]
    at.button(key="run_example").click().run()
    assert not at.exception, at.exception
    assert not at.error
    assert "Manipulation score" in [m.label for m in at.metric]
    assert set(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*")) == uploads_before


# ---------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 20, "mp4"),
        (b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 20, "mov"),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20, "heif"),
        (b"\x1a\x45\xdf\xa3\x01\x00", "webm_mkv"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
        (b"YUV4MPEG2 W16 H16 F25:1\n", "y4m"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "mp3"),
        (b"\xff\xfb\x90\x64\x00", "mp3"),
        (b"\xff\xf3\x84\x64\x00", "mp3"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"\xff\xf1\x50\x80\x02", "aac"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"PK\x03\x04rest", "zip"),
        (b"#EXTM3U\n#EXTINF:1,\nhttp://x/a.ts\n", "playlist"),
        (b"hello world\n", "text"),
        (b"", "empty"),
        (bytes(range(256)), "unknown"),
    ],
)
def test_sniff_judges_content_not_names(head, kind):
    assert sniff(head) == kind


def test_only_known_containers_pass(hostile):
    assert require_media(hostile("unicode_name").read_bytes()[:4096]) == "mp4"
    for name in ("png_renamed", "zip_as_mp4", "text_file", "hls_playlist", "random_bytes"):
        with pytest.raises(VideoReadError, match="not a"):
            require_media(hostile(name).read_bytes()[:4096], name)


# ---------------------------------------------------------------- fuzzing

MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1, exclude_max=True), st.binary(min_size=1)),
)
FUZZ = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzz_bases(tmp_path_factory) -> dict[str, bytes]:
    """Small clips with a findable face in the containers people upload (H.264/MP4, MJPEG/AVI,
    VP8/WebM, H.264/MPEG-TS)."""
    d = tmp_path_factory.mktemp("fuzz")
    frames = list(synthetic.face_frames(160, 120, 10, face_size=96))
    paths = [
        synthetic.write_video(d / "a.mp4", frames, fps=10),
        mjpeg_avi(d / "b.avi", frames),
        encode(
            d / "c.webm", frames, codec="libvpx", options={"deadline": "realtime"}, size=(160, 120)
        ),
        encode(d / "d.ts", frames, options={"preset": "ultrafast"}, size=(160, 120)),
    ]
    return {p.suffix: p.read_bytes() for p in paths}


def _mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for kind, where, value in mutations:
        at = int(where * len(out))
        if kind == "flip":
            out[at] = value
        elif kind == "truncate":
            del out[max(1, at) :]
        else:
            out[at:at] = value
    return bytes(out)


@contextmanager
def _no_hang(seconds: float):
    """Fail (rather than hang the suite) if the block runs longer than ``seconds``."""

    def expire(*_):
        raise TimeoutError(f"hung for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@given(
    base=st.sampled_from([".mp4", ".avi", ".webm", ".ts"]),
    mutations=st.lists(MUTATION, min_size=1, max_size=4),
)
@settings(FUZZ, max_examples=60)
def test_fuzzed_videos_read_or_fail_with_a_status(fuzz_bases, tmp_path_factory, base, mutations):
    path = tmp_path_factory.mktemp("read") / f"clip{base}"
    path.write_bytes(_mutate(fuzz_bases[base], mutations))
    with _no_hang(30):
        try:
            info = probe(path)
            for spec in ("1fps", "all"):
                for item in iter_frames(path, info, parse_sampling(spec)):
                    if isinstance(item, SampledFrame):
                        assert item.image.dtype == np.uint8 and item.image.shape[2] == 3
            event("read")
        except DetectorError as exc:
            event(exc.status)
            assert exc.status in STATUSES and str(exc)


@given(
    base=st.sampled_from([".mp4", ".avi", ".webm", ".ts"]),
    mutations=st.lists(MUTATION, min_size=1, max_size=4),
)
@settings(FUZZ, max_examples=30)
def test_fuzzed_videos_analyse_or_fail_with_a_status(
    fuzz_bases, tmp_path_factory, analyzer, base, mutations
):
    path = tmp_path_factory.mktemp("analyse") / f"clip{base}"
    path.write_bytes(_mutate(fuzz_bases[base], mutations))
    with _no_hang(60):
        analysis = analyzer.analyze(path, ExtractionSettings(isolate_decoding=False))
    event(analysis.status)
    assert analysis.status in STATUSES and analysis.message
    if analysis.ok:
        assert 0.0 <= analysis.verdict.p_fake <= 1.0
    else:
        assert analysis.verdict is None


def test_readme_shows_the_current_bad_input_table():
    from detector.settings import PROJECT_ROOT

    table = (PROJECT_ROOT / "docs" / "bad_input.md").read_text(encoding="utf-8").strip()
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert table in readme, "README's bad-input section differs from docs/bad_input.md"
