"""What MultALMC and MultCDiff share: the start of the fast state from the target itself.

Both samplers pair a slow state ``X`` with a fast state that runs Langevin dynamics on the conditional
law of the clean variable given ``X``. Its modes are those of ``pi`` and the fast dynamics cannot
move mass between separated modes, so the fast states have to start with the mode weights of ``pi``:
:func:`fast_start` draws them by sampling importance resampling (:func:`sample_target_sir`) and falls
back to a widened reference kernel around the slow state when the importance pool is degenerate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._common import CountedTarget, randn_like, systematic_resample

__all__ = ["FastStart", "fast_start", "sample_target_sir"]


@dataclass(frozen=True)
class FastStart:
    """Starting fast states ``u`` ``(n, dim)`` in target units; ``from_target`` when they are the SIR draws
    of ``pi`` (the caller then redraws the slow state from the joint law), ``ess`` the pool's effective
    sample size (NaN without SIR)."""

    u: Tensor
    from_target: bool
    ess: float


def fast_start(target: CountedTarget, x: Tensor, scale: float, num_candidates: int, generator: torch.Generator | None,
               *, kernel_centre: Tensor | None = None, sir_scale: float | None = None) -> FastStart:
    """The fast states' start: ``pi`` by SIR from ``num_candidates`` pool points per chain around ``x``
    (proposal scale ``sir_scale``, default ``scale``) when the pool's ESS reaches the number of chains;
    otherwise (or with ``num_candidates = 0``) the kernel ``N(c m, (c^2 - 1) I)``, ``c = scale``, around
    ``m = kernel_centre`` (default ``x``)."""
    ess = float("nan")
    if num_candidates:
        u, ess = sample_target_sir(target, x, scale if sir_scale is None else sir_scale, num_candidates, generator)
        if ess >= x.shape[0]:
            return FastStart(u, True, ess)
    centre = x if kernel_centre is None else kernel_centre
    return FastStart(scale * centre + math.sqrt(scale * scale - 1.0) * randn_like(x, generator), False, ess)


def sample_target_sir(target: CountedTarget, x: Tensor, proposal_scale: float, num_candidates: int,
                      generator: torch.Generator | None) -> tuple[Tensor, float]:
    """Approximate draws of ``pi`` by pooled sampling importance resampling (SIR), one per chain.

    The fast state of MultALMC / MultCDiff has to start from the conditional law of the clean
    variable given the slow state; its modes are those of ``pi`` and the fast Langevin dynamics
    cannot move mass between separated modes, so the mode weights the fast states start with are
    the ones the sampler returns: they must come from ``pi``, not from the basins of attraction of
    an arbitrary start. A pool of ``n * num_candidates`` points is drawn from the Gaussian
    ``N(c m, (c^2 s^2 + c^2 - 1) I)`` (``m``, ``s^2``: mean and mean per-coordinate variance of the
    ``n`` starting points ``x``, ``c = proposal_scale``), weighted by ``pi / N(...)`` and ``n``
    points are resampled (systematic resampling: each pool point is picked ``floor(n W_i)`` or
    ``ceil(n W_i)`` times, so the mode weights carry no multinomial noise beyond the pool's own).
    Costs ``num_candidates`` log-density evaluations per chain.
    Like any importance sampler from a Gaussian it degrades with the dimension (the weights
    degenerate); the effective sample size is returned in ``ess``.

    Args:
        target: the counted target.
        x: ``(n, dim)`` starting points (they set the proposal's centre and spread).
        proposal_scale: ``c >= 1``.
        num_candidates: pool points per chain (>= 1).
        generator: source of randomness.

    Returns:
        ``(u, ess)``: ``(n, dim)`` draws in target units and the pool's effective sample size.
    """
    n, d = x.shape
    c = proposal_scale
    centre = c * x.mean(0)
    spread = c * float(x.var(0).mean()) ** 0.5 if n > 1 else 0.0
    std = math.sqrt(spread * spread + c * c - 1.0) if c > 1.0 else max(spread, 1.0)
    z = torch.randn((n * num_candidates, d), dtype=x.dtype, device=x.device, generator=generator)
    u = centre + std * z
    logw = target.log_prob(u, per_chain=False) + 0.5 * (z * z).sum(-1)
    logw = torch.where(torch.isfinite(logw), logw, torch.full_like(logw, -float("inf")))
    w = torch.exp(logw - logw.max())
    ess = float(w.sum() ** 2 / (w * w).sum())
    return u[systematic_resample(logw, generator, n)], ess
