"""Which number format a run computes in: `runtime.precision` fp32, bf16, fp16 or auto.

bf16 keeps fp32's range with 8 bits of mantissa: the big matmuls (projections, feed-forward, the masked rows'
vocabulary projection) run in it under autocast while the weights, the optimizer and the loss stay fp32. It pays
only where the hardware has bf16 arithmetic: recent GPUs, and CPUs with AVX512-BF16 or AMX, where a bf16 matmul
runs 2-3x an fp32 one; elsewhere it is emulated and slower. `auto` decides by measuring: a matmul of the model's
own feed-forward shape in both formats (a tenth of a second), and bf16 only when it is clearly faster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

AUTO_MIN_SPEEDUP = 1.3
"""How much faster a bf16 matmul must be for `auto` to choose it (below this, casts eat the gain)."""


@dataclass
class Precision:
    name: str  # fp32 | bf16 | fp16
    reason: str


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX512-BF16 or AMX tiles); False when torch cannot tell."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:
            continue
    return False


def _best_time(a: torch.Tensor, b: torch.Tensor, rounds: int = 5) -> float:
    a @ b  # warm up (allocation, kernel choice)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return best


def bf16_speedup(hidden: int, intermediate: int, rows: int = 4096) -> float:
    """fp32 time / bf16 time of a (rows x hidden) @ (hidden x intermediate) matmul, the best of a few of each,
    taken in turns so that another process's load hits both alike."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(rows, hidden, generator=g)
    b = torch.randn(hidden, intermediate, generator=g)
    fp32 = bf16 = float("inf")
    for _ in range(3):
        fp32 = min(fp32, _best_time(a, b))
        bf16 = min(bf16, _best_time(a.bfloat16(), b.bfloat16()))
    return fp32 / bf16


def resolve(name: str, device: torch.device, hidden: int, intermediate: int) -> Precision:
    """The precision a run uses for `runtime.precision` = `name`, and why (said in the run's log)."""
    if name != "auto":
        return Precision(name, f"runtime.precision = {name}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "auto: this GPU computes in bf16")
        return Precision("fp32", "auto: this GPU has no bf16")
    if device.type != "cpu":
        return Precision("fp32", f"auto: fp32 on {device.type}")
    if not cpu_has_bf16():
        return Precision("fp32", "auto: this CPU has no bf16 arithmetic (AVX512-BF16 or AMX)")
    speedup = bf16_speedup(hidden, intermediate)
    if speedup >= AUTO_MIN_SPEEDUP:
        return Precision("bf16", f"auto: a {hidden}x{intermediate} matmul ran {speedup:.1f}x faster in bf16 here")
    return Precision("fp32", f"auto: bf16 was only {speedup:.1f}x fp32 at {hidden}x{intermediate} here")
