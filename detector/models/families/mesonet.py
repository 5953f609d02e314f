"""MesoNet: Meso4 and MesoInception4, ported from the authors' Keras code to PyTorch.

Afchar, Nozick, Yamagishi & Echizen, "MesoNet: a Compact Facial Video Forgery Detection Network",
IEEE WIFS 2018 (arXiv:1809.00888); original code and weights: github.com/DariusAf/MesoNet
(Apache-2.0).

Two small CNNs that look at "mesoscopic" detail of a 256x256 RGB face crop in [0, 1]. The port keeps
the Keras layer order (conv + ReLU, then BatchNorm with eps 1e-3, then max-pooling) and reproduces
Keras ``padding="same"`` for the pools. Flatten follows the NCHW order; the converter
(``scripts/convert_mesonet.py``) permutes the first dense kernel from Keras' NHWC flatten order.

The original head ends in a sigmoid giving P(real) (Keras class folders df=0, real=1). These
networks return the logit before that sigmoid, shape (N, 1); the specs say ``positive_class="real"``
so the registry negates it into a fake logit.

Note on Meso4: the released Meso4 .h5 files list no ``leaky_re_lu`` layer (the MesoInception files
do), so the training-time model may have had a linear first dense layer or an activation inside it.
This port follows the published ``classifiers.py`` (``LeakyReLU(0.1)`` in both networks), which is
what the authors' example code runs with these weights and what reproduces the reference outputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from detector.models.spec import ModelSpec

KERAS_BN_EPS = 1e-3


class KerasSameMaxPool2d(nn.Module):
    """Max-pooling with stride = pool size and Keras/TensorFlow ``padding="same"``.

    TensorFlow pads only when the size is not a multiple of the stride, with the extra row/column
    at the bottom/right; padded cells never win the max. At 256x256 no padding is ever needed.
    """

    def __init__(self, pool_size: int) -> None:
        super().__init__()
        self.pool_size = pool_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.pool_size
        pads: list[int] = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: width first, then height
            total = max((math.ceil(size / k) - 1) * k + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads, value=float("-inf"))
        return F.max_pool2d(x, kernel_size=k, stride=k)

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}"


def _conv_relu(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    """Keras ``Conv2D(..., padding="same", activation="relu")`` for odd kernels and stride 1."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation),
        nn.ReLU(),  # not in-place: keeps Grad-CAM hooks safe
    )


