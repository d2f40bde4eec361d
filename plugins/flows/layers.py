"""Planar and radial flow layers (Rezende and Mohamed, 2015) with their inverses.

Each layer maps ``z -> x`` (``forward`` returns ``x`` and ``log|det dx/dz|``, shapes ``(n, d)`` and
``(n,)``) and is invertible for every value of its raw parameters thanks to the published
reparameterisations. The inverse is not closed form for the planar layer: a safeguarded Newton
iteration on a bracketed 1-D equation along ``w`` solves it to the dtype's round-off. The radial
layer's 1-D equation in ``r = |z - z0|`` is a quadratic, solved in closed form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PlanarLayer", "RadialLayer", "InverseError"]


class InverseError(ArithmeticError):
    """A layer's numerical inverse did not converge (the message names the layer and the points)."""


class PlanarLayer(nn.Module):
    """``x = z + u_hat tanh(w.z + b)`` with ``u_hat = u + (m(w.u) - w.u) w / |w|^2``, ``m(s) = -1 + softplus(s)``.

    ``w.u_hat = m(w.u) > -1`` makes the map strictly increasing along ``w`` and so invertible.
    """

    def __init__(self, dim: int, *, init_scale: float = 0.01, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.w = nn.Parameter(init_scale * torch.randn(dim, generator=generator, dtype=dtype))
        self.u = nn.Parameter(init_scale * torch.randn(dim, generator=generator, dtype=dtype))
        self.b = nn.Parameter(torch.zeros((), dtype=dtype))

    def _u_hat(self) -> tuple[Tensor, Tensor]:
        wu = self.w @ self.u
        m = -1.0 + F.softplus(wu)
        u_hat = self.u + (m - wu) * self.w / (self.w @ self.w).clamp_min(torch.finfo(self.w.dtype).tiny)
        return u_hat, m  # m = w . u_hat

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, wu_hat = self._u_hat()
        t = torch.tanh(z @ self.w + self.b)
        return z + t[:, None] * u_hat, torch.log1p(wu_hat * (1 - t * t))

    def inverse(self, x: Tensor, max_iter: int = 200) -> Tensor:
        """``z`` with ``forward(z)[0] = x``; raises :class:`InverseError` if the root find fails."""
        with torch.no_grad():
            u_hat, c = self._u_hat()
            y = x @ self.w + self.b  # a = w.z + b solves g(a) = a + c tanh(a) - y = 0, g increasing
            lo, hi = y - c.abs() - 1.0, y + c.abs() + 1.0
            a = y.clone()
            eps = torch.finfo(x.dtype).eps
            for _ in range(max_iter):
                t = torch.tanh(a)
                g = a + c * t - y
                tol = 4 * eps * (y.abs() + c.abs() + a.abs() + 1.0)
                if bool((g.abs() <= tol).all()):
                    break
                lo = torch.where(g < 0, a, lo)
                hi = torch.where(g > 0, a, hi)
                step = a - g / (1 + c * (1 - t * t))
                inside = (step > lo) & (step < hi)
                a = torch.where(inside, step, 0.5 * (lo + hi))
            else:
                bad = int((g.abs() > tol).sum())
                raise InverseError(f"PlanarLayer.inverse: the root find did not converge at {bad} of "
                                   f"{x.shape[0]} points in {max_iter} iterations (largest residual "
                                   f"{float(g.abs().max()):.3g})")
            return x - torch.tanh(a)[:, None] * u_hat


class RadialLayer(nn.Module):
    """``x = z + beta (z - z0) / (alpha + r)``, ``r = |z - z0|``, ``alpha = softplus(a)``, ``beta = -alpha + softplus(b)``.

    ``beta > -alpha`` makes ``r -> r (1 + beta / (alpha + r))`` strictly increasing, so the map is invertible.
    """

    def __init__(self, dim: int, *, init_scale: float = 0.01, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.z0 = nn.Parameter(torch.randn(dim, generator=generator, dtype=dtype))
        self.a = nn.Parameter(torch.zeros((), dtype=dtype))
        # softplus(b) ~ log 2 = alpha: beta starts near 0 (the identity)
        b0 = _softplus_inverse(math.log(2.0)) + init_scale * float(torch.randn((), generator=generator, dtype=dtype))
        self.b = nn.Parameter(torch.tensor(b0, dtype=dtype))

    def _alpha_beta(self) -> tuple[Tensor, Tensor]:
        alpha = F.softplus(self.a)
        return alpha, -alpha + F.softplus(self.b)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        alpha, beta = self._alpha_beta()
        diff = z - self.z0
        r = torch.linalg.vector_norm(diff, dim=-1)
        bh = beta / (alpha + r)
        d = z.shape[-1]
        # det = (1 + beta h)^(d-1) (1 + beta h + beta h' r), with h' = -1 / (alpha + r)^2
        log_det = (d - 1) * torch.log1p(bh) + torch.log1p(beta * alpha / (alpha + r) ** 2)
        return z + bh[:, None] * diff, log_det

    def inverse(self, x: Tensor) -> Tensor:
        """``z`` with ``forward(z)[0] = x``, in closed form (the positive root of a quadratic in ``r``)."""
        with torch.no_grad():
            alpha, beta = self._alpha_beta()
            diff = x - self.z0
            rho = torch.linalg.vector_norm(diff, dim=-1)
            p = alpha + beta - rho  # r^2 + p r - alpha rho = 0
            disc = torch.sqrt(p * p + 4 * alpha * rho)
            r = torch.where(p >= 0, 2 * alpha * rho / (p + disc).clamp_min(torch.finfo(x.dtype).tiny),
                            0.5 * (disc - p))
            return self.z0 + diff / (1 + beta / (alpha + r))[:, None]


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))
