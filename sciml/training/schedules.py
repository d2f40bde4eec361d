"""Learning-rate schedules as factors of the base rate, a function of the fraction of steps done.

They drive a ``LambdaLR`` stepped once per optimiser step, so a checkpoint stores only the step count.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["SCHEDULES", "step_decay", "cosine", "one_cycle", "constant"]


def constant(t: float) -> float:
    """Factor 1 throughout."""
    return 1.0


def step_decay(t: float, *, drops: int = 5, factor: float = 0.5) -> float:
    """``factor`` after each of ``drops`` equal parts: the FNO paper's x0.5 every 100 of 500 epochs."""
    return factor ** min(int(t * drops), drops - 1)


def cosine(t: float, *, warmup: float = 0.0) -> float:
    """Linear warm-up over the first ``warmup`` fraction, then cosine decay to 0."""
    if t < warmup:
        return (t + 1e-12) / warmup
    s = (t - warmup) / max(1.0 - warmup, 1e-12)
    return 0.5 * (1.0 + math.cos(math.pi * min(s, 1.0)))


def one_cycle(t: float, *, peak_at: float = 0.3, start: float = 1 / 25, end: float = 1e-4) -> float:
    """Cosine rise from ``start`` to 1 over the first ``peak_at`` of the run, cosine fall to ``end``
    (the shape of ``torch.optim.lr_scheduler.OneCycleLR``, as MgNO trains)."""
    if t < peak_at:
        s, lo, hi = t / peak_at, start, 1.0
        return hi + (lo - hi) * 0.5 * (1.0 + math.cos(math.pi * s))
    s = min((t - peak_at) / (1.0 - peak_at), 1.0)
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * s))


#: The trainer's ``schedule=`` names.
SCHEDULES: dict[str, Callable[[float], float]] = {
    "step": step_decay, "cosine": cosine, "onecycle": one_cycle, "constant": constant,
}