class InceptionLayer(nn.Module):
    """MesoInception block: four branches (1x1; 1x1-3x3; 1x1-3x3 dilated 2; 1x1-3x3 dilated 3).

    Outputs are concatenated in branch order, giving ``a + b + c + d`` channels.
    """

    def __init__(self, in_ch: int, a: int, b: int, c: int, d: int) -> None:
        super().__init__()
        self.branch1 = _conv_relu(in_ch, a, 1)
        self.branch2 = nn.Sequential(_conv_relu(in_ch, b, 1), _conv_relu(b, b, 3))
        self.branch3 = nn.Sequential(_conv_relu(in_ch, c, 1), _conv_relu(c, c, 3, dilation=2))
        self.branch4 = nn.Sequential(_conv_relu(in_ch, d, 1), _conv_relu(d, d, 3, dilation=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class _MesoHead(nn.Module):
    """Flatten -> Dropout -> Dense(16) -> LeakyReLU(0.1) -> Dropout -> Dense(1), no sigmoid."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.drop1 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(in_features, 16)
        self.act = nn.LeakyReLU(0.1)
        self.drop2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return self.fc2(self.drop2(self.act(self.fc1(self.drop1(x)))))


class Meso4(nn.Module):
    """Meso4: four conv/BN/pool blocks and a 16-unit dense layer; returns the P(real) logit."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _conv_relu(3, 8, 3)
        self.bn1 = nn.BatchNorm2d(8, eps=KERAS_BN_EPS)
        self.pool1 = KerasSameMaxPool2d(2)
        self.conv2 = _conv_relu(8, 8, 5)
        self.bn2 = nn.BatchNorm2d(8, eps=KERAS_BN_EPS)
        self.pool2 = KerasSameMaxPool2d(2)
        self.conv3 = _conv_relu(8, 16, 5)
        self.bn3 = nn.BatchNorm2d(16, eps=KERAS_BN_EPS)
        self.pool3 = KerasSameMaxPool2d(2)
        self.conv4 = _conv_relu(16, 16, 5)
        self.bn4 = nn.BatchNorm2d(16, eps=KERAS_BN_EPS)
        self.pool4 = KerasSameMaxPool2d(4)
        self.head = _MesoHead(16 * 8 * 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.bn1(self.conv1(x)))
        x = self.pool2(self.bn2(self.conv2(x)))
        x = self.pool3(self.bn3(self.conv3(x)))
        x = self.pool4(self.bn4(self.conv4(x)))
        return self.head(x)


class MesoInception4(nn.Module):
    """MesoInception4: two inception blocks, two 5x5 conv blocks, dense head; P(real) logit."""

    def __init__(self) -> None:
        super().__init__()
        self.inc1 = InceptionLayer(3, 1, 4, 4, 2)
        self.bn1 = nn.BatchNorm2d(11, eps=KERAS_BN_EPS)
        self.pool1 = KerasSameMaxPool2d(2)
        self.inc2 = InceptionLayer(11, 2, 4, 4, 2)
        self.bn2 = nn.BatchNorm2d(12, eps=KERAS_BN_EPS)
        self.pool2 = KerasSameMaxPool2d(2)
        self.conv3 = _conv_relu(12, 16, 5)
        self.bn3 = nn.BatchNorm2d(16, eps=KERAS_BN_EPS)
        self.pool3 = KerasSameMaxPool2d(2)
        self.conv4 = _conv_relu(16, 16, 5)
        self.bn4 = nn.BatchNorm2d(16, eps=KERAS_BN_EPS)
        self.pool4 = KerasSameMaxPool2d(4)
        self.head = _MesoHead(16 * 8 * 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.bn1(self.inc1(x)))
        x = self.pool2(self.bn2(self.inc2(x)))
        x = self.pool3(self.bn3(self.conv3(x)))
        x = self.pool4(self.bn4(self.conv4(x)))
        return self.head(x)


_ORIGIN = "original MesoNet authors' weights, output P(real) inverted"

SPECS: list[ModelSpec] = []  # this family's members, read by detector.models.registry

SPECS.append(
    ModelSpec(
        name="meso4_df",
        family="MesoNet",
        factory=Meso4,
        input_size=256,
        positive_class="real",
        gradcam_layer="bn4",
        batch_size=8,  # measured on mesoinception4_f2f; Meso4 is the same size class
        description=f"Meso4 trained on the MesoNet Deepfake dataset ({_ORIGIN}).",
    )
)
SPECS.append(
    ModelSpec(
        name="meso4_f2f",
        family="MesoNet",
        factory=Meso4,
        input_size=256,
        positive_class="real",
        gradcam_layer="bn4",
        batch_size=8,  # measured on mesoinception4_f2f; Meso4 is the same size class
        description=f"Meso4 trained on FaceForensics Face2Face ({_ORIGIN}).",
    )
)
SPECS.append(
    ModelSpec(
        name="mesoinception4_df",
        family="MesoNet",
        factory=MesoInception4,
        input_size=256,
        positive_class="real",
        gradcam_layer="bn4",
        batch_size=8,  # measured on mesoinception4_f2f; Meso4 is the same size class
        description=f"MesoInception4 trained on the MesoNet Deepfake dataset ({_ORIGIN}).",
    )
)
SPECS.append(
    ModelSpec(
        name="mesoinception4_f2f",
        family="MesoNet",
        factory=MesoInception4,
        input_size=256,
        positive_class="real",
        gradcam_layer="bn4",
        batch_size=8,  # measured on mesoinception4_f2f; Meso4 is the same size class
        description=f"MesoInception4 trained on FaceForensics Face2Face ({_ORIGIN}).",
    )
)
