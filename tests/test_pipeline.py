"""The pipeline end to end: synthetic clips always, the FaceForensics++ clips when ../shared exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from detector.faces.detect import FaceSettings
from detector.faces.quality import QualitySettings
from detector.io import synthetic
from detector.pipeline import ExtractionSettings
from detector.reporting.record import analysis_to_dict, json_default
from detector.settings import PROJECT_ROOT
from detector.verdict.verdict import label_for


def test_face_clip_gives_a_verdict_with_every_model_on_every_face(analyzer, videos):
    a = analyzer.analyze(videos["face"], ExtractionSettings())
    assert a.ok, a.message
    assert len(a.frames) == 4 and all(fr.face_ids for fr in a.frames)
    assert a.scores.p_fake.shape == (len(a.faces), len(analyzer.model_names))
    s = a.verdict.settings
    assert a.verdict.label == label_for(a.verdict.p_fake, s.threshold, s.inconclusive_band)
    assert len(a.tracks) == 1


def test_three_people_are_three_tracks(analyzer, videos):
    a = analyzer.analyze(videos["three_faces"], ExtractionSettings())
    assert a.ok and len(a.tracks) == 3
    assert all(len(t.face_ids) == len(a.frames) for t in a.tracks)


def test_no_face_is_a_status_not_a_score(analyzer, videos):
    a = analyzer.analyze(videos["blank"], ExtractionSettings())
    assert a.status == "no_faces" and a.verdict is None and a.scores is None
    assert len(a.frames) == 3


@pytest.mark.shared
def test_every_ffpp_clip_shows_faces_in_at_least_half_the_frames(analyzer, clips_dir):
    for clip in sorted((clips_dir / "ffpp_c23").rglob("*.mp4")):
        a = analyzer.analyze(clip, ExtractionSettings())
        assert a.ok, f"{clip.name}: {a.status} {a.message}"
        with_face = sum(1 for fr in a.frames if fr.face_ids)
        assert with_face >= len(a.frames) / 2, clip.name


@pytest.mark.shared
def test_the_multi_face_clip_has_more_than_one_track(analyzer, clips_dir):
    a = analyzer.analyze(clips_dir / "misc" / "short_hamilton_clip.mp4", ExtractionSettings())
    assert a.ok and len(a.tracks) > 1


# ---------------------------------------------------------------- who is who, what is a face


def _shots_clip(path, shots, fps: int = 5, size=(640, 360)):
    """One second per shot: (face image, left edge x) or None for an empty second."""
    w, h = size
    bg = synthetic.background(w, h, seed=4)
    frames = []
    for shot in shots:
        img = bg.copy()
        if shot is not None:
            face, x = shot
            y = (h - face.shape[0]) // 2
            img[y : y + face.shape[0], x : x + face.shape[1]] = face
        frames += [img] * fps
    return synthetic.write_video(path, frames, fps=fps)


def test_a_cut_to_someone_else_is_a_new_person_and_a_return_is_not(analyzer, tmp_path):
    astronaut, cameraman = synthetic.astronaut_face(200), synthetic.cameraman_face(200)
    shots = [(astronaut, 220)] * 2 + [(cameraman, 220)] * 2 + [(astronaut, 40)] * 2
    a = analyzer.analyze(_shots_clip(tmp_path / "cuts.mp4", shots), ExtractionSettings())
    assert a.ok, a.message
    assert [len(fr.face_ids) for fr in a.frames] == [1] * 6
    people = [a.faces[fr.face_ids[0]].track_id for fr in a.frames]
    assert people == [0, 0, 1, 1, 0, 0]  # same place, other person; other place, same person
    assert len(a.tracks) == 2 and not a.rejected


def test_a_face_printed_on_a_shirt_is_listed_never_scored(analyzer, tmp_path):
    frames = []
    for i in range(15):
        img = synthetic.background(640, 480, seed=1)
        img[0:240, 200 + i : 440 + i] = synthetic.astronaut_face(240)
        img[300:420, 260 + i : 380 + i] = (synthetic.astronaut_face(120) * 0.8).astype(np.uint8)
        frames.append(img)
    clip = synthetic.write_video(tmp_path / "shirt.mp4", frames, fps=5)
    a = analyzer.analyze(clip, ExtractionSettings())
    assert a.ok, a.message
    assert len(a.tracks) == 1 and len(a.faces) == 3
    assert [r.check for r in a.rejected] == ["body"] * 3
    assert all(r.box_xyxy[1] > 240 for r in a.rejected)  # the picture, not the person
    assert sorted(a.scores.face_ids.tolist()) == [f.face_id for f in a.faces]
    assert any("3 detection(s) were not scored" in n for n in a.notes), a.notes
    doc = json.loads(json.dumps(analysis_to_dict(a), default=json_default))
    assert doc["rejected_count"] == 3 and doc["rejected"][0]["check"] == "body"
    assert doc["rejected"][0]["reason"].startswith("not a face")
    assert sum(len(fr["faces"]) for fr in doc["frames"]) == 3


def test_when_no_detection_looks_like_a_face_the_message_says_so(analyzer, videos):
    strict = FaceSettings(quality=QualitySettings(min_confidence=1.01))
    a = analyzer.analyze(videos["face"], ExtractionSettings(faces=strict))
    assert a.status == "no_faces" and a.verdict is None and a.scores is None
    assert len(a.rejected) == 4 and not a.faces
    assert "4 detection(s) were found in the 4 sampled frames but none looked like a face" in (
        a.message
    )
    assert "4 low detector confidence" in a.message
    doc = json.loads(json.dumps(analysis_to_dict(a), default=json_default))
    assert doc["status"] == "no_faces" and doc["rejected_count"] == 4


# (clip under the shared data folder, sampling), one of each source: the stage clip (a hand),
# a news anchor beside a logo and a film still, a newsroom with a blurred colleague behind the
# presenter, a Celeb-DF fake, an HDTF talking head. scripts/track_report.py measures all 94.
GATE_SAMPLE = [
    ("clips/misc/short_hamilton_clip.mp4", "1fps"),
    ("clips/ffpp_c23/fake/NeuralTextures_004_982.mp4", "1fps"),
    ("ffpp_methods/clips_c40/Face2Face/585_599.mp4", "1fps"),
    ("crossval/celebdf_seg/fake/id0_id1_0005_segment_1.mp4", "even:8"),
    ("crossval/real_talking_heads/hdtf_WDA_KatieHill_000.mp4", "1fps"),
]


@pytest.mark.shared
def test_no_rejected_detection_reaches_the_score_table(analyzer, clips_dir):
    """On a sample of the shared clips: every detection is either scored or listed as rejected
    (counted against a separate detection pass), and the score table holds only the scored."""
    from detector.io.decode import read_frames
    from detector.io.probe import parse_sampling, probe

    root = clips_dir.parent
    reasons = []
    for rel, sampling in GATE_SAMPLE:
        path = root / rel
        if not path.is_file():
            pytest.skip(f"{rel} is not in the shared data at {root}")
        a = analyzer.analyze(path, ExtractionSettings(sampling=sampling))
        assert a.ok, f"{rel}: {a.message}"
        scored = {int(i) for i in a.scores.face_ids}
        assert scored == {f.face_id for f in a.faces}, rel
        for fr in read_frames(path, probe(path), parse_sampling(sampling)):
            found = analyzer.detector.detect(fr.image)
            kept = [
                a.faces[i].box_xyxy
                for rec in a.frames
                if rec.index == fr.index
                for i in rec.face_ids
            ]
            refused = [r.box_xyxy for r in a.rejected if r.frame_index == fr.index]
            # the analysis detects frames in groups: the same boxes to float rounding
            listed, alone = sorted(kept + refused), sorted(d.box_xyxy for d in found)
            assert len(listed) == len(alone), (rel, fr.index)
            np.testing.assert_allclose(listed, alone, atol=1e-2, err_msg=f"{rel} {fr.index}")
            assert not set(kept) & set(refused)
        reasons += [r.check for r in a.rejected]
    # the sample holds non-faces on purpose: a gate that rejects nothing would pass vacuously
    assert {"confidence", "body", "main_face"} <= set(reasons), reasons


@pytest.mark.shared
def test_the_stage_clip_keeps_people_apart(analyzer, clips_dir):
    """Issue 13: by position alone the performer's track took in a man from the audience at 8 s
    and a blur at 5 s joined a woman at 8 s. Now the performer's close-ups (3-7 s) are one
    track, the hand at 5 s is rejected, and the four faces at 8 s are four people of their own."""
    a = analyzer.analyze(clips_dir / "misc" / "short_hamilton_clip.mp4", ExtractionSettings())
    assert a.ok, a.message
    at = {round(fr.timestamp_s): [a.faces[i] for i in fr.face_ids] for fr in a.frames}
    performer = {f.track_id for t in range(3, 8) for f in at[t]}
    assert len(performer) == 1 and all(len(at[t]) == 1 for t in range(3, 8))
    audience = {f.track_id for f in at[8]}
    assert len(at[8]) == 4 and len(audience) == 4
    assert not performer & audience, "an audience member joined the performer's track"
    assert not audience & {f.track_id for t in (0, 1) for f in at[t]}
    assert any(r.check == "body" and round(r.timestamp_s) == 5 for r in a.rejected)


@pytest.mark.shared
def test_cli_json_is_complete_for_a_faceforensics_clip(clips_dir):
    clip = clips_dir / "ffpp_c23" / "fake" / "FaceSwap_634_660.mp4"
    # the allocator as a new shell would have it (no preload, no choice made)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFAKE_ALLOCATOR")}
    env.pop("LD_PRELOAD", None)
    out = subprocess.run(
        [sys.executable, "-m", "detector", "analyze", str(clip), "--json"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == "ok" and doc["message"]
    assert doc["verdict"]["label"] in ("fake", "real", "uncertain")
    assert 0.0 <= doc["verdict"]["p_fake"] <= 1.0
    models = [m["name"] for m in doc["models"]]
    assert models and all(len(m["weights_sha256"]) == 64 for m in doc["models"])
    # the precision each member ran in, as on this CPU (the calibration's paths say what it
    # means), and the score placed against the real videos of this CPU's precision path
    from detector.scoring.device import bf16_kernels
    from detector.verdict.scoring import default_scoring

    assert all(m["precision"] in ("fp32", "bf16", "bf16 (AMX)") for m in doc["models"])
    if not bf16_kernels():
        assert {m["precision"] for m in doc["models"]} == {"fp32"}
    path = {None: "fp32", "AVX512_BF16": "bf16cpu", "AMX": "bf16amx"}[bf16_kernels()]
    if doc["verdict"]["calibrated"]:
        assert doc["verdict"]["placed_on"] == path and doc["verdict"]["real_percentile"] is not None
    assert doc["settings"]["scoring"]["calibration"]["paths"] == default_scoring().calibration.paths
    assert doc["settings"]["sampling"] == "1fps" and doc["video"]["sha256"]
    assert len(doc["frames"]) == 13
    for frame in doc["frames"]:
        assert {"index", "timestamp_s", "faces"} <= set(frame)
        for face in frame["faces"]:
            assert len(face["box_xyxy"]) == 4 and face["track_id"] >= 0
            assert set(face["scores"]) == set(models)
    assert doc["tracks"] and all(set(t["per_model"]) == set(models) for t in doc["tracks"])
    provenance = doc["provenance"]  # beside the verdict, never part of it
    assert provenance["c2pa"]["state"] == "absent" and provenance["c2pa"]["trust"] == "unknown"
    assert provenance["metadata"]["encoder"].startswith("Lavf")
    from detector.allocator import find_tcmalloc

    # python -m detector restarted itself with tcmalloc where the machine has it
    assert doc["software"]["allocator"] == ("tcmalloc" if find_tcmalloc() else "system")


def test_a_background_load_hands_back_its_value_or_its_error():
    from detector.threads import InThread

    assert InThread(lambda: 3).result() == 3

    def broken():
        raise ValueError("no weights")

    with pytest.raises(ValueError, match="no weights"):
        InThread(broken).result()


def test_read_ahead_keeps_order_raises_where_the_error_came_and_stops_with_the_caller():
    """ReadAhead: the items in order, at most ``depth`` ahead; an error of the source where its
    item would have come; a caller that stops early stops (and joins) the reading thread."""
    import threading
    import time

    from detector.threads import ReadAhead

    assert list(ReadAhead(range(20), depth=3)) == list(range(20))

    def failing():
        yield 1
        yield 2
        raise ValueError("the decoder crashed")

    got = []
    with pytest.raises(ValueError, match="crashed"):
        for item in ReadAhead(failing()):
            got.append(item)
    assert got == [1, 2]

    drawn = []

    def endless():
        for i in range(10_000):
            drawn.append(i)
            yield i

    ahead = ReadAhead(endless(), depth=2)
    for item in ahead:
        if item == 0:
            deadline = time.monotonic() + 5
            while not ahead.ready() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ahead.ready()
            time.sleep(0.2)
            assert len(drawn) <= 4  # the one given, two waiting, one being put
        if item == 5:
            break
    before = threading.active_count()
    time.sleep(0.2)
    assert len(drawn) <= 10 and threading.active_count() == before
    assert not any(t.name == "read-ahead" for t in threading.enumerate())


def test_core_workers_share_out_tasks_by_cost_and_split_batches_in_order():
    """balance: every task runs once, on a worker, results in task order, in shares of about
    equal cost (the costliest first, each to the least loaded share); split: contiguous near-equal parts, in order, and a
    single item (or a single worker) runs in the calling thread."""
    import threading

    from detector.threads import CoreWorkers, shares

    workers = CoreWorkers(2)
    ran: dict[int, str] = {}

    def task(i: int):
        def run() -> int:
            ran[i] = threading.current_thread().name
            return i * 10

        return run

    costs = [1.0, 8.0, 3.0, 4.0, 2.0]
    assert workers.balance([task(i) for i in range(5)], costs) == [0, 10, 20, 30, 40]
    assert sorted(ran) == [0, 1, 2, 3, 4]
    assert threading.current_thread().name not in ran.values()
    # 8 in one share; 4, 3, 2 in the other (9); the 1 then joins the first (9 and 9)
    assert shares(costs, 2) == [[1, 0], [3, 2, 4]]
    assert shares([5.0], 3) == [[0], [], []]
    assert workers.balance([], []) == []

    seen: list[tuple[str, list[int]]] = []

    def part(items):
        seen.append((threading.current_thread().name, list(items)))
        return list(items)

    assert workers.split(part, list(range(7))) == [[0, 1, 2, 3], [4, 5, 6]]
    assert {name for name, _ in seen} != {threading.current_thread().name}
    seen.clear()
    assert workers.split(part, [5]) == [[5]] and seen == [(threading.current_thread().name, [5])]
    assert CoreWorkers(1).split(part, [1, 2]) == [[1, 2]]


def test_the_faces_stage_shares_one_set_of_core_workers_on_a_cpu(analyzer):
    """The analyzer's MTCNN and identity embedder spread their work over the same single-threaded
    workers; there is one worker per torch thread on a CPU, none on one thread or a GPU."""
    import torch

    from detector.threads import cpu_workers

    workers = analyzer.detector._mtcnn.workers
    assert workers is analyzer.embedder.workers
    assert workers is None or workers.n > 1
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert cpu_workers("cpu").n == 2
        assert cpu_workers("cuda") is None
        torch.set_num_threads(1)
        assert cpu_workers("cpu") is None
    finally:
        torch.set_num_threads(before)


def test_the_cli_ends_without_teardown_but_with_everything_a_normal_exit_does(tmp_path):
    """``exit_now``: waits for threads, runs the atexit handlers, flushes, keeps the exit code."""
    script = tmp_path / "ends.py"
    script.write_text(
        "import atexit, concurrent.futures, sys, threading, time\n"
        "from detector.cli import exit_now\n"
        "out = sys.argv[1]\n"
        "atexit.register(lambda: open(out + '.atexit', 'w').write('ran'))\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    open(out + '.thread', 'w').write('done')\n"
        "threading.Thread(target=late).start()\n"
        "concurrent.futures.ThreadPoolExecutor(1).submit(lambda: None).result()\n"
        "print('x' * 100000, end='')\n"
        "exit_now(3)\n",
        "utf-8",
    )
    out = tmp_path / "mark"
    run = subprocess.run(
        [sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        timeout=60,
    )
    assert run.returncode == 3, run.stderr
    assert run.stdout == "x" * 100000
    assert (tmp_path / "mark.atexit").read_text() == "ran"
    assert (tmp_path / "mark.thread").read_text() == "done"


TEMPORAL = ("lstm_efficientnet_lite0", "two_stream_frame", "two_stream_video")


def test_temporal_and_two_stream_members_score_people_in_the_pipeline(videos):
    """Temporal members give one score per window of a person; two-stream members get the
    next raw frame's crop of every face (the decoder fetches it only when they are selected)."""
    from detector.models import list_models
    from detector.pipeline import Analyzer

    shipped = set(list_models(available_only=True))
    members = [m for m in TEMPORAL if m in shipped]
    if len(members) < len(TEMPORAL):
        pytest.skip(f"not all temporal members are shipped: {sorted(set(TEMPORAL) - shipped)}")
    analyzer = Analyzer(["efficientnet_lite0", *members], device="cpu")
    _, faces = analyzer.extract_faces(videos["three_faces"], with_next=True)
    assert all(f.next_crop is not None and f.next_crop.shape == f.crop.shape for f in faces)
    a = analyzer.analyze(videos["three_faces"], ExtractionSettings())
    assert a.ok, a.message
    assert not [n for n in a.notes if "following frame" in n], a.notes
    assert all(f.next_crop is None for f in a.faces), "next-frame crops are not kept"
    table = a.scores
    for m in ("lstm_efficientnet_lite0", "two_stream_video"):
        col = table.column(m)
        for tid in set(table.track_ids.tolist()):
            assert len(set(col[table.track_ids == tid].round(8))) == 1, "one window per track"
    assert {c.kind for c in a.models} == {"frame", "track"}
    _, plain = Analyzer(["efficientnet_lite0"], device="cpu").extract_faces(videos["face"])
    assert all(f.next_crop is None for f in plain)


def test_cli_analyze_says_the_verdict_in_words_never_a_bare_label(videos, capsys):
    from detector import cli
    from detector.verdict.verdict import VERDICT_WORDS

    argv = [
        "analyze",
        str(videos["face"]),
        "--models",
        "efficientnet_lite0",
        "--sampling",
        "even:3",
    ]
    assert cli.main(argv) == 0
    headline = capsys.readouterr().out.splitlines()[0]
    assert headline.startswith("face.mp4: ")
    assert any(words in headline for words in VERDICT_WORDS.values()), headline
    assert "manipulation score" in headline and "alarm threshold" in headline
    assert not {"REAL", "FAKE", "UNCERTAIN"} & set(headline.replace("(", " ").split())
