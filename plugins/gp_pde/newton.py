"""Newton-type iterations shared by the interior solves: one backtracking line search, one damped Gauss-Newton loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["elementwise_derivative", "backtrack", "gauss_newton"]


def elementwise_derivative(phi: Callable[[Tensor], Tensor], u: Tensor) -> Tensor:
    """``phi'(u)`` elementwise, by autograd of the pointwise nonlinearity."""
    with torch.enable_grad():
        v = u.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(phi(v).sum(), v)
    return g.detach()


def backtrack(u: Tensor, delta: Tensor, value: Callable[[Tensor], tuple[Any, Any]], current: Any, *,
              t_min: float, strict: bool) -> tuple[float, Tensor, Any, Any]:
    """Halve ``t`` from 1 until ``value(u + t delta)`` does not exceed ``current`` (is below it if ``strict``) or ``t < t_min``.

    ``value(v)`` returns ``(objective, aux)``; returns ``(t, u + t delta, objective, aux)`` at the accepted point.
    """
    t = 1.0
    while True:
        cand = u + t * delta
        val, aux = value(cand)
        if (val < current if strict else val <= current) or t < t_min:
            return t, cand, val, aux
        t *= 0.5


def gauss_newton(u: Tensor, objective: Callable[[Tensor], Tensor], direction: Callable[[Tensor], Tensor],
                 num_steps: int) -> tuple[Tensor, int]:
    """Damped Gauss-Newton: ``u <- u + t d(u)`` with the backtracking of :func:`backtrack` on ``objective``.

    Stops after ``num_steps`` steps or when the step ``|t d|`` is below ``1e-12 max(|u|, 1)``; returns ``(u, steps)``.
    """
    cur = objective(u)
    steps = 0
    for steps in range(1, num_steps + 1):  # noqa: B007
        delta = direction(u)
        t, cand, val, _ = backtrack(u, delta, lambda v: (objective(v), None), cur, t_min=1e-6, strict=False)
        done = float((t * delta).norm()) <= 1e-12 * max(float(u.norm()), 1.0)
        u, cur = cand, val
        if done:
            break
    return u, steps
