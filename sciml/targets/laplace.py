"""Laplace approximation of a target and the target in the approximation's standard coordinates.

:func:`laplace_fit` finds a mode of ``log pi`` (L-BFGS from one or several start points; of several,
the mode with the most Laplace mass) and the Hessian there (central differences of the gradient); :class:`StandardisedTarget` is ``pi`` seen through ``x = mean + scale z``,
so that a sampler tuned for unit-scale targets meets a target whose bulk is about ``N(0, I)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from sciml.targets.base import Target, TargetError

__all__ = ["SAME_MODE_NATS", "Laplace", "LaplaceError", "StandardisedTarget", "laplace_fit", "laplace_starts"]

LogProbAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]


class LaplaceError(RuntimeError):
    """No usable mode / Hessian: the optimiser left the finite region or the density is unbounded."""


@dataclass(frozen=True)
class Laplace:
    """``N(mean, scale scale^T)``: ``mean`` (dim,), ``scale`` (dim, dim) with ``scale^T H scale = I``
    for the (floored) negative Hessian ``H`` at the mode; ``log_det`` = ``log |det scale|``;
    ``iterations`` of L-BFGS, ``grad_norm`` at the mode, ``n_floored`` eigenvalues of ``H`` raised to
    the floor (flat or convex directions); ``log_evidence`` = ``log pi(mode) + log_det + dim/2 log 2 pi``
    (the Laplace estimate of ``log Z``); ``start`` = the index of the start point whose mode this is;
    ``other_modes`` = ``(mode (dim,), log_evidence)`` of the other distinct modes the starts reached."""

    mean: Tensor
    scale: Tensor
    log_det: float
    iterations: int
    grad_norm: float
    n_floored: int
    log_evidence: float = math.nan
    start: int = 0
    other_modes: tuple[tuple[Tensor, float], ...] = ()


#: Fits whose Laplace evidence is within this many nats of the best are the same mode reached twice.
SAME_MODE_NATS = 1e-3


def laplace_starts(x0: Tensor, restarts: int) -> Tensor:
    """``(1 + restarts, dim)`` start points: ``x0`` ``(dim,)``, then ``restarts`` points uniform on
    ``(-2, 2)^dim`` (Stan's random initial values on an unconstrained space) from a fixed seed, so
    that the fit depends on the target alone."""
    g = torch.Generator(device="cpu").manual_seed(0)
    extra = 4.0 * torch.rand(restarts, x0.shape[-1], generator=g, dtype=torch.float64) - 2.0
    return torch.cat([x0[None], extra.to(dtype=x0.dtype, device=x0.device)])


def laplace_fit(log_prob_and_grad: LogProbAndGrad, x0: Tensor, *, max_iter: int = 500,
                eig_floor: float = 1e-10) -> Laplace:
    """Laplace approximation of ``pi`` around the mode reached from ``x0`` ``(dim,)``, or around the
    best of the modes reached from each row of ``x0`` ``(k, dim)``.

    The mode: L-BFGS (strong Wolfe line search) on ``-log pi`` in float64, at most ``max_iter``
    iterations. The Hessian: central differences of the gradient, twice (the second pass with steps
    of 1e-3 of the first pass's per-coordinate scales, so coordinates of any magnitude are resolved),
    symmetrised. Eigenvalues of ``H = -Hessian`` below ``eig_floor * max eigenvalue`` (non-convex or
    flat directions) are replaced by ``max(|lambda|, floor)``. Costs ``~max_iter`` + ``4 dim`` gradient
    evaluations at most per start. Of several starts, the first is the fit as from one start (its
    failure raises); the others are extra candidates, skipped when they fail (the target raising
    there included). Among the first start's fit and the others' that converged (fewer than
    ``max_iter`` iterations) with no floored eigenvalue (a floored direction inflates the evidence),
    the one with the largest ``log_evidence`` (the mode holding the most mass, not merely the
    highest) is returned, the earliest start's among fits within :data:`SAME_MODE_NATS` of it.

    Raises:
        LaplaceError: the (first) start or its optimum is not finite, or the Hessian is not finite.
    """
    if x0.ndim == 1:
        return _fit_from(log_prob_and_grad, x0, max_iter, eig_floor, 0)
    fits = [_fit_from(log_prob_and_grad, x0[0], max_iter, eig_floor, 0)]
    for i, start in enumerate(x0[1:], start=1):
        try:
            fit = _fit_from(log_prob_and_grad, start, max_iter, eig_floor, i)
        except (LaplaceError, TargetError, torch.linalg.LinAlgError):
            continue
        if fit.iterations < max_iter and fit.n_floored == 0:
            fits.append(fit)
    best = max(f.log_evidence for f in fits)
    chosen = next(f for f in fits if f.log_evidence >= best - SAME_MODE_NATS)
    others: list[Laplace] = []
    for f in fits:  # one entry per distinct mode
        if not any(_same_mode(f, g) for g in [chosen, *others]):
            others.append(f)
    return replace(chosen, other_modes=tuple((f.mean, f.log_evidence) for f in others))


def _same_mode(a: Laplace, b: Laplace) -> bool:
    """Two fits of one mode: equal evidence (:data:`SAME_MODE_NATS`) and within 0.01 of ``b``'s
    standard units of each other (L-BFGS stops at a gradient of ~1e-9, far closer)."""
    z = torch.linalg.solve(b.scale.to(torch.float64), (a.mean - b.mean).to(torch.float64))
    return abs(a.log_evidence - b.log_evidence) <= SAME_MODE_NATS and float(z.norm()) < 1e-2


def _fit_from(log_prob_and_grad: LogProbAndGrad, x0: Tensor, max_iter: int, eig_floor: float, index: int) -> Laplace:
    """:func:`laplace_fit` from one start point ``x0`` (dim,), its index ``index`` recorded."""
    dtype = x0.dtype
    x = x0.detach().to(torch.float64).clone().requires_grad_(True)

    def evaluate(z: Tensor) -> tuple[float, Tensor]:
        lp, g = log_prob_and_grad(z.to(dtype).unsqueeze(0))
        return float(lp[0]), g[0].to(torch.float64)

    lp0, g0 = evaluate(x.detach())
    if not (math.isfinite(lp0) and bool(torch.isfinite(g0).all())):
        raise LaplaceError(f"the log-density or its gradient is not finite at the start point (log pi = {lp0})")
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-9,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        lp, g = evaluate(x.detach())
        if not math.isfinite(lp):  # outside the support: an uphill wall for the line search
            lp, g = -1e300, torch.zeros_like(g)
        x.grad = -torch.nan_to_num(g)
        return torch.tensor(-lp, dtype=torch.float64)

    opt.step(closure)
    mode = x.detach()
    lp, g = evaluate(mode)
    if not (math.isfinite(lp) and bool(torch.isfinite(g).all())):
        raise LaplaceError(f"the optimiser ended at a point where log pi = {lp} (an unbounded density?)")
    steps = 1e-4 * (1.0 + mode.abs())
    h = _neg_hessian(log_prob_and_grad, mode, steps, dtype)
    diag = torch.diagonal(h)
    steps = torch.where(torch.isfinite(diag) & (diag > 0), 1e-3 / diag.clamp_min(1e-300).sqrt(), steps)
    h = _neg_hessian(log_prob_and_grad, mode, steps, dtype)
    if not bool(torch.isfinite(h).all()):
        raise LaplaceError("the Hessian at the mode is not finite")
    lam, vec = torch.linalg.eigh(h)
    floor = eig_floor * max(float(lam.abs().max()), 1e-300)
    floored = lam < floor
    lam = torch.where(floored, lam.abs().clamp_min(floor), lam)
    scale = vec * lam.rsqrt()
    state = opt.state[opt._params[0]]
    log_det = float(-0.5 * lam.log().sum())
    return Laplace(mode.to(dtype), scale.to(dtype), log_det, int(state.get("n_iter", 0)), float(g.norm()),
                   int(floored.sum()), lp + log_det + 0.5 * mode.shape[0] * math.log(2 * math.pi), index)


def _neg_hessian(log_prob_and_grad: LogProbAndGrad, x: Tensor, steps: Tensor, dtype: torch.dtype) -> Tensor:
    """``-d^2 log pi / dx^2`` at ``x`` by central differences of the gradient (one batch of 2 dim points)."""
    d = x.shape[0]
    offsets = torch.diag(steps)
    points = torch.cat([x + offsets, x - offsets]).to(dtype)
    _, g = log_prob_and_grad(points)
    g = g.to(torch.float64)
    h = -(g[:d] - g[d:]) / (2.0 * steps[:, None])  # row i: d grad / d x_i
    return 0.5 * (h + h.T)


class StandardisedTarget(Target):
    """``pi`` in the coordinates ``z`` of ``x = mean + scale z``: ``log p(z) = log pi(mean + scale z)``
    (the constant ``log |det scale|`` left out: the normalising constant is ``Z_pi / |det scale|``);
    gradients ``scale^T grad log pi``. :meth:`to_x` / :meth:`to_z` map ``(n, dim)`` points."""

    def __init__(self, base: Target, mean: Tensor, scale: Tensor) -> None:
        super().__init__(base.dim, dtype=base.dtype, device=base.device)
        self.base = base
        self.mean = mean.to(dtype=base.dtype, device=base.device)
        self.scale = scale.to(dtype=base.dtype, device=base.device)
        self.log_det = float(torch.linalg.slogdet(self.scale.to(torch.float64))[1])

    def to_x(self, z: Tensor) -> Tensor:
        return self.mean + z @ self.scale.T

    def to_z(self, x: Tensor) -> Tensor:
        return torch.linalg.solve(self.scale, (x - self.mean).T).T

    def log_prob(self, z: Tensor) -> Tensor:
        return self.base.log_prob(self.to_x(z))

    def log_prob_and_grad(self, z: Tensor) -> tuple[Tensor, Tensor]:
        lp, g = self.base.log_prob_and_grad(self.to_x(z))
        return lp, g @ self.scale
