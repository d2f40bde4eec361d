"""Distances and sample-quality metrics: W2 (exact, Gaussian, entropic / Sinkhorn), MMD, sliced KS,
mode statistics, kernel Stein discrepancy, log Z estimates.

Sample-based functions take ``(n, dim)`` tensors and return Python floats (or small tensors / named
tuples). ``wasserstein2`` uses POT's network simplex; Sinkhorn is our own log-domain solver.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from sciml.validation import (
    as_tensor,
    check_bool,
    check_covariance,
    check_generator,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_probability,
    check_tensor,
)

__all__ = [
    "entropic_w2",
    "wasserstein2",
    "mmd",
    "ksd",
    "sliced_ks",
    "mode_assignment",
    "mode_counts",
    "mode_coverage",
    "mode_weight_error",
    "mode_entropy",
    "LogZEstimates",
    "log_z_estimates",
    "gaussian_w2",
    "gaussian_w2_sq",
    "sqrtm_psd",
    "sinkhorn",
    "SinkhornPlan",
]


def _pair(x: Tensor, y: Tensor, xname: str = "x", yname: str = "y") -> tuple[Tensor, Tensor]:
    check_tensor(xname, x, ndim=2)
    check_tensor(yname, y, ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{xname} and {yname} must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if x.shape[0] < 1 or y.shape[0] < 1:
        raise ValueError(f"{xname} and {yname} must hold at least one sample each")
    dtype = torch.promote_types(x.dtype, y.dtype)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{xname} and {yname} must be float32 or float64, got {x.dtype} and {y.dtype}")
    return x.to(dtype), y.to(device=x.device, dtype=dtype)


def _hist(name: str, w: Tensor | None, n: int, like: Tensor) -> Tensor:
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)
    w = check_tensor(name, torch.as_tensor(w), shape=(n,)).to(dtype=like.dtype, device=like.device)
    if bool((w < 0).any()) or float(w.max()) <= 0:
        raise ValueError(f"{name} must be nonnegative with a positive sum")
    w = w / w.max()  # first by the largest: a sum of huge finite weights would overflow
    return w / w.sum()


class SinkhornPlan(NamedTuple):
    """Result of :func:`sinkhorn`: the plan and the dual potentials (units of the cost)."""

    plan: Tensor
    """``(n, m)`` entropic plan ``exp((f_i + g_j - C_ij) / reg) a_i b_j``."""
    f: Tensor
    """``(n,)`` row potential."""
    g: Tensor
    """``(m,)`` column potential."""
    marginal_error: float
    """L1 violation of the row marginals (the column marginals are exact) at the last check."""
    num_steps: int
    """Sinkhorn iterations run, over all stages."""


def sinkhorn(cost: Tensor, reg: float, a: Tensor | None = None, b: Tensor | None = None, *,
             max_iter: int = 1000, tol: float = 1e-4, start: float | None = None, scaling: float = 0.5,
             stage_iter: int = 200) -> SinkhornPlan:
    """Entropic OT plan for a cost matrix, log-domain Sinkhorn with epsilon scaling.

    Minimises ``<P, C> + reg KL(P | a b^T)`` over couplings of ``a`` and ``b``. The regularisation
    runs through ``start, start * scaling, ...`` down to ``reg`` (``start`` default ``max C``), at most
    ``stage_iter`` iterations per intermediate stage and ``max_iter`` at ``reg``; a stage ends early
    once the row-marginal violation is below ``tol`` (``tol=0``: always the full budget). The dual
    potentials carry over between stages. Computed in the dtype of ``cost``.

    Args:
        cost: ``(n, m)`` finite cost matrix.
        reg: final regularisation (> 0), in units of the cost.
        a: ``(n,)`` nonnegative source weights (normalised); default uniform.
        b: ``(m,)`` nonnegative target weights (normalised); default uniform.
        max_iter: iterations at ``reg``.
        tol: L1 tolerance on the marginals.
        start: first regularisation (> 0); ``None``: ``max(reg, max C)``.
        scaling: ratio in ``(0, 1)`` between consecutive regularisations.
        stage_iter: iterations per intermediate stage.
    """
    cost = check_tensor("cost", cost, ndim=2)
    n, m = cost.shape
    if n < 1 or m < 1:
        raise ValueError(f"cost must be a non-empty (n, m) matrix, got shape {tuple(cost.shape)}")
    reg = check_positive("reg", reg)
    max_iter = check_positive_int("max_iter", max_iter)
    stage_iter = check_positive_int("stage_iter", stage_iter)
    tol = check_nonnegative("tol", tol)
    scaling = check_probability("scaling", scaling)
    a = _hist("a", a, n, cost)
    b = _hist("b", b, m, cost)
    first = max(float(cost.max()), reg) if start is None else max(check_positive("start", start), reg)
    stages = math.ceil(math.log(reg / first) / math.log(scaling)) if first > reg else 0
    if stages > 10_000:
        raise ValueError(f"epsilon scaling from {first:.3g} down to reg = {reg:.3g} by scaling = {scaling} takes "
                         f"{stages} stages (at most 10000): use a smaller scaling, a larger reg or a smaller start")
    regs = []
    r = first
    while r > reg:
        regs.append(r)
        r *= scaling
    regs.append(reg)
    log_a, log_b = a.log(), b.log()
    f = torch.zeros(n, dtype=cost.dtype, device=cost.device)
    g = torch.zeros(m, dtype=cost.dtype, device=cost.device)
    steps, err = 0, math.inf
    for k, r in enumerate(regs):
        budget = max_iter if k == len(regs) - 1 else stage_iter
        for it in range(budget):
            f = -r * torch.logsumexp((g[None] - cost) / r + log_b, dim=1)
            g = -r * torch.logsumexp((f[:, None] - cost) / r + log_a[:, None], dim=0)
            steps += 1
            if tol > 0 and (it % 10 == 9 or it == budget - 1):
                rows = torch.logsumexp((f[:, None] + g[None] - cost) / r + log_b, dim=1).exp() * a
                err = float((rows - a).abs().sum())
                if err <= tol:
                    break
    plan = torch.exp((f[:, None] + g[None] - cost) / reg + log_a[:, None] + log_b)
    if tol == 0:
        err = float((plan.sum(1) - a).abs().sum())
    return SinkhornPlan(plan, f, g, err, steps)


def entropic_w2(x: Tensor, y: Tensor, reg: float = 0.05, *, weights_x: Tensor | None = None,
                weights_y: Tensor | None = None, max_iter: int = 1000, stage_iter: int = 200, tol: float = 1e-4,
                scaling: float = 0.5) -> float:
    """Entropic-regularised 2-Wasserstein distance between two sample sets.

    ``sqrt(<P_reg, C>)`` with ``C_ij = |x_i - y_j|^2`` (not normalised) and ``P_reg`` the entropic plan
    between the (weighted) empirical measures at regularisation ``reg`` (absolute, in units of the
    cost), computed by :func:`sinkhorn` and then rounded onto the exact marginals (Altschuler, Weed &
    Rigollet 2017, Alg. 2), so the value is the cost of a feasible coupling (``>=`` the exact W2). A
    ``RuntimeWarning`` reports a marginal violation above ``tol`` (L1, total mass 1) before rounding:
    the value is then inflated by the rounding.

    Args:
        x: ``(n, d)`` samples.
        y: ``(m, d)`` reference samples.
        reg: entropic regularisation (> 0).
        weights_x: optional nonnegative weights of ``x`` (normalised internally).
        weights_y: optional nonnegative weights of ``y`` (normalised internally).
        max_iter: Sinkhorn iterations at the final ``reg``.
        stage_iter: iterations per intermediate stage.
        tol: tolerance on the marginal violation.
        scaling: factor in ``(0, 1)`` between consecutive regularisations.

    Returns:
        the distance (a float).
    """
    x, y = _pair(x, y)
    a = _hist("weights_x", weights_x, x.shape[0], x)
    b = _hist("weights_y", weights_y, y.shape[0], x)
    tol = check_positive("tol", tol)
    cost = _squared_distances(x, y)
    res = sinkhorn(cost, reg, a, b, max_iter=max_iter, tol=tol / 10, scaling=scaling, stage_iter=stage_iter)
    if not res.marginal_error <= tol:
        warnings.warn(f"entropic_w2: Sinkhorn marginal violation {res.marginal_error:.2e} > tol={tol:.1e} after "
                      f"max_iter={max_iter}; the plan was rounded onto the marginals, which inflates the "
                      "value (raise max_iter / stage_iter, or compare with wasserstein2)", RuntimeWarning,
                      stacklevel=2)
    plan = _round_to_marginals(res.plan, a, b)
    return math.sqrt(max(float((plan * cost).sum()), 0.0))


def _round_to_marginals(plan: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Altschuler-Weed-Rigollet rounding: the nearby coupling with marginals exactly ``a`` and ``b``."""
    r = plan.sum(1)
    plan = plan * torch.where(r > 0, torch.clamp(a / r, max=1.0), torch.zeros_like(r))[:, None]
    c = plan.sum(0)
    plan = plan * torch.where(c > 0, torch.clamp(b / c, max=1.0), torch.zeros_like(c))[None, :]
    err_r, err_c = a - plan.sum(1), b - plan.sum(0)
    mass = err_r.sum()
    if float(mass) > 0:
        plan = plan + torch.outer(err_r, err_c) / mass
    return plan


