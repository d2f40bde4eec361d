"""Baselines: unadjusted Langevin (ULA) and underdamped Langevin Monte Carlo (ULMC).

* ULA: Euler-Maruyama for ``dX = grad log pi(X) dt + sqrt(2) dB``:
  ``x' = x + h grad log pi(x) + sqrt(2 h) xi``.
* ULMC: OBABO splitting (mass 1, friction ``gamma``) for
  ``dX = V dt, dV = grad log pi(X) dt - gamma V dt + sqrt(2 gamma) dB``: an exact half-step of
  the Ornstein-Uhlenbeck velocity part, a half kick, a full drift, a half kick, a half OU step.

Both run ``num_samples`` independent chains from ``N(0, init_std^2 I)`` and return their final
states; one gradient evaluation per chain and step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sciml.targets import CountedTarget
from sciml.validation import check_positive, check_positive_int

from ._common import DiffusionSamplerBase, RunMonitor, randn_like
from .integrators import obabo_step

__all__ = ["ULA", "ULMC"]


class ULA(DiffusionSamplerBase):
    """Unadjusted Langevin algorithm: ``x' = x + h grad log pi(x) + sqrt(2h) xi``, many chains.

    Args:
        num_steps: steps per chain (one gradient evaluation each).
        step_size: ``h`` (> 0).
        init_std: standard deviation of the ``N(0, init_std^2 I)`` initial states.
        progress: show a progress bar (``None``: only when stderr is a terminal).
    """

    name = "ula"

    def __init__(self, num_steps: int = 1000, step_size: float = 0.01, *, init_std: float = 1.0,
                 precondition: str = "auto", max_evals: int | None = None,
                 progress: bool | None = None) -> None:
        super().__init__(init_std=init_std, precondition=precondition, max_evals=max_evals,
                         progress=progress)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.step_size = check_positive("step_size", step_size)

    def _num_iterations(self) -> int:
        return self.num_steps

    def _drift_window(self) -> int | None:
        return self.num_steps // 2 if self.num_steps >= 20 else None

    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             monitor: RunMonitor) -> tuple[Tensor, dict[str, Any]]:
        h, x = self.step_size, x0.clone()
        noise = math.sqrt(2.0 * h)
        for _ in range(self.num_steps):
            x = x + h * target.grad(x) + noise * randn_like(x, generator)
            x = monitor.end_step(x)
            if monitor.stopped:
                break
        return x, {}


class ULMC(DiffusionSamplerBase):
    """Underdamped (kinetic) Langevin Monte Carlo with the OBABO splitting, many chains.

    Args:
        num_steps: steps per chain (one gradient evaluation each).
        step_size: ``h`` (> 0).
        friction: ``gamma`` (> 0).
        init_std: standard deviation of the ``N(0, init_std^2 I)`` initial positions (velocities
            start from ``N(0, I)``).
        progress: show a progress bar (``None``: only when stderr is a terminal).
    """

    name = "ulmc"

    def __init__(self, num_steps: int = 1000, step_size: float = 0.05, friction: float = 1.0, *,
                 init_std: float = 1.0, precondition: str = "auto", max_evals: int | None = None,
                 progress: bool | None = None) -> None:
        super().__init__(init_std=init_std, precondition=precondition, max_evals=max_evals,
                         progress=progress)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.step_size = check_positive("step_size", step_size)
        self.friction = check_positive("friction", friction)

    def _num_iterations(self) -> int:
        return self.num_steps

    def _drift_window(self) -> int | None:
        return self.num_steps // 2 if self.num_steps >= 20 else None

    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             monitor: RunMonitor) -> tuple[Tensor, dict[str, Any]]:
        x = x0.clone()
        v = randn_like(x, generator)
        g = target.grad(x)
        for _ in range(self.num_steps):
            x, v, g = obabo_step(x, v, g, target.grad, self.step_size, self.friction, generator)
            x, v = monitor.end_step(x, v)
            if monitor.stopped:
                break
        return x, {}
