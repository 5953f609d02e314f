"""MTCNN wrapper, cropping, the face quality gate, the identity embedder and tracking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import data

from detector.errors import WeightsIntegrityError
from detector.faces.collect import FaceCollector
from detector.faces.crop import square_crop
from detector.faces.detect import FaceSettings, MTCNNDetector
from detector.faces.identity import FaceEmbedder, identity_crops
from detector.faces.quality import QualitySettings, quality_gate
from detector.faces.track import FaceTracker, TrackSettings, iou
from detector.io import synthetic
from detector.io.decode import read_frames
from detector.io.probe import parse_sampling, probe
from detector.types import Detection, SampledFrame


@pytest.fixture(scope="module")
def detector():
    return MTCNNDetector(FaceSettings(), device="cpu")


def test_finds_the_astronaut_face(detector):
    found = detector.detect(data.astronaut())
    assert len(found) == 1
    x1, y1, x2, y2 = found[0].box_xyxy
    assert 170 < x1 < 195 and 50 < y1 < 75 and 255 < x2 < 280 and 160 < y2 < 185
    assert found[0].confidence > 0.99
    assert len(found[0].landmarks_xy) == 5


def test_boxes_map_back_from_the_downscaled_frame(detector):
    big = np.kron(data.astronaut(), np.ones((3, 3, 1), np.uint8))  # 1536 px, downscaled to 640
    found = detector.detect(big)
    assert len(found) == 1
    assert found[0].box_xyxy[0] == pytest.approx(3 * 181, rel=0.05)


def test_no_face_in_noise(detector):
    noise = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    assert detector.detect(noise) == []


def test_finds_every_face_not_just_the_largest(detector, videos):
    info = probe(videos["three_faces"])
    frame = read_frames(videos["three_faces"], info, parse_sampling("first:1"))[0]
    assert len(detector.detect(frame.image)) == 3


def test_square_crop_with_margin_and_border_padding():
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 40:60] = 255
    crop = square_crop(img, (40, 40, 60, 60), margin=0.5, size=40)
    assert crop.shape == (40, 40, 3)
    assert crop[20, 20].tolist() == [255, 255, 255] and crop[2, 2].tolist() == [0, 0, 0]
    edge = square_crop(img, (-10, -10, 20, 20), margin=0.1, size=32)  # face at the border
    assert edge.shape == (32, 32, 3)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


# ---------------------------------------------------------------- quality gate

# Five landmarks of an upright frontal face, as shares of its box (MTCNN's order: eye on the
# image's left, other eye, nose, mouth corners left and right).
FRONTAL = ((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8))


def face_det(box, marks=FRONTAL, confidence: float = 0.999) -> Detection:
    x1, y1, x2, y2 = box
    pts = tuple((x1 + u * (x2 - x1), y1 + v * (y2 - y1)) for u, v in marks)
    return Detection(tuple(float(c) for c in box), confidence, pts)


def rotated(marks, degrees: float):
    """The landmarks turned about the box centre (a tilted head)."""
    a = math.radians(degrees)
    return tuple(
        (
            0.5 + (u - 0.5) * math.cos(a) - (v - 0.5) * math.sin(a),
            0.5 + (u - 0.5) * math.sin(a) + (v - 0.5) * math.cos(a),
        )
        for u, v in marks
    )


FRAME = (720, 1280)
BOX = (500.0, 200.0, 600.0, 330.0)  # a 100 px wide face


@pytest.mark.parametrize(
    ("marks", "confidence", "check"),
    [
        (FRONTAL, 0.999, None),
        (rotated(FRONTAL, 30), 0.999, None),  # a tilted head is a face
        (((0.35, 0.4), (0.6, 0.4), (0.3, 0.6), (0.3, 0.8), (0.5, 0.8)), 0.999, None),  # turned
        (FRONTAL, 0.93, "confidence"),
        (((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (1.4, 0.8)), 0.999, "landmarks"),
        (((0.47, 0.4), (0.53, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8)), 0.999, "eye_distance"),
        (((0.3, 0.7), (0.7, 0.7), (0.5, 0.5), (0.35, 0.3), (0.65, 0.3)), 0.999, "feature_order"),
        (((0.3, 0.4), (0.7, 0.4), (0.5, 0.8), (0.35, 0.6), (0.65, 0.6)), 0.999, "feature_order"),
        (((0.1, 0.3), (0.3, 0.3), (0.95, 0.6), (0.35, 0.8), (0.65, 0.8)), 0.999, "symmetry"),
        (((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.49, 0.8), (0.51, 0.8)), 0.999, "symmetry"),
    ],
)
def test_the_gate_judges_landmarks_and_confidence(marks, confidence, check):
    accepted, rejected = quality_gate([face_det(BOX, marks, confidence)], FRAME, QualitySettings())
    assert [r.check for r in rejected] == ([check] if check else [])
    assert len(accepted) == (0 if check else 1)
    if check:
        assert rejected[0].reason and rejected[0].detection.box_xyxy == BOX


@pytest.mark.parametrize(
    ("boxes", "frame", "checks"),
    [
        ([(10, 10, 30, 36)], FRAME, ["size"]),  # 20 px wide
        ([(10, 10, 40, 48)], FRAME, [None]),  # 30 px: the hostile corpus' "tiny" face
        ([(10, 10, 110, 140)], (4320, 7680), ["frame_share"]),  # 100 px in 8K
        ([BOX, (900, 100, 935, 145)], FRAME, [None, "main_face"]),  # 35 % of the main face
        ([BOX, (900, 100, 950, 165)], FRAME, [None, None]),  # 50 %: a person further back
        ([BOX, (540, 400, 580, 450)], FRAME, [None, "body"]),  # below the chin: on the body
        ([BOX, (560, 40, 595, 90)], FRAME, [None, "main_face"]),  # above: not on the body
        ([BOX, (540, 400, 660, 550)], FRAME, [None, None]),  # wider than the face above it
    ],
)
def test_the_gate_judges_size_and_place(boxes, frame, checks):
    dets = [face_det(b) for b in boxes]
    accepted, rejected = quality_gate(dets, frame, QualitySettings())
    why = {r.detection.box_xyxy: r.check for r in rejected}
    assert [why.get(d.box_xyxy) for d in dets] == checks
    assert accepted == [d for d, c in zip(dets, checks, strict=True) if c is None]


def test_a_large_non_face_cannot_make_a_real_face_too_small_or_a_body_part():
    junk = face_det((300, 0, 700, 500), confidence=0.92)  # huge, low confidence, above the face
    face = face_det((450, 520, 530, 620))
    accepted, rejected = quality_gate([junk, face], FRAME, QualitySettings())
    assert accepted == [face] and [r.check for r in rejected] == ["confidence"]


def test_the_gate_can_be_switched_off_for_measurements():
    dets = [face_det(BOX, confidence=0.5), face_det((10, 10, 20, 20))]
    assert quality_gate(dets, FRAME, QualitySettings.off()) == (dets, [])


def test_a_face_printed_on_a_shirt_is_not_a_person(detector):
    """Real MTCNN output: a person and, on their chest, a smaller picture of a face."""
    img = synthetic.background(640, 480, seed=1)
    img[0:240, 200:440] = synthetic.astronaut_face(240)
    img[300:420, 260:380] = (synthetic.astronaut_face(120) * 0.8).astype(np.uint8)
    found = detector.detect(img)
    assert len(found) == 2 and min(d.confidence for d in found) > 0.99  # MTCNN is sure of both
    accepted, rejected = quality_gate(found, img.shape[:2], QualitySettings())
    assert len(accepted) == 1 and accepted[0].box_xyxy[3] < 240
    assert [r.check for r in rejected] == ["body"]
    assert "not a face" in rejected[0].reason


# ---------------------------------------------------------------- identity embedder


@pytest.fixture(scope="module")
def embedder():
    return FaceEmbedder(device="cpu")


ASTRONAUT_BOX = (181.1, 62.2, 267.7, 172.1)
CAMERAMAN_BOX = (199.2, 118.9, 254.3, 192.3)


def test_the_embedder_tells_people_apart(embedder):
    astronaut = data.astronaut()
    shifted = np.roll(astronaut, (6, -4), axis=(0, 1))
    camera = np.repeat(data.camera()[:, :, None], 3, axis=2)
    e = np.concatenate(
        [
            embedder.embed(astronaut, [ASTRONAUT_BOX]),
            embedder.embed(shifted, [(ASTRONAUT_BOX[0] - 4, 68.2, 263.7, 178.1)]),
            embedder.embed(astronaut[:, ::-1].copy(), [(244.3, 62.2, 330.9, 172.1)]),
            embedder.embed(camera, [CAMERAMAN_BOX]),
        ]
    )
    assert e.shape == (4, 128) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    sim = e @ e.T
    assert sim[0, 1] > 0.9 and sim[0, 2] > 0.8  # the same face moved, and mirrored
    assert sim[0, 3] < 0.3  # another person
    assert embedder.embed(astronaut, []).shape == (0, 128)


class CountingEmbedder:
    """The real embedder, counting its network calls."""

    def __init__(self, embedder):
        self.embedder, self.calls = embedder, 0

    def embed_crops(self, crops):
        self.calls += 1
        return self.embedder.embed_crops(crops)


def test_faces_embedded_in_batches_keep_the_ids_and_people_of_frame_by_frame(detector, embedder):
    astronaut = data.astronaut()
    camera = np.repeat(data.camera()[:, :, None], 3, axis=2)
    both = np.concatenate([astronaut, camera], axis=1)  # two people side by side
    empty = np.full_like(astronaut, 90)
    images = [np.roll(astronaut, (2 * i, 3 * i), axis=(0, 1)) for i in range(4)]
    images += [empty, both, camera, both, np.roll(astronaut, (5, 5), axis=(0, 1))]
    frames = [SampledFrame(i, float(i), im) for i, im in enumerate(images)]

    def collect(batch_faces):
        counting = CountingEmbedder(embedder)
        c = FaceCollector(detector, counting, FaceTracker(), FaceSettings(), batch_faces)
        records = [r for f in frames for r in c.add(f)] + c.flush()
        person = c.finish()
        people = [(f.face_id, f.frame_index, person[f.track_id]) for f in c.faces]
        return records, people, [f.box_xyxy for f in c.faces], counting.calls

    one_by_one, people, boxes, calls = collect(batch_faces=1)
    batched, people_b, boxes_b, calls_b = collect(batch_faces=16)
    assert [r.face_ids for r in one_by_one] == [r.face_ids for r in batched]
    assert people == people_b and boxes == boxes_b
    assert len(people) == 10 and len({p for *_, p in people}) == 2  # the astronaut, the cameraman
    assert [p for _, i, p in people if i < 4] == [people[0][2]] * 4
    assert calls == len(frames) - 1 and calls_b == 1  # the empty frame embeds nothing by itself


def test_crops_past_the_raw_budget_are_held_packed_and_read_back_unchanged(detector, embedder):
    from detector.types import CropsOf, PackedImage

    frames = [
        SampledFrame(i, float(i), np.roll(data.astronaut(), (3 * i, 2 * i), axis=(0, 1)))
        for i in range(5)
    ]

    def collect(raw_crops):
        c = FaceCollector(detector, embedder, FaceTracker(), FaceSettings(), raw_crops=raw_crops)
        for f in frames:
            c.add(f)
        c.flush()
        c.finish()
        return c.faces

    raw, mixed = collect(raw_crops=64), collect(raw_crops=2)
    assert [type(f.stored_crop) for f in mixed] == [np.ndarray] * 2 + [PackedImage] * 3
    assert all(isinstance(f.stored_crop, np.ndarray) for f in raw)
    for a, b in zip(raw, mixed, strict=True):
        assert b.crop.dtype == np.uint8 and np.array_equal(a.crop, b.crop)  # lossless
        assert a.track_id == b.track_id and a.box_xyxy == b.box_xyxy
    packed = mixed[-1].stored_crop
    assert len(packed.png) < 0.6 * mixed[-1].crop.nbytes
    crops = CropsOf(mixed)  # what scoring reads: unpacked one slice at a time
    assert len(crops) == 5 and np.array_equal(crops[np.int64(4)], raw[4].crop)
    assert [c.shape for c in crops[1:4]] == [(320, 320, 3)] * 3
    assert np.array_equal(np.stack(crops[0:5]), np.stack([f.crop for f in raw]))
    from detector.scoring.ensemble import Ensemble

    ensemble = Ensemble(["meso4_df", "mesoinception4_f2f"], device="cpu")
    assert np.array_equal(ensemble.score(crops), ensemble.score(np.stack([f.crop for f in raw])))


def test_the_embedder_runs_bf16_only_where_its_manifest_checked_those_kernels(monkeypatch):
    import detector.scoring.device as device
    from detector.faces.identity import identity_bf16_holds, read_identity_manifest

    manifest = read_identity_manifest()
    for kernels in ("AMX", "AVX512_BF16"):  # both recorded by scripts/ship_identity --check-bf16
        check = manifest["precision_check"]["bf16"][kernels]
        assert check["holds"] and check["cosine_mean"] >= 0.99
        assert abs(check["identity_auc_bf16"] - check["identity_auc_float32"]) <= 0.005
        assert identity_bf16_holds(manifest, kernels)
    assert not identity_bf16_holds(manifest, None)
    assert not identity_bf16_holds({"sha256": "x"}, "AMX")
    failed = {"precision_check": {"bf16": {"AMX": {**check, "holds": False}}}}
    assert not identity_bf16_holds(failed, "AMX")
    monkeypatch.setattr(device, "bf16_kernels", lambda: None)  # an AVX2 laptop
    assert FaceEmbedder(device="cpu").precision == "fp32"
    monkeypatch.setattr(device, "bf16_kernels", lambda: "AMX")
    assert FaceEmbedder(device="cpu").precision == "bf16 (AMX)"
    assert FaceEmbedder(device="cpu", precision="fp32").precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        FaceEmbedder(device="cpu", precision="int8")


def test_bf16_embeddings_stay_unit_vectors_close_to_float32(embedder):
    astronaut = data.astronaut()
    camera = np.repeat(data.camera()[:, :, None], 3, axis=2)
    crops = identity_crops(astronaut, [ASTRONAUT_BOX]) + identity_crops(camera, [CAMERAMAN_BOX])
    fp32 = FaceEmbedder(device="cpu", precision="fp32").embed_crops(crops)
    bf16 = FaceEmbedder(device="cpu", precision="bf16").embed_crops(crops)
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert (fp32 * bf16).sum(axis=1).min() > 0.995
    assert (bf16[0] @ bf16[1]) < 0.3  # still two people


def test_the_embedder_refuses_changed_weights(tmp_path):
    from detector.settings import WEIGHTS_DIR

    for name in ("face_identity.safetensors", "face_identity.json"):
        (tmp_path / name).write_bytes((WEIGHTS_DIR / name).read_bytes())
    target = tmp_path / "face_identity.safetensors"
    data_ = bytearray(target.read_bytes())
    data_[len(data_) // 2] ^= 0x01
    target.write_bytes(bytes(data_))
    with pytest.raises(WeightsIntegrityError, match="does not match the manifest"):
        FaceEmbedder(tmp_path)


def test_the_embedder_is_not_a_detector_model():
    from detector.models import list_models

    assert not [m for m in list_models() if "identity" in m]


# ---------------------------------------------------------------- tracking

A, B = np.eye(2)  # two people who look nothing alike
LEFT, MIDDLE, RIGHT = (0, 100, 100, 230), (300, 100, 400, 230), (600, 100, 700, 230)


def _moved(box, dx):
    return (box[0] + dx, box[1], box[2] + dx, box[3])


def test_the_tracker_follows_moving_boxes_and_separates_people():
    tr = FaceTracker(TrackSettings(max_gap=1))
    a0, b0 = (0, 0, 50, 50), (300, 0, 350, 50)
    assert tr.update([a0, b0], [A, B]) == [0, 1]
    assert tr.update([(310, 5, 360, 55), (20, 0, 70, 50)], [B, A]) == [1, 0]  # order swapped
    assert tr.update([], np.zeros((0, 2))) == []  # both missed once
    assert tr.update([(30, 0, 80, 50)], [A]) == [0]  # back within the gap
    assert tr.update([(600, 300, 650, 350)], [B]) == [2]  # far away: someone new, for now
    assert tr.finish() == {0: 0, 1: 1, 2: 1}  # ... until the video is over: B came back


def test_two_people_crossing_keep_their_own_tracks():
    tr = FaceTracker()
    steps = [
        ([LEFT, RIGHT], [A, B]),
        ([_moved(LEFT, 250), _moved(RIGHT, -250)], [A, B]),
        ([MIDDLE, _moved(MIDDLE, 10)], [B, A]),  # where they meet, B is listed first
        ([_moved(RIGHT, -250), _moved(LEFT, 250)], [A, B]),  # and then they have passed
        ([RIGHT, LEFT], [A, B]),
    ]
    ids = [tr.update(boxes, emb) for boxes, emb in steps]
    person = tr.finish()
    final = [[person[i] for i in frame] for frame in ids]
    assert final == [[0, 1], [0, 1], [1, 0], [0, 1], [0, 1]]


@pytest.mark.parametrize(
    ("shots", "people"),
    [
        ([A, A, A, B, B, B], [0, 0, 0, 1, 1, 1]),  # a cut to someone else in the same place
        ([A, A, B, B, A, A], [0, 0, 1, 1, 0, 0]),  # A comes back after the cut: same person
        ([A, None, None, None, None, A], [0, 0]),  # a long absence: still A
        ([A, *[None] * 4, B, *[None] * 4, A, *[None] * 4, B], [0, 1, 0, 1]),  # taking turns
        ([A, *[None] * 4, A, *[None] * 4, A, *[None] * 4, A], [0, 0, 0, 0]),  # merged thrice
    ],
)
def test_cuts_between_people_in_the_same_place(shots, people):
    tr = FaceTracker()
    ids = []
    for who in shots:
        if who is None:
            tr.update([], np.zeros((0, 2)))
        else:
            ids += tr.update([MIDDLE], [who])
    person = tr.finish()
    assert [person[i] for i in ids] == people


def test_two_faces_in_one_frame_are_never_one_person():
    """Twins (identical embeddings) side by side: two tracks, however alike."""
    tr = FaceTracker()
    ids = [tr.update([LEFT, RIGHT], [A, A]) for _ in range(3)]
    ids.append(tr.update([_moved(MIDDLE, 500)], [A]))  # later, one of them elsewhere
    person = tr.finish()
    assert {person[i] for i in ids[0]} == {0, 1} and len(set(person.values())) == 2


def test_the_tracker_needs_one_embedding_per_box():
    with pytest.raises(ValueError, match="2 boxes but 1 embeddings"):
        FaceTracker().update([LEFT, RIGHT], [A])


def test_min_cost_assignment_matches_scipy():
    """The tracker's own assignment (no scipy.optimize import at start-up) is optimal: same
    total cost as SciPy on random matrices with forbidden pairs, the same pairs when the optimum
    is unique, and the same shape contract (rows ascending, the smaller side covered)."""
    from scipy.optimize import linear_sum_assignment

    from detector.faces.assign import min_cost_assignment

    rng = np.random.default_rng(0)
    for _ in range(500):
        n, m = rng.integers(0, 9, 2)
        cost = rng.random((n, m))
        forbidden = rng.random() < 0.5
        if forbidden:
            cost[rng.random((n, m)) < 0.4] = 1e6
        r1, c1 = linear_sum_assignment(cost)
        r2, c2 = min_cost_assignment(cost)
        assert len(r2) == min(n, m) and list(r2) == sorted(r2)
        assert cost[r2, c2].sum() == pytest.approx(cost[r1, c1].sum(), rel=1e-9, abs=1e-9)
        if not forbidden:
            assert list(r1) == list(r2) and list(c1) == list(c2)
    with pytest.raises(ValueError, match="finite"):
        min_cost_assignment(np.array([[np.inf, 1.0]]))


def _frames_for_mtcnn(clips_dir=None) -> list[np.ndarray]:
    """Images with one face, many faces, small faces and none."""
    import cv2

    frames = [data.astronaut(), np.kron(data.astronaut(), np.ones((2, 2, 1), np.uint8))]
    frames.append(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    frames.append(np.zeros((100, 100, 3), np.uint8))
    if clips_dir is not None:
        for path in sorted(clips_dir.rglob("*.mp4"))[:9]:
            cap = cv2.VideoCapture(str(path))
            for _ in range(2):
                ok, bgr = cap.read()
                for _ in range(30):
                    cap.grab()
                if ok:
                    frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            cap.release()
    return frames


def test_mtcnn_finds_what_facenet_pytorch_finds(request):
    """The vendored MTCNN (no torchvision import) gives facenet-pytorch's boxes, probabilities
    and landmarks, on the astronaut, noise, an empty frame and frames of the shared clips."""
    import torch

    facenet = pytest.importorskip("facenet_pytorch")
    from detector.faces.mtcnn import MTCNN

    try:
        clips = request.getfixturevalue("clips_dir")
    except pytest.skip.Exception:
        clips = None  # the generated images alone
    ours = MTCNN(min_face_size=20)
    theirs = facenet.MTCNN(keep_all=True, min_face_size=20, post_process=False)
    compared = 0
    for frame in _frames_for_mtcnn(clips):
        boxes, probs, points = ours.detect(frame)
        with torch.inference_mode():
            ref_boxes, ref_probs, ref_points = theirs.detect(frame, landmarks=True)
        if ref_boxes is None:
            assert len(boxes) == 0
            continue
        # faces whose probabilities tie (e.g. both 1.0 in float32) may come in either order
        mine, ref = np.lexsort(boxes.T[::-1]), np.lexsort(ref_boxes.astype(np.float32).T[::-1])
        boxes, probs, points = boxes[mine], probs[mine], points[mine]
        ref_boxes, ref_probs, ref_points = ref_boxes[ref], ref_probs[ref], ref_points[ref]
        np.testing.assert_allclose(boxes, ref_boxes.astype(np.float32), rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(probs, ref_probs.astype(np.float32), atol=1e-5)
        np.testing.assert_allclose(points, ref_points.astype(np.float32), rtol=1e-4, atol=1e-2)
        compared += len(boxes)
    assert compared >= 2


def test_mtcnn_patches_read_from_summed_area_tables_equal_area_interpolation():
    """All boxes' patches at once from the frames' summed-area tables: facenet-pytorch's
    per-box ``interpolate(mode="area")`` of the clipped patch, to the last float bit; boxes
    partly outside the frame, smaller and larger than the output, and an empty one included."""
    import torch
    from torch.nn.functional import interpolate

    from detector.faces import mtcnn

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (90, 130, 3), dtype=np.uint8) for _ in range(3)]
    boxes = torch.tensor(
        [[10.4, 5.2, 40.9, 33.0], [-7.0, -3.5, 20.0, 25.0], [100.0, 60.0, 160.0, 120.0],
         [3.0, 4.0, 9.0, 8.0], [0.0, 0.0, 129.9, 89.9], [50.0, 50.0, 40.0, 45.0],
         [60.2, 20.7, 91.3, 51.8]]
    )  # fmt: skip
    inds = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    table = mtcnn._integral(images, torch.device("cpu"))
    imgs = torch.as_tensor(np.stack(images)).permute(0, 3, 1, 2).float()
    y, ey, x, ex = mtcnn._pad(boxes.clone(), 130, 90)
    for size in (24, 48):
        got = mtcnn._patches(table, inds, boxes.clone(), 130, 90, size)
        want = [
            interpolate(
                imgs[inds[k], :, y[k] - 1 : ey[k], x[k] - 1 : ex[k]][None],
                (size, size),
                mode="area",
            )
            for k in range(len(boxes))
            if ey[k] > y[k] - 1 and ex[k] > x[k] - 1
        ]
        want = (torch.cat(want) - 127.5) * 0.0078125
        assert got.shape == want.shape == (6, 3, size, size)  # the empty box is dropped
        assert (got - want).abs().max() <= 2e-7  # 1.5e-5 on the 0-255 scale: one float32 bit


def test_mtcnn_detects_a_batch_as_it_detects_each_frame(request):
    """Frames of one size detected together (facenet-pytorch's batch path, the P-Net's large
    scales split across calls) give each frame's own boxes, probabilities and landmarks, to float
    rounding; frames of another size are refused."""
    from detector.faces import mtcnn

    try:
        clips = request.getfixturevalue("clips_dir")
    except pytest.skip.Exception:
        clips = None
    net = mtcnn.MTCNN(min_face_size=20)
    by_size: dict = {}
    for frame in _frames_for_mtcnn(clips):
        by_size.setdefault(frame.shape, []).append(frame)
    compared = 0
    for frames in by_size.values():
        together = net.detect_many(frames)
        assert len(together) == len(frames)
        for frame, (boxes, probs, points) in zip(frames, together, strict=True):
            ref_boxes, ref_probs, ref_points = net.detect(frame)
            assert boxes.shape == ref_boxes.shape
            np.testing.assert_allclose(boxes, ref_boxes, atol=1e-3)
            np.testing.assert_allclose(probs, ref_probs, atol=1e-5)
            np.testing.assert_allclose(points, ref_points, atol=1e-3)
            compared += len(boxes)
    assert compared >= 2
    assert net.detect_many([]) == []
    with pytest.raises(ValueError, match="one size"):
        net.detect_many([np.zeros((60, 80, 3), np.uint8), np.zeros((80, 60, 3), np.uint8)])


def test_mtcnn_on_core_workers_finds_what_it_finds_on_the_calling_thread(request):
    """P-Net's calls shared out over single-threaded workers (one frame alone, several frames of
    one size) give the same boxes, probabilities and landmarks as run in order on this thread."""
    from detector.faces import mtcnn
    from detector.threads import CoreWorkers

    try:
        clips = request.getfixturevalue("clips_dir")
    except pytest.skip.Exception:
        clips = None
    alone = mtcnn.MTCNN(min_face_size=20)
    spread = mtcnn.MTCNN(min_face_size=20, workers=CoreWorkers(2))
    by_size: dict = {}
    for frame in _frames_for_mtcnn(clips):
        by_size.setdefault(frame.shape, []).append(frame)
    compared = 0
    for frames in by_size.values():
        for group in ([frames[0]], frames):
            for got, want in zip(spread.detect_many(group), alone.detect_many(group), strict=True):
                for g, w in zip(got, want, strict=True):
                    assert g.shape == w.shape
                    np.testing.assert_allclose(g, w, atol=1e-3)
                compared += len(got[0])
    assert compared >= 4


def test_the_embedder_split_over_core_workers_embeds_as_in_one_batch(embedder):
    from detector.threads import CoreWorkers

    astronaut = data.astronaut()
    camera = np.repeat(data.camera()[:, :, None], 3, axis=2)
    crops = identity_crops(astronaut, [ASTRONAUT_BOX]) + identity_crops(camera, [CAMERAMAN_BOX])
    crops = crops + [np.ascontiguousarray(c[:, ::-1]) for c in crops] + crops[:1]
    precision = "bf16" if embedder.low_precision else "fp32"
    spread = FaceEmbedder(device="cpu", precision=precision, workers=CoreWorkers(2))
    got, want = spread.embed_crops(crops), embedder.embed_crops(crops)
    assert got.shape == want.shape == (5, 128)
    assert (got * want).sum(axis=1).min() > 0.9999
    assert spread.embed_crops(crops[:1]).shape == (1, 128)  # one crop: run here, not split


def test_detector_batches_frames_of_mixed_sizes_and_retries_each_at_full_size(detector):
    """MTCNNDetector.detect_many groups frames by detection size, maps each frame's boxes back
    to its own pixels and retries at full size only the large frames that showed no face."""
    astronaut = data.astronaut()
    big = np.kron(astronaut, np.ones((3, 3, 1), np.uint8))  # 1536 px, downscaled to 640
    empty = np.full((720, 1280, 3), 90, np.uint8)  # downscaled, no face: retried, still none
    noise = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    images = [astronaut, big, empty, astronaut, noise, big]
    together = detector.detect_many(images)
    alone = [detector.detect(im) for im in images]
    assert [len(f) for f in together] == [1, 1, 0, 1, 0, 1]
    for a, b in zip(together, alone, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x.box_xyxy, y.box_xyxy, atol=1e-2)
            np.testing.assert_allclose(x.landmarks_xy, y.landmarks_xy, atol=1e-2)
    assert together[1][0].box_xyxy[0] == pytest.approx(3 * together[0][0].box_xyxy[0], rel=0.05)


def test_collector_detects_waiting_frames_together_within_a_pixel_budget(detector, embedder):
    """Frames wait to be detected in groups of at most BATCH_FRAMES and BATCH_FRAME_MB; add()
    gives the records of the frames detected by now, flush() the rest, finish() refuses
    frames not yet detected; the faces and their order equal those of one frame at a time."""
    from detector.faces import collect

    class Counting:
        def __init__(self):
            self.calls = []

        def detect_many(self, images):
            self.calls.append(len(images))
            return detector.detect_many(images)

    small = [SampledFrame(i, float(i), data.astronaut()) for i in range(10)]  # 0.75 MB each
    counting = Counting()
    c = FaceCollector(counting, embedder, FaceTracker(), FaceSettings())
    returned = [len(c.add(f)) for f in small]
    assert returned == [0] * 7 + [8, 0, 0] and counting.calls == [8]
    with pytest.raises(RuntimeError, match="flush"):
        c.finish()
    records = c.flush()
    assert [r.index for r in records] == [8, 9] and counting.calls == [8, 2]
    c.finish()
    assert [f.frame_index for f in c.faces] == list(range(10))
    huge = np.zeros((2160, 3840, 3), np.uint8)  # 24.9 MB: more than the budget alone
    counting = Counting()
    c = FaceCollector(counting, embedder, FaceTracker(), FaceSettings())
    assert len(c.add(SampledFrame(0, 0.0, huge))) == 1 and counting.calls == [1]
    budget, p720, p1080 = collect.BATCH_FRAME_MB << 20, 1280 * 720 * 3, 1920 * 1080 * 3
    # four 720p frames wait together, two 1080p
    assert max(4 * p720, 2 * p1080) <= budget < min(5 * p720, 3 * p1080)


def test_mtcnn_weights_are_checked(tmp_path):
    """The three networks load from the committed safetensors file; a changed file is refused."""
    import shutil

    from detector.faces import mtcnn
    from detector.settings import WEIGHTS_DIR

    assert all(net.training is False for net in mtcnn.load_nets())
    for suffix in (".json", ".safetensors"):
        shutil.copy(WEIGHTS_DIR / f"mtcnn{suffix}", tmp_path / f"mtcnn{suffix}")
    data = bytearray((tmp_path / "mtcnn.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "mtcnn.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError):
        mtcnn.load_nets(weights_dir=tmp_path)
