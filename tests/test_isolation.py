"""Isolation and safe loading: the decoder child, temp files, concurrent analyses, weights, pickle.

A hung decoder becomes "timeout", an out-of-memory decoder "too_large"; no child process or upload
file outlives an analysis; two analyses at once do not mix; weights load only from safetensors
whose sha256 matches the manifest; nothing user-supplied is ever unpickled.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from detector import pipeline
from detector.errors import DecodeTimeoutError, VideoReadError, WeightsIntegrityError
from detector.io.isolated.decoder import DecodeLimits, IsolatedDecoder
from detector.io.probe import parse_sampling
from detector.io.uploads import TEMP_PREFIX, display_name, staged_upload
from detector.models import create_model
from detector.models.weights import load_state_dict
from detector.pipeline import ExtractionSettings
from detector.settings import PROJECT_ROOT, WEIGHTS_DIR


def _children() -> set[int]:
    """Live child processes of this process (Linux: /proc/<pid>/task/*/children)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        pids.update(int(p) for p in task.read_text().split())
    return {p for p in pids if Path(f"/proc/{p}").exists()}


def _python(code: str) -> str:
    """What ``python -c code`` prints, run from the project's root."""
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return run.stdout


def _uploads_left() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*")}


@pytest.fixture(scope="module")
def clip(hostile) -> Path:
    return hostile("path_like_name")


@pytest.fixture(scope="module")
def big_clip(hostile) -> Path:
    return hostile("very_high_resolution")


pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")


# ---------------------------------------------------------------- the decoder child


class _HangingDecoder(IsolatedDecoder):
    """A real decoder whose child freezes (SIGSTOP) as soon as it has sent the video's info."""

    def __enter__(self):
        super().__enter__()
        os.kill(self.pid, signal.SIGSTOP)
        return self


class _KilledDecoder(IsolatedDecoder):
    """A real decoder whose child is killed from outside, as the kernel's OOM killer would."""

    def __enter__(self):
        super().__enter__()
        os.kill(self.pid, signal.SIGKILL)
        return self


def test_a_hung_decoder_becomes_a_timeout(analyzer, clip, monkeypatch):
    monkeypatch.setattr(pipeline, "IsolatedDecoder", _HangingDecoder)
    limits = DecodeLimits(stall_s=1.0)
    analysis = analyzer.analyze(clip, ExtractionSettings(limits=limits))
    assert analysis.status == "timeout"
    assert "stalled for 1 s" in analysis.message and analysis.verdict is None
    assert not _children()


def test_the_total_budget_stops_a_slow_decode(clip):
    limits = DecodeLimits(total_s=0.05)
    with (
        pytest.raises(DecodeTimeoutError, match=r"longer than the 0\.05 s allowed"),
        IsolatedDecoder(clip, "clip.mp4", parse_sampling("1fps"), limits=limits),
    ):
        pass
    assert not _children()


def test_a_decoder_killed_for_memory_becomes_too_large(analyzer, clip, monkeypatch):
    monkeypatch.setattr(pipeline, "IsolatedDecoder", _KilledDecoder)
    analysis = analyzer.analyze(clip)
    assert analysis.status == "too_large" and "memory" in analysis.message
    assert not _children()


def test_a_memory_cap_too_small_for_the_frames_is_a_status_not_a_crash(analyzer, big_clip):
    analysis = analyzer.analyze(big_clip, ExtractionSettings(limits=DecodeLimits(memory_mb=400)))
    assert analysis.status == "too_large"
    assert "7680x4320" in analysis.message and "400 MB of decoder memory" in analysis.message
    assert not _children()
    # The same analyzer, with room to decode, still works.
    assert analyzer.analyze(big_clip).status == "ok"


def test_the_decoder_child_loads_no_torch(clip):
    with IsolatedDecoder(clip, "clip.mp4", parse_sampling("1fps")) as decoder:
        maps = Path(f"/proc/{decoder.pid}/maps").read_text()
        list(decoder)
    assert "/av/" in maps  # it is the decoder we are looking at
    for heavy in ("/torch/", "libtorch", "/scipy/", "/torchvision/"):  # native libraries mapped
        assert heavy not in maps, heavy


def test_the_decoder_module_imports_only_light_libraries():
    code = (
        "import json, sys, time; t = time.perf_counter(); import detector.io.isolated.child; "
        "print(json.dumps([time.perf_counter() - t, sorted({m.split('.')[0] for m in sys.modules})]))"
    )
    seconds, modules = json.loads(_python(code))
    assert {"av", "numpy"} <= set(modules)
    assert not {"torch", "torchvision", "scipy", "streamlit", "facenet_pytorch"} & set(modules)
    assert seconds < 3.0  # about 0.2 s on a quiet machine; torch alone takes several


# ---------------------------------------------------------------- spare children


@pytest.fixture()
def spare_analyzer(analyzer):
    """The session's loaded parts in an analyzer that keeps spare children (as the app's)."""
    from detector.io.isolated import spares
    from detector.pipeline import Analyzer

    yield Analyzer(
        analyzer.model_names,
        detector=analyzer.detector,
        embedder=analyzer.embedder,
        ensemble=analyzer.ensemble,
        spare_children=True,
    )
    spares.discard_all()
    assert not _children()


def test_a_spare_decoder_serves_the_next_file_under_that_files_limits(
    spare_analyzer, clip, big_clip
):
    """After an analysis, one decoder and one metadata reader wait; the next decode is served by
    the waiting decoder (the same process), which still applies the job's memory cap; nothing
    else is left running."""
    from detector.io.isolated import spares

    assert spare_analyzer.analyze(clip).ok
    waiting = spares.pids()
    assert len(waiting) == 2 and _children() == waiting
    with IsolatedDecoder(clip, "clip.mp4", parse_sampling("1fps")) as decoder:
        assert decoder.pid in waiting
        assert len(list(decoder)) > 0
    capped = spare_analyzer.analyze(
        big_clip, ExtractionSettings(limits=DecodeLimits(memory_mb=400))
    )
    assert capped.status == "too_large" and "400 MB of decoder memory" in capped.message
    assert _children() == spares.pids() and len(spares.pids()) == 2
    spares.discard_all()
    assert not _children()


def test_a_spare_that_cannot_start_leaves_the_analysis_as_it_was(
    spare_analyzer, clip, monkeypatch, caplog
):
    from detector.io.isolated import spares

    def refuse(*args, **kwargs):
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(spares, "prepare", refuse)
    with caplog.at_level("WARNING", logger="detector.pipeline"):
        analysis = spare_analyzer.analyze(clip)
    assert analysis.ok and not spares.pids()
    assert "could not be started: Resource temporarily unavailable" in caplog.text


def test_a_spare_started_under_another_environment_is_replaced(clip, monkeypatch):
    from detector.io.isolated import spares
    from detector.io.isolated.decoder import prepare_spare

    prepare_spare()
    (stale,) = spares.pids()
    monkeypatch.setenv("DEEPFAKE_SPARE_TEST", "changed")
    with IsolatedDecoder(clip, "clip.mp4", parse_sampling("first:1")) as decoder:
        assert decoder.pid != stale
        list(decoder)
    assert not Path(f"/proc/{stale}").exists() and not _children()


def test_a_spare_ends_with_the_process_that_started_it():
    """A spare whose parent dies reads the end of its stdin instead of a job and exits."""
    code = (
        "import os; from detector.io.isolated import spares; "
        "from detector.io.isolated.decoder import prepare_spare; prepare_spare(); "
        "print(*spares.pids(), flush=True); os._exit(0)"
    )
    pid = int(_python(code).split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the orphaned spare {pid} is still running")


# ---------------------------------------------------------------- uploads and temp files


def test_uploads_leave_nothing_behind(analyzer, clip):
    before, children = _uploads_left(), _children()
    with staged_upload(clip.read_bytes(), "clip.mp4") as staged:
        assert staged.name == "upload.mp4" and staged.parent.name.startswith(TEMP_PREFIX)
        assert oct(staged.stat().st_mode & 0o777) == "0o600"
        assert analyzer.analyze(staged).ok
    broken = clip.read_bytes()[:2000]  # an mp4 header and little else: fails in the decoder
    with staged_upload(broken, "broken.mp4") as staged:
        assert analyzer.analyze(staged).status == "unreadable"
    with pytest.raises(RuntimeError), staged_upload(clip.read_bytes(), "clip.mp4"):
        raise RuntimeError("the analysis blew up")
    with pytest.raises(VideoReadError, match="PNG"), staged_upload(b"\x89PNG\r\n\x1a\n", "x.mp4"):
        pass
    assert _uploads_left() == before
    assert _children() == children


def test_upload_names_are_labels_never_paths():
    assert display_name("../../etc/passwd.mp4") == "passwd.mp4"
    assert display_name("C:\\Users\\me\\clip.mp4") == "clip.mp4"
    assert display_name("evil\u202egnp.mp4\n") == "evil?gnp.mp4"
    assert display_name("") == "upload"
    assert display_name("видео 🎬 (1).mp4") == "видео 🎬 (1).mp4"


def test_streamlit_caps_upload_size():
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text("utf-8"))
    assert 0 < config["server"]["maxUploadSize"] <= 1024
    assert config["server"]["enableXsrfProtection"] is True
    assert config["client"]["showErrorDetails"] is False


# ---------------------------------------------------------------- concurrency


def test_two_analyses_at_once_do_not_mix(analyzer, clip, hostile):
    other = hostile("crowd")
    solo = {p: analyzer.analyze(p) for p in (clip, other)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = dict(zip((clip, other), pool.map(analyzer.analyze, (clip, other)), strict=True))
    for p, alone in solo.items():
        both = together[p]
        assert both.ok and alone.ok
        assert both.video.sha256 == alone.video.sha256
        assert len(both.faces) == len(alone.faces)
        np.testing.assert_allclose(both.scores.p_fake, alone.scores.p_fake, atol=1e-6)
        assert both.verdict.p_fake == pytest.approx(alone.verdict.p_fake, abs=1e-6)
    assert together[clip].video.sha256 != together[other].video.sha256
    assert not _children()


def test_two_uploads_at_once_get_separate_private_files(clip):
    seen: list[Path] = []
    barrier = threading.Barrier(2)

    def stage(data: bytes) -> bytes:
        with staged_upload(data, "same-name.mp4") as staged:
            seen.append(staged)
            barrier.wait(timeout=10)
            return staged.read_bytes()

    other = clip.read_bytes() + b"\x00" * 16  # different bytes under the same name
    with ThreadPoolExecutor(max_workers=2) as pool:
        read = list(pool.map(stage, (clip.read_bytes(), other)))
    assert read == [clip.read_bytes(), other]
    assert len({p.parent for p in seen}) == 2


# ---------------------------------------------------------------- weights


@pytest.fixture
def tampered_weights(tmp_path) -> Path:
    copy = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, copy)
    for target in copy.glob("*.safetensors"):
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit, deep in the tensor data
        target.write_bytes(bytes(data))
    return copy


def test_a_flipped_byte_in_the_weights_is_refused(tampered_weights):
    with pytest.raises(WeightsIntegrityError, match="does not match the manifest") as err:
        create_model("meso4_df", weights_dir=tampered_weights)
    assert "refusing to load it" in str(err.value) and err.value.status == "weights_tampered"


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".bin"])
def test_pickle_formats_are_refused(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x80\x04K\x01.")  # pickle of the int 1
    with pytest.raises(WeightsIntegrityError, match=r"only \.safetensors"):
        load_state_dict(path, "0" * 64)


def test_the_analyzer_reports_tampered_weights_as_a_status(tampered_weights, clip):
    analysis = pipeline.Analyzer(device="cpu", weights_dir=tampered_weights).analyze(clip)
    assert analysis.status == "weights_tampered" and analysis.verdict is None


def test_a_member_that_fails_to_load_while_the_faces_are_found_is_the_status(tmp_path, clip):
    """The models load in a thread during face detection: their error still ends the analysis."""
    from detector.verdict.scoring import default_models

    copy = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, copy)
    member = default_models(copy)[-1]
    target = copy / f"{member}.safetensors"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    analysis = pipeline.Analyzer(device="cpu", weights_dir=copy).analyze(clip)
    assert analysis.status == "weights_tampered" and analysis.verdict is None
    assert member in analysis.message


def test_the_cli_reports_tampered_weights_without_a_traceback(tampered_weights, clip):
    run = subprocess.run(
        [sys.executable, "-m", "detector", "analyze", str(clip), "--json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DEEPFAKE_WEIGHTS_DIR": str(tampered_weights)},
    )
    assert run.returncode == 3
    assert json.loads(run.stdout)["status"] == "weights_tampered"
    lines = run.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("weights_tampered: ")
        and "Traceback" not in run.stderr
    )


def test_the_weights_folder_is_read_when_asked_for(monkeypatch, tampered_weights):
    from detector.settings import weights_dir

    assert weights_dir() == WEIGHTS_DIR
    monkeypatch.setenv("DEEPFAKE_WEIGHTS_DIR", str(tampered_weights))
    assert weights_dir() == tampered_weights
    with pytest.raises(WeightsIntegrityError):
        create_model("meso4_df")  # the registry asks at call time, not at import


# ---------------------------------------------------------------- no pickle


UNPICKLERS = {"load", "loads", "Unpickler"}  # of pickle / dill / joblib / shelve / marshal


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


ANALYSIS_PATH = (  # what runs on an analyst's upload: no torch.load at all here
    "detector/pipeline.py",
    "detector/io",
    "detector/faces",
    "detector/provenance",
    "detector/scoring/ensemble.py",
)


def _in_analysis_path(source) -> bool:
    rel = source.relative_to(PROJECT_ROOT).as_posix()
    return any(rel == p or rel.startswith(p + "/") for p in ANALYSIS_PATH)


def test_the_analysis_path_names_existing_code():
    """A rename must not silently empty the list the next test checks."""
    assert all((PROJECT_ROOT / p).exists() for p in ANALYSIS_PATH)


def test_nothing_is_ever_unpickled():
    """``pickle``-style loads are absent; ``torch.load`` only with ``weights_only=True`` and never
    in the analysis path; the isolated decoder talks over raw pipes (no ``multiprocessing``
    connection, whose ``recv`` unpickles what the child sends)."""
    sources = [*PROJECT_ROOT.glob("detector/**/*.py"), *PROJECT_ROOT.glob("pages/*.py")]
    sources += [*PROJECT_ROOT.glob("scripts/*.py"), PROJECT_ROOT / "app.py"]
    for source in sources:
        tree = ast.parse(source.read_text("utf-8"))
        for node, func in _calls(tree):
            where = f"{source.relative_to(PROJECT_ROOT)}:{node.lineno}"
            head, _, attr = func.rpartition(".")
            if head in {"pickle", "dill", "joblib", "shelve", "marshal", "cPickle"}:
                assert attr not in UNPICKLERS, where
            if func == "torch.load":
                weights_only = {k.arg: k.value for k in node.keywords}.get("weights_only")
                assert isinstance(weights_only, ast.Constant) and weights_only.value is True, where
                assert not _in_analysis_path(source), where
            if func.endswith("np.load") or func.endswith("numpy.load"):
                kw = {k.arg: k.value for k in node.keywords}
                assert "allow_pickle" not in kw or kw["allow_pickle"].value is False, where
        if "detector/io/isolated" in source.as_posix():
            imported = {
                a.name.split(".")[0]
                for n in ast.walk(tree)
                if isinstance(n, ast.Import | ast.ImportFrom)
                for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])
            }
            assert "multiprocessing" not in imported, source
            assert not any(f.endswith(".recv") for _, f in _calls(tree)), source


def test_the_isolated_decoder_sends_next_frames_like_the_in_process_one(clip):
    from detector.io.isolated.decoder import InProcessDecoder
    from detector.types import SampledFrame

    plan = parse_sampling("1fps")
    with InProcessDecoder(clip, "c.mp4", plan, with_next=True) as dec:
        local = [f for f in dec if isinstance(f, SampledFrame)]
    with IsolatedDecoder(clip, "c.mp4", plan, with_next=True) as dec:
        remote = [f for f in dec if isinstance(f, SampledFrame)]
    assert [f.index for f in remote] == [f.index for f in local]
    assert any(f.next_image is not None for f in remote)
    for a, b in zip(local, remote, strict=True):
        assert np.array_equal(a.image, b.image)
        assert (a.next_image is None) == (b.next_image is None)
        if a.next_image is not None:
            assert np.array_equal(a.next_image, b.next_image)
