"""Learning-rate schedules: linear warm-up, then linear / cosine decay or constant, over steps or wall time.

The schedule is a pure function of progress in [0, 1] so that resuming at step N (or at elapsed time t) lands on
exactly the same point of the curve, and a time budget (Cramming's trick) can reuse the same shapes.
"""

from __future__ import annotations

import math


def lr_factor(step: int, warmup_steps: int, progress: float, kind: str) -> float:
    """Multiplier of the peak learning rate at `step`, with `progress` = fraction of the run done."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress  # linear


class Schedule:
    """Sets the optimizer's learning rate each step; by steps, or by elapsed seconds under a time budget."""

    def __init__(self, peak_lr: float, warmup_steps: int, total_steps: int, kind: str, budget_s: float = 0.0):
        self.peak_lr = peak_lr
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.kind = kind
        self.budget_s = budget_s

    def progress(self, step: int, elapsed_s: float) -> float:
        if self.budget_s > 0:
            return elapsed_s / self.budget_s
        span = max(1, self.total_steps - self.warmup_steps)
        return (step - self.warmup_steps) / span

    def lr(self, step: int, elapsed_s: float = 0.0) -> float:
        return self.peak_lr * lr_factor(step, self.warmup_steps, self.progress(step, elapsed_s), self.kind)

    def state_dict(self) -> dict:
        return dict(
            peak_lr=self.peak_lr,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            kind=self.kind,
            budget_s=self.budget_s,
        )

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