def wasserstein2(x: Tensor, y: Tensor, *, weights_x: Tensor | None = None,
                 weights_y: Tensor | None = None) -> float:
    """Exact W2 between empirical measures: ``sqrt(ot.emd2(a, b, |x_i - y_j|^2))`` (network simplex).

    The ``reg -> 0`` limit of :func:`entropic_w2`; on CPU usually much faster than it for
    clustered samples (about a second for 2000 x 2000).
    """
    import ot

    x, y = _pair(x, y)
    a = _hist("weights_x", weights_x, x.shape[0], x)
    b = _hist("weights_y", weights_y, y.shape[0], x)
    cost = _squared_distances(x, y)
    return math.sqrt(max(float(ot.emd2(a, b, cost, numItermax=10_000_000)), 0.0))


def _squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """``|x_i - y_j|^2`` ``(n, m)``, ``ValueError`` when they overflow the dtype (an OT solver would return 0)."""
    cost = torch.cdist(x, y) ** 2
    if not bool(torch.isfinite(cost).all()):
        raise ValueError(f"the squared distances between x and y overflow {x.dtype} (largest |entry| "
                         f"{max(float(x.abs().max()), float(y.abs().max())):.3g}): rescale the samples or use float64")
    return cost


def _median_bandwidth(x: Tensor, y: Tensor, max_points: int = 2000) -> float:
    z = torch.cat([x, y])
    if z.shape[0] > max_points:  # deterministic thinning for the heuristic only
        z = z[torch.linspace(0, z.shape[0] - 1, max_points, device=z.device).long()]
    d = torch.cdist(z, z)
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    med = float(d[iu[0], iu[1]].median())
    return med if med > 0 else 1.0


