"""AASIST: a spoofing countermeasure on the raw waveform, with spectro-temporal graph attention.

Jung et al., "AASIST: Audio Anti-Spoofing using Integrated Spectro-Temporal Graph Attention
Networks", ICASSP 2022. This is the authors' network (``models/AASIST.py``, Copyright (c)
2021-present NAVER Corp., MIT licence) with the same module and parameter names, so that their
ASVspoof 2019 LA checkpoint loads strictly. Only the inference path is kept: the frequency mask
used as training augmentation is left out, and the fixed sinc filters are a non-persistent buffer
computed once. One quirk of the original is kept on purpose, because the weights were trained
with it: a residual block computes ``bn1``/``selu`` and then convolves its *input*, not their
output.

Input: 16 kHz mono float32 waveform windows of :data:`WINDOW_SAMPLES` samples (about 4 s), no
peak normalisation (the authors' data loader reads the file and only tiles or cuts it). Output:
two logits per window, index 1 = bona fide. The registered member
(:mod:`detector.models.families.aasist`) outputs their margin, spoof minus bona fide; the voice
score is a sigmoid of that margin (:mod:`detector.audio.score`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16_000
BONA_FIDE_INDEX = 1  # the output logit for genuine speech; index 0 is spoof
WINDOW_SAMPLES = 64_600  # the authors' ``nb_samp``
CONFIG = {
    "architecture": "AASIST",
    "nb_samp": WINDOW_SAMPLES,
    "first_conv": 128,
    "filts": [70, [1, 32], [32, 32], [32, 64], [64, 64]],
    "gat_dims": [64, 32],
    "pool_ratios": [0.5, 0.7, 0.5, 0.5],
    "temperatures": [2.0, 2.0, 100.0, 100.0],
}
"""The authors' ``AASIST.conf`` model configuration (checked against the shipped one on
conversion)."""


class GraphAttentionLayer(nn.Module):
    """Graph attention over the nodes of one domain (spectral or temporal)."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = nn.Parameter(torch.empty(out_dim, 1))
        nn.init.xavier_normal_(self.att_weight)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.act = nn.SELU()
        self.temp = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = torch.tanh(self.att_proj(_pairwise(x)))
        att = F.softmax(torch.matmul(att, self.att_weight) / self.temp, dim=-2)
        x = self.proj_with_att(torch.matmul(att.squeeze(-1), x)) + self.proj_without_att(x)
        return self.act(_bn_nodes(self.bn, x))


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous graph attention across the spectral and temporal node sets, with a master
    node."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight22 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight12 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weightM = nn.Parameter(torch.empty(out_dim, 1))
        for p in (self.att_weight11, self.att_weight22, self.att_weight12, self.att_weightM):
            nn.init.xavier_normal_(p)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.act = nn.SELU()
        self.temp = temperature

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n1, n2 = x1.size(1), x2.size(1)
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)
        # master node update
        att_m = torch.tanh(self.att_projM(x * master))
        att_m = F.softmax(torch.matmul(att_m, self.att_weightM) / self.temp, dim=-2)
        master = self.proj_with_attM(
            torch.matmul(att_m.squeeze(-1).unsqueeze(1), x)
        ) + self.proj_without_attM(master)
        # node update with type-aware attention weights
        att = torch.tanh(self.att_proj(_pairwise(x)))
        board = torch.zeros_like(att[..., :1])
        board[:, :n1, :n1] = torch.matmul(att[:, :n1, :n1], self.att_weight11)
        board[:, n1:, n1:] = torch.matmul(att[:, n1:, n1:], self.att_weight22)
        board[:, :n1, n1:] = torch.matmul(att[:, :n1, n1:], self.att_weight12)
        board[:, n1:, :n1] = torch.matmul(att[:, n1:, :n1], self.att_weight12)
        att = F.softmax(board / self.temp, dim=-2)
        x = self.proj_with_att(torch.matmul(att.squeeze(-1), x)) + self.proj_without_att(x)
        x = self.act(_bn_nodes(self.bn, x))
        return x.narrow(1, 0, n1), x.narrow(1, n1, n2), master


