"""MTCNN wrapper, cropping and tracking."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from detector.faces import FaceSettings, FaceTracker, MTCNNDetector, iou, square_crop
from detector.video import parse_sampling, probe, read_frames


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


def test_tracker_follows_moving_boxes_and_separates_people():
    tr = FaceTracker(max_gap=1)
    a0, b0 = (0, 0, 50, 50), (300, 0, 350, 50)
    assert tr.update([a0, b0]) == [0, 1]
    assert tr.update([(310, 5, 360, 55), (20, 0, 70, 50)]) == [1, 0]  # moved, order swapped
    assert tr.update([]) == []  # both missed once
    assert tr.update([(30, 0, 80, 50)]) == [0]  # back within the gap
    assert tr.update([(600, 300, 650, 350)]) == [2]  # someone new


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
