"""`compile = true` in a training section: the training step through torch.compile, with a way back.

Opt-in because on the CPUs bert2 is built for it rarely pays: measured on 2 EPYC cores, BERT-Tiny's first step
took 28 s to compile and later steps ran ~4% faster (136 vs 142 ms), so a 10-minute run gains about nothing;
bigger models on a GPU gain more (docs/performance.md). Compiling can fail where eager runs (no C++ compiler,
an unsupported op): the first step then runs again eagerly, the run says why, and nothing is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class CompiledStep:
    """forward + backward of one micro-batch, compiled on first use; eager after a compile failure."""

    def __init__(self, module: nn.Module, log: Callable[[str, str], None]):
        self.eager = module
        self.compiled: Any = torch.compile(module, dynamic=True)
        self.log = log
        self.state = "untried"  # untried -> compiled | eager

    def __call__(self, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor], forward_ctx, backward):
        if self.state == "eager":
            return self._run(self.eager, batch, totals, forward_ctx, backward)
        if self.state == "compiled":
            return self._run(self.compiled, batch, totals, forward_ctx, backward)
        t0 = time.perf_counter()
        try:
            out = self._run(self.compiled, batch, totals, forward_ctx, backward)
        except Exception as e:  # any compiler failure: the step is redone eagerly below
            self.state = "eager"
            for p in self.eager.parameters():
                p.grad = None  # a half-finished backward must not leak into the eager step
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            self.log(
                f"compile = true: torch.compile failed ({type(e).__name__}: {reason}); training eagerly", "warning"
            )
            return self._run(self.eager, batch, totals, forward_ctx, backward)
        self.state = "compiled"
        self.log(f"compile = true: compiled the training step in {time.perf_counter() - t0:.1f} s", "info")
        return out

    @staticmethod
    def _run(fn, batch, totals, forward_ctx, backward):
        with forward_ctx():
            loss, parts = fn(batch, totals)
        backward(loss)
        return loss, parts