def mmd(x: Tensor, y: Tensor, bandwidth: float | Sequence[float] | None = None, *,
        unbiased: bool = True) -> float:
    """Squared maximum mean discrepancy with a Gaussian kernel.

    ``k(u, v) = exp(-|u - v|^2 / (2 h^2))`` (summed over ``h`` when several bandwidths are given). The
    default bandwidth is the median heuristic: ``h`` = median of the pairwise distances of the pooled
    samples (at most 2000 of them). ``unbiased=True`` returns the U-statistic (mean zero for equal
    distributions, so it can be slightly negative); ``False`` the V-statistic (biased, >= 0).

    Args:
        x: ``(n, d)`` samples (``n >= 2`` for the unbiased estimate).
        y: ``(m, d)`` samples (``m >= 2`` for the unbiased estimate).
        bandwidth: ``h`` (> 0), several of them, or ``None`` for the median heuristic.
    """
    x, y = _pair(x, y)
    check_bool("unbiased", unbiased)
    if bandwidth is None:
        hs = [_median_bandwidth(x, y)]
    elif isinstance(bandwidth, numbers.Real) or getattr(bandwidth, "ndim", None) == 0:  # numpy / 0-d tensors too
        hs = [check_positive("bandwidth", bandwidth)]
    else:
        hs = [check_positive("bandwidth", h) for h in bandwidth]
        if not hs:
            raise ValueError("bandwidth must not be empty")

    def k(u: Tensor, v: Tensor) -> Tensor:
        d2 = torch.cdist(u, v) ** 2
        return sum(torch.exp(-d2 / (2 * h * h)) for h in hs)

    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    if unbiased:
        if n < 2 or m < 2:
            raise ValueError("the unbiased MMD needs at least 2 samples in x and in y")
        sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    else:
        sxx, syy = kxx.mean(), kyy.mean()
    return float(sxx + syy - 2 * kxy.mean())


