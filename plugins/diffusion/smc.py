"""Sequential Monte Carlo sampler (Del Moral, Doucet and Jasra, 2006) on the geometric path.

Same path and MALA moves as :mod:`~sciml_plugins.diffusion.ais`, but the particles are
resampled (systematic resampling) whenever the effective sample size of the normalised weights
drops below ``ess_threshold * N``. ``log Z`` accumulates ``log sum_i W_i exp(incr_i)`` over the
temperatures (``W`` the normalised weights before the increment), unbiased for ``Z``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sciml.targets import CountedTarget
from sciml.validation import check_probability

from ._common import RunMonitor, systematic_resample
from .ais import AIS, AnnealedState, _log_p0, temperatures

__all__ = ["SMC", "systematic_resample"]


class SMC(AIS):
    """SMC sampler: tempering with ESS-triggered systematic resampling and MALA moves; returns log Z.

    Args:
        num_steps: number of temperatures after ``b = 0``.
        step_size: initial MALA step (> 0), adapted towards ``target_accept`` when ``adapt_step``.
        mcmc_steps: MALA moves per temperature.
        ess_threshold: resample when ``ESS < ess_threshold * N`` (in (0, 1]).
        schedule: inverse-temperature schedule (see :class:`~sciml_plugins.diffusion.AIS`).
        adapt_step: adapt the MALA step size between temperatures.
        target_accept: acceptance rate aimed at by the adaptation.
        init_std: standard deviation of the Gaussian start ``p0 = N(0, init_std^2 I)``.
        progress: show a progress bar (``None``: only when stderr is a terminal).

    ``log_weights`` are the final weights times ``N`` (all zero right after a resampling).
    """

    name = "smc"

    def __init__(self, num_steps: int = 200, step_size: float = 0.05, mcmc_steps: int = 2, *,
                 ess_threshold: float = 0.5, schedule: Any = "geometric", adapt_step: bool = True,
                 target_accept: float = 0.6, init_std: float = 1.0,
                 precondition: str = "auto", max_evals: int | None = None, progress: bool | None = None) -> None:
        super().__init__(num_steps, step_size, mcmc_steps, schedule=schedule, adapt_step=adapt_step,
                         target_accept=target_accept, init_std=init_std,
                         precondition=precondition, max_evals=max_evals, progress=progress)
        self.ess_threshold = check_probability("ess_threshold", ess_threshold, open_high=False)

    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             monitor: RunMonitor) -> tuple[Tensor, dict[str, Any]]:
        betas = temperatures(self.schedule, self.num_steps).tolist()
        n = x0.shape[0]
        state = self._start(target, x0)
        log_w = torch.full((n,), -math.log(n), dtype=x0.dtype, device=x0.device)  # normalised
        log_z, step, rates, n_resample = 0.0, self.step_size, [], 0
        for k in range(1, len(betas)):
            incr = (betas[k] - betas[k - 1]) * (state.log_target - _log_p0(state.x, self.init_std))
            # -inf (a zero-density state) is a zero weight and stays in the sum; only diverged particles
            # (NaN rows, NaN / +inf values) are excluded: the weights are renormalised over the others
            alive = ~torch.isnan(incr) & (incr != math.inf)
            if not bool(alive.all()):
                incr = torch.where(alive, incr, torch.full_like(incr, -math.inf))
                log_w = torch.where(alive, log_w, torch.full_like(log_w, -math.inf))
                log_w = log_w - torch.logsumexp(log_w, 0)
            total = log_w + incr
            lse = torch.logsumexp(total, 0)
            if not bool(torch.isfinite(lse)):
                log_z = math.nan  # every particle diverged: reported through the diverged mask
                break
            log_z += float(lse)
            log_w = total - lse
            ess = float(1.0 / torch.exp(2.0 * log_w).sum())
            if ess < self.ess_threshold * n:
                idx = systematic_resample(log_w, generator)
                state = AnnealedState(state.x[idx], state.log_target[idx], state.grad_target[idx])
                monitor.reindex(idx)
                log_w = torch.full_like(log_w, -math.log(n))
                n_resample += 1
            state, step, rate = self._moves(target, state, betas[k], step, generator)
            rates.append(rate)
            state = self._end_step(monitor, state)
            if monitor.stopped:
                log_z = math.nan
                break
        log_w = torch.where(torch.isfinite(state.x).all(-1), log_w, torch.full_like(log_w, -math.inf))
        self._warn_frozen(rates)
        diagnostics = {"acceptance": sum(rates) / max(len(rates), 1), "final_step_size": step,
                       "n_resample": n_resample, "ess": float(1.0 / torch.exp(2.0 * log_w).sum())}
        return state.x, {"log_weights": log_w + math.log(n), "log_z": log_z, "diagnostics": diagnostics}
