"""Which number format a run computes in: `runtime.precision` fp32, bf16, fp16 or auto.

bf16 keeps fp32's range with 8 bits of mantissa: the big matmuls (projections, feed-forward, the masked rows'
vocabulary projection) run in it under autocast while the weights, the optimizer and the loss stay fp32. It pays
only where the hardware has bf16 arithmetic: recent GPUs, and CPUs with AVX512-BF16 or AMX, where a bf16 matmul
runs 2-3x an fp32 one; elsewhere it is emulated and slower.

`auto` (the default) decides from facts, not from a timing: bf16 on a GPU that has it, and on a CPU with bf16
arithmetic for a model at least AUTO_MIN_HIDDEN wide, fp32 otherwise. Measured on an AVX512-BF16 CPU
(docs/performance.md): a step is 1.2-2.3x faster from the tiny preset (128 wide) to small, a 10-minute
pretraining makes 1.12x the steps and ends 1.3 points higher in held-out masked-token accuracy (the same
accuracy at equal steps), and
fine-tuning IMDB reaches the same held-out accuracy. A timed choice (as this module made before) can flip on a
loaded machine, and a resumed run must compute as the run it continues; the same facts give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AUTO_MIN_HIDDEN = 128
"""The narrowest model `auto` runs in bf16 on a CPU: the narrowest measured (the tiny preset, 1.2-1.3x a step);
below it the casts around each small matmul are a larger share and nothing was measured."""


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


def resolve(name: str, device: torch.device, hidden: int) -> Precision:
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
    if hidden < AUTO_MIN_HIDDEN:
        return Precision(
            "fp32", f"auto: a {hidden}-wide model is below the {AUTO_MIN_HIDDEN} where bf16 was measured to pay"
        )
    return Precision("bf16", "auto: this CPU has bf16 arithmetic; matmuls in bf16, weights and optimizer in fp32")