def ksd(x: Tensor, score: Tensor, *, c: float = 1.0, beta: float = 0.5, block: int = 1024) -> float:
    """Kernel Stein discrepancy of the sample ``x`` to the density whose score is ``score``, IMQ kernel.

    ``k(x, y) = (c^2 + |x - y|^2)^(-beta)``; the Stein kernel is
    ``k0 = s_x.s_y k + s_x.grad_y k + s_y.grad_x k + tr(grad_x grad_y k)``, and the result is the
    V-statistic ``sqrt(sum_ij k0(x_i, x_j)) / n`` (the definition of the MixFlows experiments with
    ``c = 1``, ``beta = 0.5``). Zero only when the sample is the target (as ``n`` grows), in the
    units of the score. Cost ``O(n^2 d)`` time, ``O(block n)`` memory.

    Args:
        x: ``(n, d)`` sample.
        score: ``(n, d)`` values of ``grad log p`` at ``x`` (e.g. ``target.grad_log_prob(x)``).
        c: kernel scale (> 0).
        beta: kernel exponent, in ``(0, 1)``.
        block: rows per block of the pairwise sum.
    """
    check_tensor("x", x, ndim=2)
    check_tensor("score", score, shape=tuple(x.shape))
    if x.shape[0] < 1:
        raise ValueError("x must hold at least one sample")
    c2 = check_positive("c", c) ** 2
    beta = check_probability("beta", beta)
    block = check_positive_int("block", block)
    dtype = torch.promote_types(x.dtype, score.dtype)
    x, score = x.to(dtype), score.to(device=x.device, dtype=dtype)
    n, d = x.shape
    sq, sx = (x * x).sum(-1), (score * x).sum(-1)
    total = x.new_zeros(())
    for i in range(0, n, block):
        xi, si = x[i:i + block], score[i:i + block]
        r2 = (sq[i:i + block, None] + sq[None, :] - 2 * xi @ x.T).clamp_min(0.0)  # |x_i - x_j|^2
        u = c2 + r2
        # s_i . grad_{x_j} k + s_j . grad_{x_i} k = 2 beta u^(-beta-1) (s_i - s_j) . (x_i - x_j)
        sr = sx[i:i + block, None] - si @ x.T - xi @ score.T + sx[None, :]
        trace = 2 * beta * d * u ** (-beta - 1) - 4 * beta * (beta + 1) * r2 * u ** (-beta - 2)
        total = total + ((si @ score.T) * u**-beta + 2 * beta * u ** (-beta - 1) * sr + trace).sum()
    return math.sqrt(max(float(total), 0.0)) / n


def sliced_ks(x: Tensor, y: Tensor, n_projections: int = 128, *, generator: torch.Generator | None = None,
              n_bins: int | None = None) -> float:
    """Sliced Kolmogorov-Smirnov distance: mean over random unit directions of the 1-D KS statistic.

    With ``n_bins=None`` each 1-D statistic is exact: ``sup_t |F_x(t) - F_y(t)|`` of the projected
    empirical CDFs. With ``n_bins`` set, it follows the SLIPS benchmark code: both CDFs are
    histograms with ``n_bins`` equal bins spanning the range of the projected ``y`` (the reference,
    SLIPS's ``samples1``) and the statistic is the max over bin edges (slightly smaller).

    Args:
        x: ``(n, d)`` samples.
        y: ``(m, d)`` reference samples.
        n_projections: number of directions, uniform on the sphere.
        generator: seeds the directions.
        n_bins: ``None`` (exact) or the SLIPS histogram resolution (they used 256).
    """
    x, y = _pair(x, y)
    n_projections = check_positive_int("n_projections", n_projections)
    check_generator("generator", generator)
    dirs = torch.randn(n_projections, x.shape[1], dtype=x.dtype, generator=generator,
                       device="cpu" if generator is None else generator.device).to(x.device)
    dirs = dirs / torch.linalg.vector_norm(dirs, dim=-1, keepdim=True)
    px, py = (x @ dirs.T).T, (y @ dirs.T).T  # (P, n), (P, m)
    if n_bins is None:
        sx, sy = px.sort(-1).values, py.sort(-1).values
        pts = torch.cat([sx, sy], dim=-1)
        fx = torch.searchsorted(sx.contiguous(), pts.contiguous(), right=True).to(x.dtype) / sx.shape[-1]
        fy = torch.searchsorted(sy.contiguous(), pts.contiguous(), right=True).to(x.dtype) / sy.shape[-1]
        return float((fx - fy).abs().amax(-1).mean())
    n_bins = check_positive_int("n_bins", n_bins)
    lo, hi = py.amin(-1, keepdim=True), py.amax(-1, keepdim=True)
    edges = lo + (hi - lo) * torch.linspace(0, 1, n_bins + 1, dtype=x.dtype, device=x.device)[1:]

    def cdf(p: Tensor) -> Tensor:  # fraction of in-range points <= each right bin edge
        inside = (p >= lo) & (p <= hi)
        counts = ((p[:, None, :] <= edges[:, :, None]) & inside[:, None, :]).sum(-1).to(x.dtype)
        return counts / inside.sum(-1, keepdim=True).clamp_min(1).to(x.dtype)

    return float((cdf(px) - cdf(py)).abs().amax(-1).mean())


