"""Mixture targets: Gaussian mixtures (8-MoG, 25-GMM, 40-MoG), Student-t mixtures (10-MoS), rings."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sciml.targets.base import Target
from sciml.validation import check_positive_int, check_tensor

__all__ = [
    "GaussianMixture",
    "mog8",
    "gmm25",
    "mog40",
]

_LOG_2PI = math.log(2 * math.pi)


def _weights(weights: Tensor | None, m: int, dtype: torch.dtype) -> Tensor:
    if weights is None:
        return torch.full((m,), 1.0 / m, dtype=dtype)
    w = check_tensor("weights", torch.as_tensor(weights, dtype=dtype), shape=(m,))
    if bool((w <= 0).any()):
        raise ValueError("weights must be > 0")
    return w / w.sum()


class GaussianMixture(Target):
    """Mixture of Gaussians with diagonal covariances, normalised (``log_z = 0``).

    Args:
        means: ``(M, dim)`` component means.
        variances: per-component variances: a number (shared, isotropic), ``(M,)`` (isotropic per
            component) or ``(M, dim)`` (diagonal).
        weights: ``(M,)`` positive weights (normalised internally); default equal.
        dtype, device: of evaluations and samples.
    """

    has_exact_samples = True

    def __init__(self, means: Tensor, variances: float | Tensor = 1.0, weights: Tensor | None = None, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> None:
        means = check_tensor("means", torch.as_tensor(means, dtype=dtype), ndim=2)
        m, d = means.shape
        v = torch.as_tensor(variances, dtype=dtype)
        if v.ndim == 0:
            v = v.expand(m, d)
        elif v.shape == (m,):
            v = v[:, None].expand(m, d)
        elif v.shape != (m, d):
            raise ValueError(f"variances must be a number, (M,) or (M, dim) = ({m}, {d}), got {tuple(v.shape)}")
        check_tensor("variances", v)
        if bool((v <= 0).any()):
            raise ValueError("variances must be > 0")
        w = _weights(weights, m, dtype)
        super().__init__(d, dtype=dtype, device=device, log_z=0.0, modes=means, mode_weights=w)
        self.means = means.to(self.device)
        self.variances = v.contiguous().to(self.device)
        self.log_weights = w.log().to(self.device)

    def _component_log_probs(self, x: Tensor) -> Tensor:
        diff = x[..., None, :] - self.means  # (..., M, d)
        return (
            self.log_weights
            - 0.5 * (diff * diff / self.variances).sum(-1)
            - 0.5 * (self.variances.log().sum(-1) + self.dim * _LOG_2PI)
        )

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        return torch.logsumexp(self._component_log_probs(x), dim=-1)

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check_x(x)
        x = x.detach()
        comp = self._component_log_probs(x)
        lp = torch.logsumexp(comp, dim=-1)
        resp = torch.softmax(comp, dim=-1)  # (..., M)
        grad = (resp[..., None] * (self.means - x[..., None, :]) / self.variances).sum(-2)
        return lp, grad

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        idx = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        z = self._randn(n, self.dim, generator=generator)
        return self.means[idx] + self.variances[idx].sqrt() * z


def mog8(*, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> GaussianMixture:
    """8-MoG (2-D): means ``10 (1 + cos(2 pi i/8), 1 + sin(2 pi i/8))``, covariance ``0.7 I``, equal weights."""
    ang = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    means = 10 * torch.stack([1 + torch.cos(ang), 1 + torch.sin(ang)], dim=-1)
    return GaussianMixture(means, 0.7, dtype=dtype, device=device)


def gmm25(*, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> GaussianMixture:
    """25-GMM (2-D): means on ``{-10, -5, 0, 5, 10}^2``, covariance ``0.3 I``, equal weights, log Z = 0."""
    g = torch.tensor([-10.0, -5.0, 0.0, 5.0, 10.0], dtype=torch.float64)
    means = torch.cartesian_prod(g, g)
    return GaussianMixture(means, 0.3, dtype=dtype, device=device)


def mog40(dim: int = 2, seed: int = 0, *, dtype: torch.dtype = torch.float64,
          device: torch.device | str | None = None) -> GaussianMixture:
    """40-MoG: 40 unit-covariance components with means ``U[-40, 40]^dim`` (seeded), equal weights."""
    dim = check_positive_int("dim", dim)
    gen = torch.Generator().manual_seed(int(seed))
    means = 80.0 * torch.rand(40, dim, dtype=torch.float64, generator=gen) - 40.0
    return GaussianMixture(means, 1.0, dtype=dtype, device=device)
