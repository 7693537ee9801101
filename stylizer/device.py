"""Device and precision choice: CUDA when present, else CPU; bf16 autocast where it pays."""

from __future__ import annotations

import functools
import os

import torch

DEVICE_ENV = "FEDVST_DEVICE"
PRECISIONS = ("auto", "bf16", "fp32")


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` or $FEDVST_DEVICE or 'auto' (cuda if available, else cpu); ValueError for any
    other name, or for CUDA that is not there."""
    name = requested or os.environ.get(DEVICE_ENV) or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch lists every backend it knows, most of which we never run on
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} requested but there are {torch.cuda.device_count()} CUDA devices")
    return device


@functools.cache
def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            return handle.read()
    except OSError:
        return ""


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 dot products (AVX512_BF16 or AMX) and oneDNN may use them
    (an ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16 rules them out)."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if limit and limit != "ALL" and "BF16" not in limit and "AMX" not in limit:
        return False
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_vector_path() -> str:
    """The widest vector path the CPU offers: 'avx512+bf16', 'avx512', 'avx2' or 'other' (what benchmarks print),
    with the limit oneDNN (torch's convolutions) and numba were held to, if any (ONEDNN_MAX_CPU_ISA, NUMBA_CPU_NAME)."""
    flags = _cpu_flags()
    if "avx512f" in flags:
        path = "avx512+bf16" if cpu_has_fast_bf16() else "avx512"
    else:
        path = "avx2" if "avx2" in flags else "other"
    limits = [f"{name}={os.environ[name]}" for name in ("ONEDNN_MAX_CPU_ISA", "NUMBA_CPU_NAME") if os.environ.get(name)]
    return f"{path} ({', '.join(limits)})" if limits else path


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or None for plain float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        supported = cpu_has_fast_bf16()
    else:
        supported = False
    if precision == "bf16" and not supported and device.type != "cpu":
        raise ValueError(f"bf16 is not supported on {device}")
    return torch.bfloat16 if (supported or precision == "bf16") else None