def mode_assignment(x: Tensor, modes: Tensor) -> Tensor:
    """Index of the nearest centre (Euclidean) for each sample: ``(n, d), (M, d) -> (n,)`` long."""
    x, modes = _pair(x, modes, "x", "modes")
    return torch.cdist(x, modes).argmin(-1)


def mode_counts(x: Tensor, modes: Tensor, *, radius: float | None = None) -> Tensor:
    """Number of samples assigned to each centre, ``(M,)``; with ``radius``, only samples within it."""
    x, modes = _pair(x, modes, "x", "modes")
    d = torch.cdist(x, modes)
    dist, idx = d.min(-1)
    if radius is not None:
        idx = idx[dist <= check_positive("radius", radius)]
    return torch.bincount(idx, minlength=modes.shape[0])


def mode_coverage(x: Tensor, modes: Tensor, *, min_count: int = 1, radius: float | None = None) -> float:
    """Fraction of centres with at least ``min_count`` samples assigned to them (nearest centre).

    ``radius`` (optional) ignores samples farther than ``radius`` from their nearest centre.
    """
    min_count = check_positive_int("min_count", min_count)
    counts = mode_counts(x, modes, radius=radius)
    return float((counts >= min_count).to(torch.float64).mean())


def mode_weight_error(x: Tensor, modes: Tensor, weights: Tensor) -> float:
    """Total-variation distance ``0.5 sum_k |p_hat_k - w_k|`` between the empirical nearest-centre
    frequencies and the true component weights ``(M,)`` (normalised internally)."""
    counts = mode_counts(x, modes).to(torch.float64)
    w = _hist("weights", weights, modes.shape[0], counts)
    return float(0.5 * (counts / counts.sum() - w).abs().sum())


def mode_entropy(x: Tensor, modes: Tensor, *, normalised: bool = True) -> float:
    """Entropy of the empirical nearest-centre frequencies; divided by ``log M`` when ``normalised``
    (1 = all modes equally populated, 0 = a single mode)."""
    check_bool("normalised", normalised)
    counts = mode_counts(x, modes).to(torch.float64)
    p = counts / counts.sum()
    h = float(-(p[p > 0] * p[p > 0].log()).sum())
    m = modes.shape[0]
    return h / math.log(m) if normalised and m > 1 else h


class LogZEstimates(NamedTuple):
    """Estimates of ``log Z`` from log importance weights ``log w_i = log pi~(x_i) - log q(x_i)``."""

    log_z: float
    """``log (1/n) sum_i w_i`` (logmeanexp): unbiased for Z, a stochastic lower bound on log Z."""
    elbo: float
    """``(1/n) sum_i log w_i``: the ELBO-type lower bound (<= ``log_z``)."""
    ess: float
    """Effective sample size ``(sum w)^2 / sum w^2`` in ``[1, n]``."""


def log_z_estimates(log_weights: Tensor) -> LogZEstimates:
    """``log Z`` estimates (logmeanexp and mean of the log weights) and the ESS from ``(n,)`` log weights.

    A log weight of ``-inf`` is a zero weight (then ``elbo = -inf``); NaN, ``+inf``, an empty tensor
    or all weights zero raise ``ValueError``.
    """
    lw = check_tensor("log_weights", log_weights, ndim=1, finite=False).to(torch.float64)
    n = lw.shape[0]
    if n == 0:
        raise ValueError("log_weights must not be empty")
    if bool(torch.isnan(lw).any()) or bool((lw == math.inf).any()):
        raise ValueError("log_weights has non-finite entries (NaN or +inf); only -inf (a zero weight) is allowed")
    if bool((lw == -math.inf).all()):
        raise ValueError("log_weights are all -inf (every weight is zero): log Z and the ESS are undefined")
    lse = torch.logsumexp(lw, 0)
    ess = float(torch.exp(2 * lse - torch.logsumexp(2 * lw, 0)))
    return LogZEstimates(float(lse - math.log(n)), float(lw.mean()), ess)


