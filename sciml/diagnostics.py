"""Convergence diagnostics of draws: ESS and R-hat per parameter, computed by ArviZ.

ArviZ implements the rank-normalised split R-hat and the bulk / tail effective sample sizes of
Vehtari et al. (2021) as Stan reports them; this module only arranges sciml's draws for it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.stats
import torch
from torch import Tensor

from .validation import check_positive_int, check_tensor

__all__ = ["chain_diagnostics", "draw_diagnostics", "ensemble_drift", "low_density_draws"]

#: two-sided tail probability above which a drift of a coordinate's mean or variance counts as real:
#: that of |z| > 4.5, so about 7e-6 x 2 dim false alarms per run of stationary chains; the |t| threshold
#: is Student's t quantile for the number of chains (4.52 for 1000 chains, 4.75 for 100, 11.9 for 8)
DRIFT_P = 6.8e-6
#: how far the extrapolated mean may lie from the draws' mean (in their sds) and their sd from the
#: extrapolated one (a ratio) before a significant drift is reported
DRIFT_BIAS, DRIFT_SD = 0.1, 0.1


def chain_diagnostics(draws: Tensor) -> dict[str, Tensor]:
    """``{"ess_bulk", "ess_tail", "r_hat"}``, each ``(dim,)`` float64, of MCMC draws ``(chains, draws, dim)``.

    Non-finite draws (diverged chains) must be removed first: ``ValueError`` otherwise.
    """
    if not isinstance(draws, Tensor) or draws.ndim != 3:
        raise ValueError(f"draws must be a tensor of shape (chains, draws, dim), got "
                         f"{tuple(draws.shape) if isinstance(draws, Tensor) else type(draws).__name__}")
    if draws.shape[0] < 1 or draws.shape[2] < 1:
        raise ValueError(f"draws must hold at least one chain and one parameter, got shape {tuple(draws.shape)}")
    if draws.shape[1] < 4:
        raise ValueError(f"R-hat and ESS need at least 4 draws per chain, got {draws.shape[1]}")
    if not bool(torch.isfinite(draws).all()):
        raise ValueError("draws contain NaN / inf (diverged chains): drop them before computing diagnostics")
    az = _arviz()
    arr = draws.detach().to("cpu", torch.float64).numpy()
    out: dict[str, Tensor] = {}
    with warnings.catch_warnings():  # arviz warns about short chains; the figures say it
        warnings.simplefilter("ignore")
        for key, kwargs in (("ess_bulk", {"method": "bulk"}), ("ess_tail", {"method": "tail"})):
            out[key] = _per_parameter(az.ess, arr, kwargs)
        out["r_hat"] = _per_parameter(az.rhat, arr, {})
    return out


def draw_diagnostics(x: Tensor, diverged: Tensor | None = None, groups: int = 4) -> dict[str, Any]:
    """Diagnostics of one draw per independent chain (the diffusion samplers' output) ``(n, dim)``.

    The finite draws, in chain order, are split into ``groups`` contiguous blocks treated as chains:
    ``r_hat`` compares the blocks (near 1 unless chains were started or resampled unevenly), and the
    ESS in chain order drops below ``n`` when neighbouring chains are copies of one another (the
    duplicates resampling leaves next to each other). Neither can see a bias shared by every chain:
    compare against reference draws for that. Empty dict when fewer than ``4 groups`` draws are finite.
    """
    check_tensor("x", x, ndim=2, finite=False)
    groups = check_positive_int("groups", groups)
    if diverged is not None:
        check_tensor("diverged", diverged, shape=(x.shape[0],), floating=False, finite=False)
        if diverged.dtype != torch.bool:  # an integer mask would index rows
            raise TypeError(f"diverged must be a bool mask, got {diverged.dtype}")
    keep = torch.isfinite(x).all(-1) if diverged is None else ~diverged & torch.isfinite(x).all(-1)
    finite = x[keep]
    per = finite.shape[0] // groups
    if per < 4:
        return {}
    return chain_diagnostics(finite[: per * groups].reshape(groups, per, x.shape[-1]))


def ensemble_drift(start: Tensor, end: Tensor) -> dict[str, Any]:
    """Whether many independent chains were still moving between two steps of a run on one target.

    ``start`` and ``end`` ``(n, dim)`` are the states of the same ``n`` chains (rows paired); rows not
    finite in both are dropped. For stationary chains the paired differences of each coordinate and of
    its squared deviation have mean zero whatever the autocorrelation, so ``t_mean`` and ``t_var``
    ``(dim,)`` (their t statistics over the chains) follow Student's t with ``n - 1`` degrees of freedom
    (heavier-tailed states: approximately). The regression slope ``beta`` of end on
    start extrapolates a geometric approach (an AR(1) model of the chains): ``projected_bias`` is how far
    the fixed point's mean lies from ``end``'s, in ``end``'s sds, and ``projected_sd_ratio`` the fixed
    point's sd over ``end``'s (no fixed point: see :func:`_ar1_extrapolation`). ``flagged`` ``(dim,)``:
    ``|t_mean| > threshold`` (the t quantile of two-sided tail ``DRIFT_P``) and ``|projected_bias| >
    DRIFT_BIAS``, or ``|t_var| > threshold`` and a projected sd ratio off 1 by more than ``DRIFT_SD``;
    ``drifting``: any flagged. Empty dict with fewer than 8 paired rows.
    """
    check_tensor("start", start, ndim=2, finite=False)
    check_tensor("end", end, shape=tuple(start.shape), finite=False)
    ok = torch.isfinite(start).all(-1) & torch.isfinite(end).all(-1)
    xs, xe = start[ok].to(torch.float64), end[ok].to(torch.float64)
    n = xs.shape[0]
    if n < 8:
        return {}
    centre = 0.5 * (xs.mean(0) + xe.mean(0))
    t_mean = _paired_t(xe - xs)
    t_var = _paired_t((xe - centre) ** 2 - (xs - centre) ** 2)
    beta, bias, ratio = _ar1_extrapolation(xs, xe)
    threshold = float(scipy.stats.t.isf(DRIFT_P / 2, n - 1))
    flagged = (((t_mean.abs() > threshold) & (bias.abs() > DRIFT_BIAS))
               | ((t_var.abs() > threshold) & ((ratio - 1).abs() > DRIFT_SD)))
    return {"t_mean": t_mean, "t_var": t_var, "threshold": threshold, "beta": beta, "projected_bias": bias,
            "projected_sd_ratio": ratio, "flagged": flagged, "drifting": bool(flagged.any()), "n_chains": n}


def _ar1_extrapolation(xs: Tensor, xe: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(beta, projected_bias, projected_sd_ratio)`` ``(dim,)`` of :func:`ensemble_drift`.

    ``x_e = m + beta (x_s - m) + noise`` has the fixed point mean ``m`` and variance
    ``(var_e - beta^2 var_s) / (1 - beta^2)``. No fixed point where ``|beta| >= 1`` (the bias is then
    +-inf where the mean moved, the ratio inf / 0 where the variance grew / shrank) or where the start
    has no spread (``beta`` NaN: judged by the t statistics alone).
    """
    tiny = torch.finfo(torch.float64).tiny
    cs, ce = xs - xs.mean(0), xe - xe.mean(0)
    var_s, var_e = (cs * cs).mean(0), (ce * ce).mean(0)
    beta = torch.where(var_s > 0, (cs * ce).mean(0) / var_s.clamp_min(tiny), math.nan)
    shift = xe.mean(0) - xs.mean(0)
    fixed = beta.abs() < 1  # NaN compares False
    moved = torch.where(shift == 0, 0.0, math.inf * shift.sign())
    bias = torch.where(fixed, beta * shift / (1 - beta), moved) / var_e.sqrt().clamp_min(tiny)
    bias = torch.where(torch.isnan(bias), 0.0, bias)  # a constant end that did not move
    var_fixed = (var_e - beta**2 * var_s) / (1 - beta**2)
    changed = torch.where(var_e > var_s, math.inf, torch.where(var_e < var_s, 0.0, 1.0))
    ratio = torch.where(fixed, (var_fixed.clamp_min(0) / var_e.clamp_min(tiny)).sqrt(), changed)
    return beta, bias, ratio


def _paired_t(d: Tensor) -> Tensor:
    """t statistic of the column means of ``d`` ``(n, dim)`` (0 for a zero column, +-inf for a constant one)."""
    mean, se = d.mean(0), d.std(0) / math.sqrt(d.shape[0])
    t = mean / se
    return torch.where(se > 0, t, torch.where(mean == 0, 0.0, math.inf * mean.sign()))


def low_density_draws(log_prob: Tensor) -> Tensor:
    """Mask ``(n,)`` of draws whose log-density ``log_prob`` ``(n,)`` is far below the other draws'.

    Flagged: non-finite values (NaN, ``+-inf``), and values more than ``2 (log n + 5) max(IQR, 1)`` nats below the
    median of the finite ones (IQR: their inter-quartile range). The log-density of exact draws has
    at most an exponential lower tail on the targets this was checked on (Gaussians of 1 - 100
    dimensions, Cauchy and multivariate t, mixtures, wells, funnels, the posteriordb reference draws:
    at most 15 IQRs below the median in 1e5 draws, ``docs/benchmarks/posteriordb.md``); the margin
    grows with ``log n`` as the extremes of ``n`` such draws do. A chain a sampler lost (stuck where
    the density is thousands of nats down) is far beyond it. With fewer than 8 finite values only
    non-finite values are flagged. Known false alarm: a rare component much wider than the rest in
    many dimensions (50-D, 1 % of the mass at 100x the scale: its draws sit d log 100 = 230 nats
    below the others' and are flagged).
    """
    if not isinstance(log_prob, Tensor) or log_prob.ndim != 1:
        raise ValueError(f"log_prob must be a 1-D tensor, got "
                         f"{tuple(log_prob.shape) if isinstance(log_prob, Tensor) else type(log_prob).__name__}")
    lp = log_prob.detach().to(torch.float64)
    finite = lp[torch.isfinite(lp)]
    if finite.numel() < 8:
        return ~torch.isfinite(lp)
    q1, median, q3 = torch.quantile(finite, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=lp.device))
    width = 2.0 * (math.log(lp.numel()) + 5.0) * max(float(q3 - q1), 1.0)
    return ~torch.isfinite(lp) | (lp < median - width)


def _arviz() -> Any:
    """ArviZ, imported on first use (its import announces a refactor with a FutureWarning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def _per_parameter(fn: Any, arr: np.ndarray, kwargs: dict[str, Any]) -> Tensor:
    data = _arviz().convert_to_dataset({"x": arr})
    values = np.asarray(fn(data, **kwargs)["x"].values, dtype=np.float64).reshape(-1)
    return torch.tensor([v if math.isfinite(v) else math.nan for v in values], dtype=torch.float64)
