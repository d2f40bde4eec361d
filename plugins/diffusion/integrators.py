"""Stiff-stable one-step integrators for Langevin-type SDEs ``dY = f(Y) dt + sigma dB``.

* :func:`skrock_step`: the stabilised explicit Runge-Kutta method SK-ROCK (Abdulle, Almuslimani
  and Vilmart, 2018), the member of Abdulle's S-ROCK family built for ergodic Langevin
  dynamics. ``s`` stages (``s`` drift evaluations) buy a stability interval of length about
  ``2 (1 - 4 eta / 3) s^2`` along the negative real axis instead of Euler's 2, and the stationary
  law of a stiff Ornstein-Uhlenbeck process stays accurate (the noise is injected through the
  first stage, so the stabilising polynomial damps it too).
* :func:`ou_exponential_step`: the exponential (Euler) integrator for
  ``dY = [-a (Y - m) + g(Y)] dt + sqrt(2 D) dB``: the linear Gaussian part is integrated exactly
  and ``g`` frozen over the step, so it is stable for any ``a h``.
* :func:`chebyshev_coefficients`: the SK-ROCK stage coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["chebyshev_coefficients", "skrock_step", "skrock_stability_length", "ou_exponential_step", "obabo_step"]


@lru_cache(maxsize=64)
def chebyshev_coefficients(s: int, eta: float = 0.05) -> tuple[float, float, tuple[float, ...]]:
    """Return ``(omega0, omega1, T)`` with ``T[j] = T_j(omega0)``, ``j = 0..s`` (Chebyshev, 1st kind).

    ``omega0 = 1 + eta / s^2`` (damping ``eta``), ``omega1 = T_s(omega0) / T_s'(omega0)``.
    """
    if s < 1:
        raise ValueError(f"stages must be >= 1, got {s}")
    w0 = 1.0 + eta / (s * s)
    t = [1.0, w0]
    u = [1.0, 2.0 * w0]  # Chebyshev of the 2nd kind, U_j(w0)
    for _ in range(2, s + 1):
        t.append(2.0 * w0 * t[-1] - t[-2])
        u.append(2.0 * w0 * u[-1] - u[-2])
    dts = s * u[s - 1]  # T_s'(w0) = s U_{s-1}(w0)
    w1 = t[s] / dts
    return w0, w1, tuple(t)


def skrock_stability_length(s: int, eta: float = 0.05) -> float:
    """Length of the real stability interval ``[-L, 0]`` of SK-ROCK with ``s`` stages: ``L = 2 w0 / w1``."""
    w0, w1, _ = chebyshev_coefficients(s, eta)
    return 2.0 * w0 / w1


def skrock_step(y: Tensor, drift: Callable[[Tensor], Tensor], h: float | Tensor, noise: Tensor, stages: int,
                eta: float = 0.05) -> Tensor:
    """One SK-ROCK step for ``dY = f(Y) dt + sigma dB`` with additive noise.

    Args:
        y: current state ``(n, d)``.
        drift: ``f``, evaluated ``stages`` times.
        h: step size (> 0), a float or a ``(n, 1)`` tensor (one step per row).
        noise: the Brownian increment times the diffusion, ``sigma sqrt(h) xi``, shape of ``y``.
        stages: number of stages ``s >= 1`` (``s = 1`` is Euler-Maruyama).
        eta: damping parameter.

    Returns:
        the state after one step, shape of ``y``.
    """
    if stages == 1:
        return y + h * drift(y) + noise
    w0, w1, t = chebyshev_coefficients(stages, eta)
    mu1, nu1, kappa1 = w1 / w0, stages * w1 / 2.0, stages * w1 / w0
    k_prev = y
    k = y + mu1 * h * drift(y + nu1 * noise) + kappa1 * noise
    for j in range(2, stages + 1):
        mu = 2.0 * w1 * t[j - 1] / t[j]
        nu = 2.0 * w0 * t[j - 1] / t[j]
        kappa = -t[j - 2] / t[j]
        k, k_prev = mu * h * drift(k) + nu * k + kappa * k_prev, k
    return k


def ou_exponential_step(y: Tensor, a: float, m: Tensor, g: Tensor | float, h: float, diffusion: float,
                        xi: Tensor) -> Tensor:
    """Exponential integrator for ``dY = [-a (Y - m) + g] dt + sqrt(2 D) dB`` with ``g`` frozen.

    Exact when ``g`` is constant:
    ``Y' = m + g/a + e^{-a h} (Y - m - g/a) + sqrt(D (1 - e^{-2 a h}) / a) xi``.

    Args:
        y: current state ``(n, d)``.
        a: rate of the linear part (> 0).
        m: centre of the linear part (broadcastable to ``y``).
        g: frozen remaining drift (broadcastable to ``y``).
        h: step size (> 0).
        diffusion: ``D`` (so the noise is ``sqrt(2 D) dB``).
        xi: standard normal draws, shape of ``y``.
    """
    decay = math.exp(-a * h)
    phi = -math.expm1(-a * h) / a  # (1 - e^{-a h}) / a, accurate for small a h
    var = diffusion * (-math.expm1(-2.0 * a * h)) / a
    return m + decay * (y - m) + phi * g + math.sqrt(var) * xi



def obabo_step(x: Tensor, v: Tensor, force: Tensor, new_force: Callable[[Tensor], Tensor], h: float, friction: float,
               generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
    """One OBABO step of ``dX = V dt, dV = F(X) dt - gamma V dt + sqrt(2 gamma) dB`` (mass 1).

    An exact half-step of the Ornstein-Uhlenbeck velocity part, a half kick with ``force = F(x)``, a
    full drift, ``new_force(x')`` (the one force evaluation), a half kick and a half OU step.

    Returns:
        ``(x', v', F(x'))``.
    """
    c = math.exp(-0.5 * friction * h)
    s = math.sqrt(1.0 - c * c)
    v = c * v + s * torch.randn(v.shape, dtype=v.dtype, device=v.device, generator=generator)
    v = v + 0.5 * h * force
    x = x + h * v
    force = new_force(x)
    v = v + 0.5 * h * force
    v = c * v + s * torch.randn(v.shape, dtype=v.dtype, device=v.device, generator=generator)
    return x, v, force

class LipschitzTracker:
    """Running secant estimate of the Lipschitz constant of a gradient field.

    :meth:`update` takes points ``(n, d)`` and their gradients; the ratio
    ``|g - g_prev| / |z - z_prev|`` against the previous call's points (row by row) raises the
    estimate (max over finite rows). Used to choose the number of SK-ROCK stages on the fly.
    """

    def __init__(self, initial: float = 1.0) -> None:
        self.value = float(initial)
        self._last: tuple[Tensor, Tensor] | None = None

    def update(self, z: Tensor, g: Tensor) -> None:
        if self._last is not None and self._last[0].shape == z.shape:
            dz = (z - self._last[0]).norm(dim=-1)
            dg = (g - self._last[1]).norm(dim=-1)
            ok = torch.isfinite(dz) & torch.isfinite(dg) & (dz > 1e-12)
            if bool(ok.any()):
                self.value = max(self.value, float((dg[ok] / dz[ok]).max()))
        self._last = (z.detach(), g.detach())


def stages_for(stiffness: float, h: float, max_stages: int, safety: float = 0.8, eta: float = 0.05) -> int:
    """Fewest SK-ROCK stages whose stability interval covers ``h * stiffness / safety`` (capped)."""
    need = h * stiffness / safety
    s = 1
    while s < max_stages and skrock_stability_length(s, eta) < need:
        s += 1
    return s


__all__ += ["LipschitzTracker", "stages_for"]


def local_curvature(grad: Callable[[Tensor], Tensor], y: Tensor, direction: Tensor, iterations: int = 1,
                    rel_delta: float = 1e-4) -> tuple[Tensor, Tensor]:
    """Per-row estimate of the largest curvature of ``log pi`` at ``y`` by power iteration.

    Each iteration takes the finite-difference Hessian-vector product
    ``H v ~ (grad(y + delta v) - grad(y)) / delta`` (``v`` a unit vector per row,
    ``delta = rel_delta (1 + |y|)``) and replaces ``v`` by ``H v / |H v|``: the direction is carried
    from one call to the next (pass the returned one back), so it follows the top eigenvector of the
    Hessian as the states move, at one extra gradient per iteration. ``|H v|`` is a lower bound of
    the spectral radius of ``H`` at ``y`` that converges to it; unlike a running maximum of secants
    over all past evaluations it is local (it falls again when a state leaves a stiff region) and
    per row (one state far out in a stiff tail does not set the step of all the others).

    Args:
        grad: ``grad log pi`` ``(n, d) -> (n, d)``.
        y: ``(n, d)`` points.
        direction: ``(n, d)`` current directions (any non-zero rows; normalised here).
        iterations: power iterations (``iterations + 1`` gradient evaluations).
        rel_delta: relative finite-difference step.

    Returns:
        ``(curvature, direction)``: ``(n,)`` estimates (NaN on rows where the gradient is not finite)
        and the ``(n, d)`` updated unit directions.
    """
    g0 = grad(y)
    delta = rel_delta * (1.0 + y.norm(dim=-1, keepdim=True))
    v = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    curv = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
    for _ in range(max(int(iterations), 1)):
        hv = (grad(y + delta * v) - g0) / delta
        curv = hv.norm(dim=-1)
        ok = torch.isfinite(curv) & (curv > 0)
        v = torch.where(ok.unsqueeze(-1), hv / curv.clamp_min(1e-300).unsqueeze(-1), v)
    return curv, v


__all__ += ["local_curvature"]