def sqrtm_psd(a: Tensor, *, inverse: bool = False) -> Tensor:
    """Symmetric square root (or inverse square root) of symmetric PSD matrices ``(..., d, d)``.

    ``a`` (floating, square) is symmetrised and its negative eigenvalues (round-off) are set to 0
    (``inverse=True`` of a singular matrix is then a ``ValueError``); PSD is not checked: see
    :func:`sciml.validation.check_covariance`.
    """
    check_tensor("a", a, finite=False)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"a must be square matrices of shape (..., d, d), got {tuple(a.shape)}")
    if a.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"a must be float32 or float64 (an eigendecomposition), got {a.dtype}")
    a = 0.5 * (a + a.transpose(-1, -2))
    vals, vecs = torch.linalg.eigh(a)
    vals = vals.clamp_min(0.0)
    if inverse and bool((vals == 0).any()):
        raise ValueError("a is singular: its inverse square root is infinite")
    f = vals.rsqrt() if inverse else vals.sqrt()
    return (vecs * f[..., None, :]) @ vecs.transpose(-1, -2)


def _gaussian_args(m1: object, s1: object, m2: object, s2: object) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Means ``(..., d)`` and PSD covariances ``(..., d, d)`` in float64, checked (names ``m1, S1, m2, S2``)."""
    out = []
    for mname, m, sname, s in (("m1", m1, "S1", s1), ("m2", m2, "S2", s2)):
        m = check_tensor(mname, as_tensor(mname, m))
        s = check_tensor(sname, as_tensor(sname, s))
        if m.ndim < 1:
            raise ValueError(f"{mname} must have shape (..., d), got a scalar")
        d = m.shape[-1]
        if s.shape[-2:] != (d, d):
            raise ValueError(f"{sname} must have shape (..., {d}, {d}) to match {mname}, got {tuple(s.shape)}")
        eps = torch.finfo(s.dtype).eps if s.is_floating_point() else torch.finfo(torch.float64).eps
        out += [m.to(torch.float64), check_covariance(sname, s.to(torch.float64), eps=eps)]
    if out[0].shape[-1] != out[2].shape[-1]:
        raise ValueError(f"m1 and m2 must have the same dimension, got {out[0].shape[-1]} and {out[2].shape[-1]}")
    try:
        torch.broadcast_shapes(out[0].shape[:-1], out[1].shape[:-2], out[2].shape[:-1], out[3].shape[:-2])
    except RuntimeError as exc:
        raise ValueError("the batch shapes of m1, S1, m2, S2 do not broadcast: "
                         f"{[tuple(t.shape) for t in out]}") from exc
    return out[0], out[1], out[2], out[3]


def gaussian_w2_sq(m1: Tensor, s1: Tensor, m2: Tensor, s2: Tensor) -> Tensor:
    """Squared W2 between Gaussians, batched: ``|m1 - m2|^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})``.

    Means ``(..., d)``, covariances ``(..., d, d)`` (broadcast against each other) -> ``(...)``, in
    float64. Covariances must be symmetric PSD to ``sqrt(eps) * max|S|`` (eps of their dtype; see
    :func:`sciml.validation.check_covariance`), else ``ValueError`` naming ``S1`` / ``S2``.
    """
    m1, s1, m2, s2 = _gaussian_args(m1, s1, m2, s2)
    r1 = sqrtm_psd(s1)
    mid = r1 @ s2 @ r1
    eig = torch.linalg.eigvalsh(0.5 * (mid + mid.transpose(-1, -2))).clamp_min(0.0)
    tr = torch.diagonal(s1, dim1=-2, dim2=-1).sum(-1) + torch.diagonal(s2, dim1=-2, dim2=-1).sum(-1)
    return ((m1 - m2) ** 2).sum(-1) + (tr - 2 * eig.sqrt().sum(-1)).clamp_min(0.0)


def gaussian_w2(m1: Tensor, s1: Tensor, m2: Tensor, s2: Tensor) -> float:
    """Closed-form W2 between ``N(m1, S1)`` and ``N(m2, S2)``: the square root of :func:`gaussian_w2_sq`.

    Means ``(d,)`` and covariances ``(d, d)`` as tensors or nested lists (computed in float64).
    """
    m1, s1, m2, s2 = _gaussian_args(m1, s1, m2, s2)
    if m1.ndim != 1 or m2.ndim != 1:
        raise ValueError(f"m1 and m2 must have shape (d,), got {tuple(m1.shape)} and {tuple(m2.shape)}; "
                         "use gaussian_w2_sq for batches")
    return math.sqrt(float(gaussian_w2_sq(m1, s1, m2, s2)))
