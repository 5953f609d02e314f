"""Inference graphs of the networks on a CPU: each per-frame member traced and frozen once
(:func:`freeze_for_cpu`), after exact rewrites that make its graph cheaper (:func:`fold_quick_gelu`).

:mod:`detector.scoring.frozen` caches what is built here on disk, keyed by this code among the
rest (:func:`detector.scoring.frozen.code_digest`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from detector.models import ModelSpec

QUICK_GELU_SCALE = 1.702  # QuickGELU(x) = x * sigmoid(1.702 x) (CLIP; timm.layers.QuickGELU)
FOLDED_FAMILIES = {"CLIP ViT"}  # the families whose MLPs use QuickGELU (fold_quick_gelu)


def fold_quick_gelu(module: nn.Module) -> int:
    """Rewrite every MLP ``fc2(QuickGELU(fc1(x)))`` as ``fc2'(SiLU(fc1'(x)))``, with fc1's weight
    and bias times 1.702 and fc2's weight divided by it: the same function (SiLU(1.702 z) / 1.702
    = z * sigmoid(1.702 z)), one elementwise kernel instead of three. Done on the float32
    weights before the bf16 cast; returns how many MLPs were rewritten.

    In bf16 on AMX the CLIP member's three-op activation was a fifth of its time: 78.8 -> 62.5 ms
    per crop on one core (a throwaway probe on 60 FF++ frames, p_fake against eager float32
    unchanged: correlation 0.9995 against 0.9996, mean |dp| 0.009 against 0.0095). In float32
    on AVX2, where the matrix products dominate, it gained 1 %, so float32 graphs are left as
    they were.
    """
    from timm.layers import QuickGELU

    folded = 0
    for mlp in module.modules():
        fc1, act, fc2 = (getattr(mlp, n, None) for n in ("fc1", "act", "fc2"))
        if isinstance(act, QuickGELU) and isinstance(fc1, nn.Linear) and isinstance(fc2, nn.Linear):
            with torch.no_grad():
                fc1.weight.mul_(QUICK_GELU_SCALE)
                if fc1.bias is not None:
                    fc1.bias.mul_(QUICK_GELU_SCALE)
                fc2.weight.div_(QUICK_GELU_SCALE)
            mlp.act = nn.SiLU()
            folded += 1
    return folded


def bf16_graph_revision(spec: ModelSpec) -> int:
    """Which frozen bf16 graph a member has, for caches of its scores (``scripts/crossval.py``):
    2 where :func:`freeze_for_cpu` folds QuickGELU (:func:`fold_quick_gelu`), else 1."""
    return 2 if spec.family in FOLDED_FAMILIES else 1


def freeze_for_cpu(module: nn.Module, spec: ModelSpec, low_precision: bool) -> nn.Module:
    """The member as a frozen TorchScript graph for CPU inference (same scores, less time).

    Freezing folds BatchNorm into the preceding convolutions and lets oneDNN pick channels-last
    kernels once; with ``low_precision`` the weights are bf16 (folded in bf16, which the
    validation AUC in the manifest was measured with: ``scripts/check_precision.py``). Measured
    on the 2-core CPU: Xception 22.8 -> 15.0 ms per crop in bf16; ``torch.compile`` reached the
    same 16 ms after a 25 s compile per model and needs a C++ compiler at run time, so TorchScript
    it is, although ``torch.jit.trace`` is deprecated (its warning is silenced here).
    Only per-frame members with a fixed input size are frozen: the traced graph fixes every
    spatial size (MesoNet's padding is computed from it) while the batch size stays free. In bf16,
    the CLIP member's QuickGELU is folded into a SiLU first (:func:`fold_quick_gelu`; the module
    is changed in place, as by the casts).
    """
    dtype = torch.bfloat16 if low_precision else torch.float32
    if low_precision and spec.family in FOLDED_FAMILIES and not fold_quick_gelu(module):
        raise ValueError(f"{spec.name}: no QuickGELU MLP to fold; FOLDED_FAMILIES is wrong")
    module = module.to(dtype).to(memory_format=torch.channels_last).eval()
    size = spec.input_size
    example = torch.zeros(spec.batch_size, 3, size, size, dtype=dtype)
    example = example.contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # deprecation of jit.trace; constant-size trace notes
        frozen = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
        for _ in range(2):  # the profiling executor optimises the graph on its first runs
            frozen(example)
    return frozen