class GraphPool(nn.Module):
    """Keep the top ``k`` share of nodes by a learned score (scaled by that score)."""

    def __init__(self, k: float, in_dim: int) -> None:
        super().__init__()
        self.k = k
        self.proj = nn.Linear(in_dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        scores = torch.sigmoid(self.proj(h))
        n_keep = max(int(h.size(1) * self.k), 1)
        _, idx = torch.topk(scores, n_keep, dim=1)
        return torch.gather(h * scores, 1, idx.expand(-1, -1, h.size(2)))


class SincConv(nn.Module):
    """Fixed mel-spaced band-pass sinc filters (the authors' ``CONV``: not trained)."""

    def __init__(self, out_channels: int, kernel_size: int, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        kernel_size += 1 - kernel_size % 2  # odd, symmetric filters
        nfft = 512
        f = int(sample_rate / 2) * np.linspace(0, 1, nfft // 2 + 1)
        fmel = 2595 * np.log10(1 + f / 700)
        edges_mel = np.linspace(fmel.min(), fmel.max(), out_channels + 1)
        edges = 700 * (10 ** (edges_mel / 2595) - 1)
        hsupp = torch.arange(-(kernel_size - 1) / 2, (kernel_size - 1) / 2 + 1)
        band = torch.zeros(out_channels, kernel_size)
        window = torch.tensor(np.hamming(kernel_size), dtype=torch.float32)
        for i in range(out_channels):
            fmin, fmax = edges[i], edges[i + 1]
            high = (2 * fmax / sample_rate) * np.sinc(2 * fmax * hsupp / sample_rate)
            low = (2 * fmin / sample_rate) * np.sinc(2 * fmin * hsupp / sample_rate)
            band[i] = window * torch.as_tensor(high - low, dtype=torch.float32)
        self.register_buffer("filters", band.view(out_channels, 1, kernel_size), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.filters)


class Residual_block(nn.Module):  # the authors' name, kept for the state-dict keys
    def __init__(self, nb_filts: list[int], first: bool = False) -> None:
        super().__init__()
        self.first = first
        if not first:
            self.bn1 = nn.BatchNorm2d(nb_filts[0])
        self.conv1 = nn.Conv2d(nb_filts[0], nb_filts[1], kernel_size=(2, 3), padding=(1, 1))
        self.selu = nn.SELU()
        self.bn2 = nn.BatchNorm2d(nb_filts[1])
        self.conv2 = nn.Conv2d(nb_filts[1], nb_filts[1], kernel_size=(2, 3), padding=(0, 1))
        self.downsample = nb_filts[0] != nb_filts[1]
        if self.downsample:
            self.conv_downsample = nn.Conv2d(
                nb_filts[0], nb_filts[1], kernel_size=(1, 3), padding=(0, 1)
            )
        self.mp = nn.MaxPool2d((1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The original computes selu(bn1(x)) here and discards it; conv1 reads x (see the module
        # docstring). Skipping the dead computation gives the same output.
        out = self.conv2(self.selu(self.bn2(self.conv1(x))))
        identity = self.conv_downsample(x) if self.downsample else x
        return self.mp(out + identity)


class AASIST(nn.Module):
    """The AASIST network; ``forward`` returns (N, 2) logits, index 1 = bona fide."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        c = config or CONFIG
        filts, gat_dims = c["filts"], c["gat_dims"]
        pool, temps = c["pool_ratios"], c["temperatures"]
        self.conv_time = SincConv(filts[0], c["first_conv"])
        self.first_bn = nn.BatchNorm2d(1)
        self.selu = nn.SELU()
        self.encoder = nn.Sequential(
            nn.Sequential(Residual_block(filts[1], first=True)),
            *(nn.Sequential(Residual_block(f)) for f in (filts[2], filts[3], *[filts[4]] * 3)),
        )
        self.pos_S = nn.Parameter(torch.randn(1, 23, filts[-1][-1]))
        self.master1 = nn.Parameter(torch.randn(1, 1, gat_dims[0]))
        self.master2 = nn.Parameter(torch.randn(1, 1, gat_dims[0]))
        self.GAT_layer_S = GraphAttentionLayer(filts[-1][-1], gat_dims[0], temps[0])
        self.GAT_layer_T = GraphAttentionLayer(filts[-1][-1], gat_dims[0], temps[1])
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(gat_dims[0], gat_dims[1], temps[2])
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(gat_dims[1], gat_dims[1], temps[2])
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(gat_dims[0], gat_dims[1], temps[2])
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(gat_dims[1], gat_dims[1], temps[2])
        self.pool_S = GraphPool(pool[0], gat_dims[0])
        self.pool_T = GraphPool(pool[1], gat_dims[0])
        self.pool_hS1 = GraphPool(pool[2], gat_dims[1])
        self.pool_hT1 = GraphPool(pool[2], gat_dims[1])
        self.pool_hS2 = GraphPool(pool[2], gat_dims[1])
        self.pool_hT2 = GraphPool(pool[2], gat_dims[1])
        self.out_layer = nn.Linear(5 * gat_dims[1], 2)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """The 160-d hidden vector before the output layer, for waveforms (N, samples)."""
        x = self.conv_time(wave.unsqueeze(1)).unsqueeze(1)
        x = self.selu(self.first_bn(F.max_pool2d(torch.abs(x), (3, 3))))
        e = self.encoder(x)
        e_abs = torch.abs(e)
        out_S = self.pool_S(self.GAT_layer_S(e_abs.amax(dim=3).transpose(1, 2) + self.pos_S))
        out_T = self.pool_T(self.GAT_layer_T(e_abs.amax(dim=2).transpose(1, 2)))
        branches = []
        for first, second, pool_s, pool_t, master in (
            (self.HtrgGAT_layer_ST11, self.HtrgGAT_layer_ST12, self.pool_hS1, self.pool_hT1,
             self.master1),
            (self.HtrgGAT_layer_ST21, self.HtrgGAT_layer_ST22, self.pool_hS2, self.pool_hT2,
             self.master2),
        ):  # fmt: skip
            t, s, m = first(out_T, out_S, master)
            s, t = pool_s(s), pool_t(t)
            t_aug, s_aug, m_aug = second(t, s, m)
            branches.append((t + t_aug, s + s_aug, m + m_aug))
        (t1, s1, m1), (t2, s2, m2) = branches
        out_T, out_S, master = torch.max(t1, t2), torch.max(s1, s2), torch.max(m1, m2)
        return torch.cat(
            [
                out_T.abs().amax(dim=1),
                out_T.mean(dim=1),
                out_S.abs().amax(dim=1),
                out_S.mean(dim=1),
                master.squeeze(1),
            ],
            dim=1,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.out_layer(self.embed(wave))


def _pairwise(x: torch.Tensor) -> torch.Tensor:
    """(N, nodes, dim) -> (N, nodes, nodes, dim): the element-wise product of every node pair."""
    n = x.size(1)
    x = x.unsqueeze(2).expand(-1, -1, n, -1)
    return x * x.transpose(1, 2)


def _bn_nodes(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    return bn(x.reshape(-1, x.size(-1))).reshape(x.shape)
