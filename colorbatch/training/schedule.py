"""The learning-rate schedule of the training loop (warm-up, cosine, constant, one-cycle)."""
from __future__ import annotations

import math


class LRSchedule:
    """Learning-rate factor per optimizer step (an object, so LambdaLR saves its state)."""

    def __init__(self, kind: str, total: int, warmup: int = 0):
        self.kind, self.total, self.warmup = kind, max(1, int(total)), max(0, int(warmup))
        # with a time budget the loop raises this to the fraction of the budget used, so
        # the schedule runs its course within the budget even if the epochs would not
        self.time_progress = 0.0

    def __call__(self, step: int) -> float:
        if self.time_progress > 0:
            step = max(step, int(self.time_progress * self.total))
        if self.kind == "onecycle":
            peak = max(1, int(0.3 * self.total))
            if step < peak:
                return 0.04 + 0.96 * step / peak
            t = min(1.0, (step - peak) / max(1, self.total - peak))
            return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * t))
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.kind == "constant":
            return 1.0
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
