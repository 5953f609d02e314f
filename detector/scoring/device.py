"""Device and thread choices in one place: a GPU when present, otherwise all CPU cores."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from detector.errors import BadSettingsError


def resolve_device(wanted: str = "auto") -> torch.device:
    """ "auto" picks CUDA when available, else CPU; asking for CUDA without a GPU is an error."""
    wanted = (wanted or "auto").lower()
    if wanted == "auto":
        from detector.settings import device

        wanted = device()
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise BadSettingsError("--device cuda was asked for but no CUDA GPU is available")
    if wanted not in ("cpu",) and not wanted.startswith("cuda"):
        raise BadSettingsError(f"unknown device {wanted!r}; use auto, cpu or cuda")
    return torch.device(wanted)


def release_free_memory() -> None:
    """Hand memory the allocator holds but no longer uses back to the OS (glibc ``malloc_trim``).

    Loading a model passes through float32 copies that are freed at once, but glibc keeps such
    freed heap memory mapped, so the process would stay as large as its loading peak. Called
    after loading the ensemble and before its worker threads score (they allocate from their
    own arenas); a no-op where glibc is absent.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return
    trim(0)


# --- CPU instruction sets -----------------------------------------------------------------------

# the flags (as /proc/cpuinfo spells them) that change which kernels run, and so speed and the
# precision worth using: bf16 is native only with AVX-512 BF16 or AMX, int8 is fast with VNNI/AMX
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
)
# oneDNN's ISA names, weakest first; ONEDNN_MAX_CPU_ISA caps the kernels at one of them
ONEDNN_ISAS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX10_1_512",
    "AVX512_CORE_FP16",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX512_CORE_AMX_FP16",
)
# the environment that emulates a weaker CPU: oneDNN (convolutions, frozen graphs), torch's own
# vectorised kernels, MKL (matrix multiplies) and FBGEMM (int8 matrix products) each have their
# own switch. FBGEMM's matters for int8 numerics, not only speed: without VNNI its u8 x s8 products
# saturate pairwise, which is why PyTorch's int8 layers keep activations to 7 bits by default
ISA_CAPS = {
    "AVX2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "AVX512_CORE": {
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "ATEN_CPU_CAPABILITY": "avx512",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "FBGEMM_ENABLE_INSTRUCTIONS": "AVX512",
    },
    "AVX512_CORE_VNNI": {
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI",
        "ATEN_CPU_CAPABILITY": "avx512",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "FBGEMM_ENABLE_INSTRUCTIONS": "AVX512_E1",
    },
    # AVX-512 BF16 without AMX (as AMD EPYC 9004 and Intel Cooper Lake have): on a CPU with AMX,
    # the bf16 path such CPUs run. MKL's AVX512_E3 is AVX-512 with bf16, short of E4 (AMX)
    "AVX512_CORE_BF16": {
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16",
        "ATEN_CPU_CAPABILITY": "avx512",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512_E3",
        "FBGEMM_ENABLE_INSTRUCTIONS": "AVX512_E1",
    },
}


def cpu_flags() -> tuple[str, ...]:
    """The instruction-set flags of :data:`ISA_FLAGS` this CPU reports (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="ignore") as fh:
            text = fh.read()
    except OSError:
        return ()
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return tuple(f for f in ISA_FLAGS if f in have)
    return ()


def isa_cap() -> str | None:
    """The oneDNN ISA cap set in the environment (``ONEDNN_MAX_CPU_ISA`` or ``DNNL_MAX_CPU_ISA``)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.upper() if cap and cap.upper() != "ALL" else None


def partial_isa_cap() -> str | None:
    """What is missing when ``ONEDNN_MAX_CPU_ISA`` names one of :data:`ISA_CAPS` but MKL's or
    torch's own switch is not set to match (None when the cap is whole, or there is none).

    Such a process runs kernels no CPU has together: with oneDNN alone capped at
    AVX512_CORE_BF16 on an AMX Xeon, MKL still ran bf16 matrix products on AMX tiles, and the
    CLIP member's bf16 scores differed from those of the whole cap by up to 0.03 (2026-12-05i).
    """
    cap = isa_cap()
    want = ISA_CAPS.get(cap or "", {})
    off = [f"{k}={v}" for k, v in want.items() if os.environ.get(k, "").upper() != v.upper()]
    return f"ONEDNN_MAX_CPU_ISA={cap} without {' '.join(off)}" if off else None


def run_capped(module: str, isa: str, argv: Sequence[str]) -> int:
    """``python -m module argv`` again in a child with every switch of ``ISA_CAPS[isa]`` set
    (they must be set before torch starts); its exit code."""
    import subprocess
    import sys

    env = {**os.environ, **ISA_CAPS[isa]}
    return subprocess.run([sys.executable, "-m", module, *argv], env=env).returncode


def refuse_partial_isa_cap() -> None:
    """Stop a measurement that records per-path figures when the ISA cap is partial."""
    if why := partial_isa_cap():
        raise SystemExit(
            f"{why}: a partial cap mixes kernels no CPU has; pass --isa (it sets every switch) "
            "or set all of them"
        )


def rerun_capped_if_asked(module: str, isa: str | None, argv: Sequence[str]) -> int | None:
    """For a script's ``--isa``: when ``isa`` is asked and this process is not yet capped at it,
    run the script again with the whole cap (:func:`run_capped`) and return its exit code;
    otherwise refuse a partial cap (:func:`refuse_partial_isa_cap`) and return None (go on)."""
    if isa and isa_cap() != isa:
        return run_capped(module, isa, argv)
    refuse_partial_isa_cap()
    return None


def _allowed(isa: str) -> bool:
    cap = isa_cap()
    if cap is None or cap not in ONEDNN_ISAS:
        return True
    return ONEDNN_ISAS.index(isa) <= ONEDNN_ISAS.index(cap)


def native_bf16() -> bool:
    """Whether bf16 runs natively (AVX-512 BF16 or AMX, not capped away); elsewhere it is
    emulated and slower than float32."""
    return bf16_kernels() is not None


def bf16_kernels() -> str | None:
    """Which kernels run bf16 here: "AMX" (matrix tiles), "AVX512_BF16" (vector dot products,
    no AMX or AMX capped away), or None (no native bf16). The two round differently: the same
    bf16 member's scores differ between them by up to about 0.01, so each is its own
    precision path for the calibration."""
    flags = cpu_flags()
    if "amx_bf16" in flags and _allowed("AVX512_CORE_AMX"):
        return "AMX"
    if "avx512_bf16" in flags and _allowed("AVX512_CORE_BF16"):
        return "AVX512_BF16"
    return None


def cpu_path() -> str:
    """A short name of the kernels this process can use: the cap if one is set, else the best
    of AMX / AVX512_BF16 / AVX512_VNNI / AVX512 / AVX2_VNNI / AVX2 the CPU has."""
    cap = isa_cap()
    if cap:
        return cap
    flags = cpu_flags()
    for flag, name in (
        ("amx_bf16", "AMX"),
        ("avx512_bf16", "AVX512_BF16"),
        ("avx512_vnni", "AVX512_VNNI"),
        ("avx512f", "AVX512"),
        ("avx_vnni", "AVX2_VNNI"),
        ("avx2", "AVX2"),
    ):
        if flag in flags:
            return name
    return "baseline"
