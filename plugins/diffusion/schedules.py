"""Annealing schedules: increasing sequences on [0, 1] mapped onto an interval.

:func:`annealing_schedule` returns ``n`` values increasing from ``low`` to ``high`` following a
named shape (or a user callable ``tau -> [0, 1]``):

* ``"linear"``: ``low + (high - low) tau``;
* ``"geometric"`` (alias ``"exponential"``): ``low^(1 - tau) high^tau``, i.e. the schedule
  ``lambda_t = exp(-2 T (1 - t))`` of the OU-type path (equal steps in ``log lambda``);
* ``"cosine"``: ``low + (high - low) (1 - cos(pi tau)) / 2``, slow at both ends;
* ``"sigmoid"``: a logistic ramp, rescaled to hit both ends exactly.

Used for the interpolation parameter ``lambda`` of MultALMC, the diffusion time of MultCDiff
(reversed) and the inverse temperature of AIS / SMC.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["SCHEDULES", "annealing_schedule"]

SCHEDULES = ("linear", "geometric", "exponential", "cosine", "sigmoid")


def _shape(name: str, tau: Tensor) -> Tensor:
    if name == "linear":
        return tau
    if name == "cosine":
        return 0.5 * (1.0 - torch.cos(math.pi * tau))
    if name == "sigmoid":
        k = 10.0
        s = torch.sigmoid(k * (tau - 0.5))
        s0, s1 = 1.0 / (1.0 + math.exp(0.5 * k)), 1.0 / (1.0 + math.exp(-0.5 * k))
        return (s - s0) / (s1 - s0)
    raise ValueError(f"schedule must be one of {SCHEDULES} or a callable, got {name!r}")


def annealing_schedule(schedule: str | Callable[[Tensor], Tensor], n: int, low: float, high: float) -> Tensor:
    """Return ``n`` float64 values from ``low`` to ``high`` (both included when ``n >= 2``).

    Args:
        schedule: a name from :data:`SCHEDULES` or a callable mapping ``tau`` (a float64 tensor of
            ``n`` points in [0, 1]) to non-decreasing values in [0, 1], 0 at ``tau = 0`` and 1 at ``tau = 1``.
        n: number of values (>= 1; ``n = 1`` gives ``[high]``).
        low: first value; for ``"geometric"`` it must be > 0.
        high: last value (>= ``low``).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if high < low:
        raise ValueError(f"high ({high}) must be >= low ({low})")
    tau = torch.linspace(0.0, 1.0, n, dtype=torch.float64) if n > 1 else torch.ones(1, dtype=torch.float64)
    if callable(schedule):
        s = torch.as_tensor(schedule(tau), dtype=torch.float64)
        if s.shape != tau.shape or not bool(torch.isfinite(s).all()):
            raise ValueError("a callable schedule must map the (n,) tensor tau to n finite values")
        if bool((s < 0).any() or (s > 1).any() or (s[1:] < s[:-1]).any()):
            raise ValueError("a callable schedule must be non-decreasing with values in [0, 1]")
        ends_ok = abs(float(s[-1]) - 1.0) <= 1e-9 and (n == 1 or abs(float(s[0])) <= 1e-9)
        if not ends_ok:  # else the path never reaches the target (or never starts at the reference)
            raise ValueError(f"a callable schedule must map tau = 0 to 0 and tau = 1 to 1, got {float(s[0]):.6g} "
                             f"and {float(s[-1]):.6g}: the path must run from the reference to the target")
        return low + (high - low) * s
    if not isinstance(schedule, str):
        raise TypeError(f"schedule must be a str or a callable, got {type(schedule).__name__}")
    if schedule in ("geometric", "exponential"):
        if low <= 0:
            raise ValueError(f"a geometric schedule needs low > 0, got {low}")
        return torch.exp(math.log(low) + (math.log(high) - math.log(low)) * tau)
    return low + (high - low) * _shape(schedule, tau)
