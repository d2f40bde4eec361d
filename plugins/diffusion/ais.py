"""Annealed importance sampling (Neal, 2001) on the geometric path from a Gaussian to the target.

Path ``pi_b(x) ~ p0(x)^(1 - b) pi(x)^b``, ``p0 = N(0, init_std^2 I)`` (normalised), ``b`` from
0 to 1. Each particle starts from ``p0``; at every temperature its log-weight gains
``(b_k - b_{k-1)) (log pi(x) - log p0(x))`` and it then makes Metropolis-adjusted Langevin
(MALA) moves that leave ``pi_{b_k}`` invariant. ``log Z`` is estimated by ``logmeanexp`` of the
log-weights (unbiased for ``Z``; a ``-inf`` log-weight, a zero-density state, is a zero weight and
counts; diverged particles are left out). The MALA step size is adapted between temperatures towards an
acceptance rate of about 0.6 (using past moves only).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sciml.validation import check_bool, check_positive, check_positive_int, check_probability

from ._common import (
    CountedTarget,
    DiffusionSamplerBase,
    RunMonitor,
    logmeanexp,
    randn_like,
)
from .schedules import annealing_schedule

__all__ = ["AIS", "AnnealedState", "mala_move", "temperatures"]


@dataclass
class AnnealedState:
    """Particles on the geometric path: positions and cached target / reference terms."""

    x: Tensor
    log_target: Tensor
    grad_target: Tensor


def _log_p0(x: Tensor, std: float) -> Tensor:
    d = x.shape[-1]
    return -0.5 * (x * x).sum(-1) / std**2 - d * (math.log(std) + 0.5 * math.log(2.0 * math.pi))


def temperatures(schedule: str | Callable[[Tensor], Tensor], num_steps: int) -> Tensor:
    """``num_steps + 1`` inverse temperatures from 0 to 1 (a geometric schedule starts at 1e-4)."""
    if schedule in ("geometric", "exponential"):
        return torch.cat([torch.zeros(1, dtype=torch.float64), annealing_schedule(schedule, num_steps, 1e-4, 1.0)])
    return annealing_schedule(schedule, num_steps + 1, 0.0, 1.0)


def mala_move(target: CountedTarget, state: AnnealedState, beta: float, std: float, step: float,
              gen: torch.Generator | None) -> tuple[AnnealedState, Tensor]:
    """One MALA step targeting ``p0^(1-beta) pi^beta``; returns the new state and the acceptance mask.

    Chains whose proposal is non-finite, or where the target is NaN / ``+inf``, reject it (counted by
    the target, never a divergence); chains that are already non-finite stay so.
    """
    x = state.x

    def tempered(lt: Tensor, gt: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        return (1.0 - beta) * _log_p0(z, std) + beta * lt, -(1.0 - beta) * z / std**2 + beta * gt

    lp_x, g_x = tempered(state.log_target, state.grad_target, x)
    prop = x + step * g_x + math.sqrt(2.0 * step) * randn_like(x, gen)
    lt_p, gt_p = target.log_prob_and_grad(prop, proposal=True)
    lp_p, g_p = tempered(lt_p, gt_p, prop)
    fwd = -((prop - x - step * g_x) ** 2).sum(-1) / (4.0 * step)
    bwd = -((x - prop - step * g_p) ** 2).sum(-1) / (4.0 * step)
    log_alpha = lp_p - lp_x + bwd - fwd
    u = torch.rand(log_alpha.shape, dtype=x.dtype, device=x.device, generator=gen)
    accept = torch.isfinite(log_alpha) & (torch.log(u) < log_alpha)
    a = accept.unsqueeze(-1)
    new = AnnealedState(torch.where(a, prop, x), torch.where(accept, lt_p, state.log_target),
                        torch.where(a, gt_p, state.grad_target))
    return new, accept


class AIS(DiffusionSamplerBase):
    """Annealed importance sampling with MALA moves; returns log-weights and a log Z estimate.

    Args:
        num_steps: number of temperatures after ``b = 0``.
        step_size: initial MALA step (> 0), adapted towards ``target_accept`` when ``adapt_step``.
        mcmc_steps: MALA moves per temperature.
        schedule: inverse-temperature schedule (``"linear"``, ``"geometric"``, ``"cosine"``,
            ``"sigmoid"`` or a callable ``tau -> [0, 1]``).
        adapt_step: adapt the MALA step size between temperatures.
        target_accept: acceptance rate aimed at by the adaptation.
        init_std: standard deviation of the Gaussian start ``p0 = N(0, init_std^2 I)``.
        progress: show a progress bar (``None``: only when stderr is a terminal).

    The returned ``x`` are the final particles (unweighted positions); ``log_weights`` their
    importance log-weights; ``log_z`` ``= log mean exp(log_weights)``.
    """

    name = "ais"
    _check_every = 1

    def __init__(self, num_steps: int = 200, step_size: float = 0.05, mcmc_steps: int = 1, *,
                 schedule: str | Callable[[Tensor], Tensor] = "geometric", adapt_step: bool = True,
                 target_accept: float = 0.6, init_std: float = 1.0,
                 precondition: str = "auto", max_evals: int | None = None, progress: bool | None = None) -> None:
        super().__init__(init_std=init_std,
                         precondition=precondition, max_evals=max_evals, progress=progress)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.step_size = check_positive("step_size", step_size)
        self.mcmc_steps = check_positive_int("mcmc_steps", mcmc_steps)
        if not (callable(schedule) or isinstance(schedule, str)):
            raise TypeError(f"schedule must be a str or a callable, got {type(schedule).__name__}")
        temperatures(schedule, 2)
        self.schedule = schedule
        self.adapt_step = check_bool("adapt_step", adapt_step)
        self.target_accept = check_probability("target_accept", target_accept)

    def _num_iterations(self) -> int:
        return self.num_steps

    def _start(self, target: CountedTarget, x0: Tensor) -> AnnealedState:
        lt, gt = target.log_prob_and_grad(x0)
        return AnnealedState(x0, lt, gt)

    def _moves(self, target: CountedTarget, state: AnnealedState, beta: float, step: float,
               gen: torch.Generator | None) -> tuple[AnnealedState, float, float]:
        rates = []
        for _ in range(self.mcmc_steps):
            state, acc = mala_move(target, state, beta, self.init_std, step, gen)
            rates.append(float(acc.double().mean()))
        rate = sum(rates) / len(rates)
        if self.adapt_step:
            step = step * math.exp(rate - self.target_accept)
        return state, step, rate

    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             monitor: RunMonitor) -> tuple[Tensor, dict[str, Any]]:
        betas = temperatures(self.schedule, self.num_steps).tolist()
        state = self._start(target, x0)
        log_w = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
        step, rates = self.step_size, []
        for k in range(1, len(betas)):
            log_w = log_w + (betas[k] - betas[k - 1]) * (state.log_target - _log_p0(state.x, self.init_std))
            state, step, rate = self._moves(target, state, betas[k], step, generator)
            rates.append(rate)
            state = self._end_step(monitor, state)
            if monitor.stopped:
                break
        # -inf is a zero weight (a particle in a zero-density region) and counts in log Z; diverged
        # particles (NaN) are left out of it, and get log-weight -inf
        dropped = torch.isnan(log_w) | (log_w == math.inf) | monitor.diverged
        log_z = logmeanexp(torch.where(dropped, torch.full_like(log_w, math.nan), log_w))
        log_w = torch.where(dropped, torch.full_like(log_w, -math.inf), log_w)
        w = torch.softmax(log_w, 0)
        ess = float(1.0 / (w * w).sum()) if bool(torch.isfinite(w).all()) else 0.0
        self._warn_frozen(rates)
        diagnostics = {"acceptance": sum(rates) / max(len(rates), 1), "final_step_size": step, "ess": ess}
        return state.x, {"log_weights": log_w, "log_z": log_z, "diagnostics": diagnostics}

    @staticmethod
    def _end_step(monitor: RunMonitor, state: AnnealedState) -> AnnealedState:
        """Close a temperature: flag diverged particles (NaN rows, so their weights become -inf)."""
        x = monitor.end_step(state.x)
        if x is state.x:
            return state
        bad = ~torch.isfinite(x).all(-1)
        nan = torch.full_like(state.log_target, math.nan)
        return AnnealedState(x, torch.where(bad, nan, state.log_target),
                             torch.where(bad.unsqueeze(-1), torch.full_like(x, math.nan), state.grad_target))

    def _warn_frozen(self, rates: list[float]) -> None:
        """Warn when no MALA move was accepted at most temperatures (a hopeless step size): the
        particles did not move and the result is close to plain importance sampling from ``p0``."""
        frozen = sum(1 for r in rates if r == 0.0)
        if rates and frozen > len(rates) // 2:
            warnings.warn(f"{self.name}: no MALA move was accepted at {frozen} of {len(rates)} temperatures "
                          f"(step_size={self.step_size:g} too large?); the particles hardly moved, so the "
                          "weights and log Z are close to plain importance sampling from "
                          "N(0, init_std^2 I)", RuntimeWarning, stacklevel=3)
