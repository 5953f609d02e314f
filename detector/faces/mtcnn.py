"""MTCNN (Zhang et al., 2016) as facenet-pytorch implements it, without importing facenet-pytorch.

facenet-pytorch's ``MTCNN`` imports torchvision for one function (``batched_nms``), and importing
torchvision imports ``torch._dynamo``: about 2 s at the start of every process, more than the
whole face stage of a 10 s clip. This module keeps facenet-pytorch's three networks, its weights
(converted once into ``weights/mtcnn.safetensors`` by ``scripts/convert_mtcnn.py``, sha256-checked
on every load: no pickle is read) and its detection steps, and does the non-maximum suppression itself, as
torchvision defines it. ``tests/test_faces.py`` checks that boxes, probabilities and landmarks
equal facenet-pytorch's on real frames.

Networks and ``detect_face`` adapted from facenet-pytorch 2.5.3 (Tim Esler, MIT licence), itself a
port of the MTCNN of David Sandberg's FaceNet (MIT).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.functional import interpolate

from detector.errors import WeightsMissingError

if TYPE_CHECKING:
    from detector.threads import CoreWorkers

WEIGHTS_NAME = "mtcnn"  # weights/mtcnn.safetensors (+ .json): the three networks, converted once
# from facenet-pytorch's pickled files by scripts/convert_mtcnn.py; no pickle is read here

PNET_PIXELS = 250_000
"""Input pixels per P-Net call when several images are detected at once: the small scales of a
batch go in one call (there the per-call cost dominates), the large ones a few images at a time
(there the work does, and the activations would grow with the batch)."""

CALL_PIXELS = 5_000
"""An allowance, in pixels, for what one P-Net call costs beyond its pixels when the calls are
dealt to the cores (:meth:`detector.threads.CoreWorkers.balance`): a rough figure, not measured
per CPU, that keeps the many small calls from being counted as free."""


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x):
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


NETS = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def load_nets(
    device: torch.device | str = "cpu", weights_dir: Path | None = None
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """P-, R- and O-Net in eval mode, loaded strictly from ``weights/mtcnn.safetensors`` after
    its sha256 is checked against ``weights/mtcnn.json``."""
    import json

    from detector.models.weights import load_state_dict
    from detector.settings import weights_dir as default_weights_dir

    wdir = weights_dir or default_weights_dir()
    manifest = wdir / f"{WEIGHTS_NAME}.json"
    if not manifest.is_file():
        raise WeightsMissingError(f"the MTCNN face detector's manifest {manifest} is missing")
    sha = json.loads(manifest.read_text("utf-8"))["sha256"]
    state = load_state_dict(wdir / f"{WEIGHTS_NAME}.safetensors", sha)
    nets = []
    for name, cls in NETS.items():
        net = cls()
        part = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(name + ".")}
        net.load_state_dict(part, strict=True)
        nets.append(net.to(device).eval())
    return tuple(nets)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou: float):
    """Indices kept by greedy non-maximum suppression within each group, by decreasing score
    (torchvision's ``batched_nms``: a box is dropped when its IoU with a kept box of its group
    exceeds ``iou``; IoU of ``x1, y1, x2, y2`` boxes without the +1 pixel convention)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    b = boxes.detach().double().cpu().numpy()
    b = b + (groups.cpu().numpy()[:, None] * (b.max() + 1))  # groups never overlap
    order = np.argsort(-scores.detach().cpu().numpy(), kind="stable")
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        order = rest[inter / (area[i] + area[rest] - inter) <= iou]
    return torch.as_tensor(np.asarray(keep, np.int64), device=boxes.device)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """facenet-pytorch's last-stage NMS ("Min": overlap over the smaller box, +1 pixel areas),
    for one image."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    b = boxes.cpu().numpy()
    s = scores.cpu().numpy()
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(s)
    pick = []
    while order.size > 0:
        i = order[-1]
        pick.append(i)
        idx = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        o = (w * h) / np.minimum(area[i], area[idx])
        order = order[np.where(o <= threshold)]
    return torch.as_tensor(np.asarray(pick, np.int64), device=boxes.device)


def _imresample(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return interpolate(img, size=size, mode="area")


def _bbreg(box: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    w = box[:, 2] - box[:, 0] + 1
    h = box[:, 3] - box[:, 1] + 1
    box[:, :4] = torch.stack(
        [box[:, 0] + reg[:, 0] * w, box[:, 1] + reg[:, 1] * h,
         box[:, 2] + reg[:, 2] * w, box[:, 3] + reg[:, 3] * h]
    ).permute(1, 0)  # fmt: skip
    return box


def _candidates(reg, probs, scale: float, thresh: float):
    stride, cellsize = 2, 12
    reg = reg.permute(1, 0, 2, 3)
    mask = probs >= thresh
    where = mask.nonzero()
    score = probs[mask]
    reg = reg[:, mask].permute(1, 0)
    bb = where[:, 1:].type(reg.dtype).flip(1)
    q1 = ((stride * bb + 1) / scale).floor()
    q2 = ((stride * bb + cellsize - 1 + 1) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1), where[:, 0]


def _pad(boxes: torch.Tensor, w: int, h: int):
    b = boxes.trunc().int().cpu().numpy()
    x, y, ex, ey = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    return y, ey, x, ex


def _rerec(box: torch.Tensor) -> torch.Tensor:
    h = box[:, 3] - box[:, 1]
    w = box[:, 2] - box[:, 0]
    side = torch.max(w, h)
    box[:, 0] = box[:, 0] + w * 0.5 - side * 0.5
    box[:, 1] = box[:, 1] + h * 0.5 - side * 0.5
    box[:, 2:4] = box[:, :2] + side.repeat(2, 1).permute(1, 0)
    return box


def _integral(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """Summed-area tables (N, H + 1, W + 1, C) of uint8 images, in int32 so every sum is exact
    (a 2**31 / 255-pixel image would overflow them: 8.4 M pixels, beyond any frame here)."""
    tables = np.stack([cv2.integral(np.ascontiguousarray(im), sdepth=cv2.CV_32S) for im in images])
    return torch.as_tensor(tables, device=device)


def _patches(table, inds, boxes, w, h, size):
    """Each box's patch of its image resized to ``size`` x ``size`` with area averaging, as
    facenet-pytorch's ``interpolate(mode="area")`` of the clipped patch, all patches at once.

    Area averaging is adaptive average pooling: output cell ``i`` averages input rows
    ``floor(i * n / size)`` to ``ceil((i + 1) * n / size)`` (and columns alike). Read from the
    images' summed-area tables (:func:`_integral`) the sums are exact, so each value is the mean
    rounded once (torch's float32 pooling may differ from it in the last bit: at most 1.5e-5 on
    0-255 pixels). One call instead of one per box: ~530 calls (90 ms) for ten 720p frames.
    """
    y, ey, x, ex = _pad(boxes, w, h)
    keep = (ey > y - 1) & (ex > x - 1)  # facenet-pytorch drops an empty patch, as here
    y0, x0 = y[keep] - 1, x[keep] - 1
    img = torch.as_tensor(inds.cpu().numpy()[keep], device=table.device)[:, None, None]
    i = np.arange(size)

    def cells(start, length):  # (K, size) first and one-past-last input index of each cell
        n = length[:, None]
        first = start[:, None] + (i * n) // size
        last = start[:, None] - ((-(i + 1) * n) // size)
        return (torch.as_tensor(v.astype(np.int64), device=table.device) for v in (first, last))

    r0, r1 = cells(y0, ey[keep] - y0)
    c0, c1 = cells(x0, ex[keep] - x0)
    r0, r1, c0, c1 = r0[:, :, None], r1[:, :, None], c0[:, None, :], c1[:, None, :]
    sums = table[img, r1, c1] - table[img, r0, c1] - table[img, r1, c0] + table[img, r0, c0]
    count = ((r1 - r0) * (c1 - c0)).unsqueeze(-1)
    mean = (sums.double() / count).float().permute(0, 3, 1, 2)
    return (mean - 127.5) * 0.0078125


class MTCNN:
    """Every face in an RGB uint8 image: boxes (N, 4) ``x1, y1, x2, y2``, probabilities (N,)
    and five landmarks (N, 5, 2), as facenet-pytorch's ``MTCNN(keep_all=True).detect``."""

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        device: torch.device | str = "cpu",
        workers: CoreWorkers | None = None,
    ) -> None:
        self.workers = workers  # P-Net's calls dealt, R-/O-Net's batches split, over them
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor
        self.device = torch.device(device)
        self.pnet, self.rnet, self.onet = load_nets(self.device)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.detect_many([image])[0]

    def detect_many(
        self, images: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`detect` for several images of one size, the networks run on all of them at once
        (facenet-pytorch's batch path): the same boxes as one by one, to float rounding."""
        if len(images) == 0:
            return []
        if len({im.shape for im in images}) != 1:
            raise ValueError("detect_many needs images of one size")
        with torch.inference_mode():
            found = self._detect(images)
        return [(boxes[:, :4], boxes[:, 4], points) for boxes, points in found]

    def _detect(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        thr = self.thresholds
        imgs = torch.as_tensor(np.stack([np.ascontiguousarray(im) for im in images]))
        imgs = imgs.to(self.device).permute(0, 3, 1, 2).float()
        n, (h, w) = imgs.shape[0], imgs.shape[2:4]
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        scales, scale = [], m
        while minl >= 12:
            scales.append(scale)
            scale *= self.factor
            minl *= self.factor

        # first stage: candidates at every scale, suppressed per scale, then across scales
        def first(scale: float, size: tuple[int, int], start: int, stop: int):
            with torch.inference_mode():  # per thread: a worker's call needs its own
                data = _imresample(imgs[start:stop], size)
                reg, probs = self.pnet((data - 127.5) * 0.0078125)
                found, found_inds = _candidates(reg, probs[:, 1], scale, thr[0])
                found_inds = found_inds + start
                return found, found_inds, batched_nms(found[:, :4], found[:, 4], found_inds, 0.5)

        calls = []
        for scale in scales:
            size = (int(h * scale + 1), int(w * scale + 1))
            per_call = max(1, PNET_PIXELS // (size[0] * size[1]))  # large scales: a few at a time
            calls += [(scale, size, a, min(n, a + per_call)) for a in range(0, n, per_call)]
        tasks = [functools.partial(first, *call) for call in calls]
        if self.workers is None:
            results = [task() for task in tasks]
        else:  # the calls are independent: spread over the cores, one thread each
            costs = [(b - a) * size[0] * size[1] + CALL_PIXELS for _, size, a, b in calls]
            results = self.workers.balance(tasks, costs)
        boxes, inds, picks, offset = [], [], [], 0
        for found, found_inds, pick in results:
            boxes.append(found)
            inds.append(found_inds)
            picks.append(pick + offset)
            offset += found.shape[0]
        boxes, inds = torch.cat(boxes)[torch.cat(picks)], torch.cat(inds)[torch.cat(picks)]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes, inds = boxes[pick], inds[pick]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        boxes = torch.stack(
            [boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
             boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh, boxes[:, 4]]
        ).permute(1, 0)  # fmt: skip
        boxes = _rerec(boxes)
        # second stage: refine each candidate at 24 px
        if len(boxes) > 0:
            table = _integral(images, self.device)
            reg, probs = self._on_patches(self.rnet, table, inds, boxes, w, h, 24)
            score = probs[:, 1]
            ok = score > thr[1]
            boxes = torch.cat((boxes[ok, :4], score[ok].unsqueeze(1)), dim=1)
            inds, reg = inds[ok], reg[ok]
            pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
            boxes = _rerec(_bbreg(boxes[pick], reg[pick]))
            inds = inds[pick]
        # third stage: output boxes and landmarks at 48 px
        points = torch.zeros(0, 5, 2, device=self.device)
        if len(boxes) > 0:
            reg, marks, probs = self._on_patches(self.onet, table, inds, boxes, w, h, 48)
            score = probs[:, 1]
            ok = score > thr[2]
            marks = marks[ok].permute(1, 0)
            boxes = torch.cat((boxes[ok, :4], score[ok].unsqueeze(1)), dim=1)
            reg, inds = reg[ok], inds[ok]
            bw = boxes[:, 2] - boxes[:, 0] + 1
            bh = boxes[:, 3] - boxes[:, 1] + 1
            px = bw.repeat(5, 1) * marks[:5, :] + boxes[:, 0].repeat(5, 1) - 1
            py = bh.repeat(5, 1) * marks[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
            points = torch.stack((px, py)).permute(2, 1, 0)
            boxes = _bbreg(boxes, reg)
        out = []
        for k in range(n):  # the last suppression is per image
            mine = (inds == k).nonzero().flatten() if len(boxes) > 0 else inds[:0]
            b, p = boxes[mine], points[mine]
            pick = _nms_min(b[:, :4], b[:, 4], 0.7)
            out.append(
                (b[pick].cpu().numpy().reshape(-1, 5), p[pick].cpu().numpy().reshape(-1, 5, 2))
            )
        return out

    def _on_patches(self, net: nn.Module, table, inds, boxes, w: int, h: int, size: int):
        """``net`` on every box's patch (:func:`_patches`); with workers, the boxes in one part
        per worker, the outputs joined in order (an empty patch is dropped in either way)."""

        def run(rows: range) -> tuple[torch.Tensor, ...]:
            with torch.inference_mode():  # per thread: a worker's call needs its own
                part = slice(rows.start, rows.stop)
                return net(_patches(table, inds[part], boxes[part], w, h, size))

        if self.workers is None:
            return run(range(len(boxes)))
        parts = self.workers.split(run, range(len(boxes)))
        return tuple(torch.cat(outputs) for outputs in zip(*parts, strict=True))
