"""Mixture targets: Gaussian mixtures (8-MoG, 25-GMM, 40-MoG), Student-t mixtures (10-MoS), rings."""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor

from sciml.distributions.mixture import gaussian_log_prob
from sciml.targets.base import Target, check_dtype_device
from sciml.validation import (
    as_tensor,
    check_positive,
    check_positive_int,
    check_seed,
    check_tensor,
)

__all__ = [
    "GaussianMixture",
    "StudentTMixture",
    "Rings",
    "mog8",
    "gmm25",
    "mog40",
    "mos10",
    "rings",
]

_LOG_2PI = math.log(2 * math.pi)


def _centres(name: str, value: object, dtype: torch.dtype) -> Tensor:
    """Component centres: a finite ``(M, dim)`` tensor with ``M, dim >= 1``."""
    c = check_tensor(name, as_tensor(name, value, dtype), ndim=2)
    if c.shape[0] < 1 or c.shape[1] < 1:
        raise ValueError(f"{name} must have shape (M >= 1, dim >= 1), got {tuple(c.shape)}")
    return c


def _seed(seed: object) -> int:
    return check_seed("seed", seed)


def _weights(weights: Tensor | None, m: int, dtype: torch.dtype) -> Tensor:
    if weights is None:
        return torch.full((m,), 1.0 / m, dtype=dtype)
    w = check_tensor("weights", as_tensor("weights", weights, dtype), shape=(m,))
    if bool((w <= 0).any()):
        raise ValueError("weights must be > 0")
    return w / w.sum()


class _Mixture(Target):
    """A finite mixture: subclasses give per-component log-densities (with log-weights) and gradients."""

    @abc.abstractmethod
    def _component_log_probs(self, x: Tensor) -> Tensor:
        """``log w_m + log p_m(x)``, shape ``(..., M)``."""

    @abc.abstractmethod
    def _component_grads(self, x: Tensor) -> Tensor:
        """``grad_x log p_m(x)``, shape ``(..., M, dim)``."""

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        return torch.logsumexp(self._component_log_probs(x), dim=-1)

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check_x(x)
        x = x.detach()
        comp = self._component_log_probs(x)
        resp = torch.softmax(comp, dim=-1)  # (..., M) responsibilities
        return torch.logsumexp(comp, dim=-1), (resp[..., None] * self._component_grads(x)).sum(-2)


class GaussianMixture(_Mixture):
    """Mixture of Gaussians with diagonal covariances, normalised (``log_z = 0``).

    Args:
        means: ``(M, dim)`` component means.
        variances: per-component variances: a number (shared, isotropic), ``(M,)`` (isotropic per
            component) or ``(M, dim)`` (diagonal).
        weights: ``(M,)`` positive weights (normalised internally); default equal.
        dtype: dtype of evaluations and samples.
        device: device of evaluations and samples.
    """

    has_exact_samples = True

    def __init__(self, means: Tensor, variances: float | Tensor = 1.0, weights: Tensor | None = None, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> None:
        check_dtype_device(dtype, device)
        means = _centres("means", means, dtype)
        m, d = means.shape
        v = as_tensor("variances", variances, dtype)
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
        centres = self.means.expand(*x.shape[:-1], *self.means.shape)  # the accurate difference form
        return self.log_weights + gaussian_log_prob(x, centres, variances=self.variances)

    def _component_grads(self, x: Tensor) -> Tensor:
        return (self.means - x[..., None, :]) / self.variances

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        idx = self._categorical(self.log_weights.exp(), n, generator)
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
    gen = torch.Generator().manual_seed(_seed(seed))
    means = 80.0 * torch.rand(40, dim, dtype=torch.float64, generator=gen) - 40.0
    return GaussianMixture(means, 1.0, dtype=dtype, device=device)


def _log_gamma_half_ratio(a: float) -> float:
    """``lgamma(a + 1/2) - lgamma(a)``; for ``a > 1e3`` by its asymptotic series (the difference of two
    lgammas near ``a log a`` loses every digit as ``a`` grows: df = 1e300 gave -692 for -1.84)."""
    if a <= 1e3:  # the series' first omitted term is below 1e-21 from here
        return math.lgamma(a + 0.5) - math.lgamma(a)
    inv = 1 / a
    return 0.5 * math.log(a) - inv / 8 + inv**3 / 192 + inv**5 / 640


class StudentTMixture(_Mixture):
    """Mixture of products of independent Student-t densities, normalised (``log_z = 0``).

    Component ``k`` has density ``prod_j t_df((x_j - loc_kj) / scale) / scale``.

    Args:
        locs: ``(M, dim)`` component locations.
        df: degrees of freedom (> 0).
        scale: per-coordinate scale (> 0).
        weights: ``(M,)`` positive weights; default equal.
    """

    has_exact_samples = True

    def __init__(self, locs: Tensor, df: float = 2.0, scale: float = 1.0, weights: Tensor | None = None, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> None:
        check_dtype_device(dtype, device)
        locs = _centres("locs", locs, dtype)
        self.df = check_positive("df", df)
        self.scale = check_positive("scale", scale)
        w = _weights(weights, locs.shape[0], dtype)
        super().__init__(locs.shape[1], dtype=dtype, device=device, log_z=0.0, modes=locs, mode_weights=w)
        self.locs = locs.to(self.device)
        self.log_weights = w.log().to(self.device)
        nu = self.df
        self._log_c = _log_gamma_half_ratio(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(self.scale)

    def _component_log_probs(self, x: Tensor) -> Tensor:
        z = (x[..., None, :] - self.locs) / self.scale
        per_coord = self._log_c - 0.5 * (self.df + 1) * torch.log1p(z * z / self.df)
        return self.log_weights + per_coord.sum(-1)

    def _component_grads(self, x: Tensor) -> Tensor:
        z = (x[..., None, :] - self.locs) / self.scale
        return -(self.df + 1) * z / (self.df + z * z) / self.scale

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        from scipy.special import stdtrit

        idx = self._categorical(self.log_weights.exp(), n, generator)
        u = torch.rand(n, self.dim, dtype=torch.float64, generator=generator, device=self._rng_device(generator))
        t = torch.from_numpy(stdtrit(self.df, u.cpu().numpy())).to(dtype=self.dtype, device=self.device)
        return self.locs[idx] + self.scale * t


class Rings(Target):
    """Concentric rings in 2-D: radius ``R ~ (1/K) sum_i N(radius (i + 1), sigma^2)``, angle uniform.

    Density ``p(x) = p_R(|x|) / (2 pi |x|)`` with ``p_R`` the (untruncated) radial mixture, as in the
    SLIPS benchmark code; its mass is ``P(R > 0)``, so ``log_z = log P(R > 0)`` (about ``-1e-11`` for the
    defaults). Exact samples draw the radius from ``p_R`` restricted to ``R > 0``.
    """

    has_exact_samples = True

    def __init__(self, num_rings: int = 4, radius: float = 1.0, sigma: float = 0.15, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> None:
        from scipy.special import log_ndtr, logsumexp

        check_dtype_device(dtype, device)
        k = check_positive_int("num_rings", num_rings)
        self.radius, self.sigma = check_positive("radius", radius), check_positive("sigma", sigma)
        centres = [self.radius * (i + 1) for i in range(k)]
        log_z = float(logsumexp([log_ndtr(c / self.sigma) for c in centres]) - math.log(k))
        super().__init__(2, dtype=dtype, device=device, log_z=log_z)
        self.centres = torch.tensor(centres, dtype=dtype, device=self.device)

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        r = torch.linalg.vector_norm(x, dim=-1)
        z = (r[..., None] - self.centres) / self.sigma
        log_pr = torch.logsumexp(-0.5 * z * z, dim=-1) - math.log(len(self.centres) * self.sigma) - 0.5 * _LOG_2PI
        return log_pr - math.log(2 * math.pi) - torch.log(r)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        out = torch.empty(0, dtype=self.dtype, device=self.device)
        while out.numel() < n:
            m = n - out.numel()
            idx = torch.randint(len(self.centres), (m,), generator=generator,
                                device=self._rng_device(generator)).to(self.device)
            r = self.centres[idx] + self.sigma * self._randn(m, generator=generator)
            out = torch.cat([out, r[r > 0]])
        theta = 2 * math.pi * self._rand(n, generator=generator)
        return torch.stack([out * torch.cos(theta), out * torch.sin(theta)], dim=-1)


def mos10(dim: int = 2, seed: int = 0, *, dtype: torch.dtype = torch.float64,
          device: torch.device | str | None = None) -> StudentTMixture:
    """10-MoS: 10 equally weighted products of Student-t (df 2, scale 1), locations ``U(-10, 10)^dim`` (seeded)."""
    dim = check_positive_int("dim", dim)
    gen = torch.Generator().manual_seed(_seed(seed))
    locs = 20.0 * torch.rand(10, dim, dtype=torch.float64, generator=gen) - 10.0
    return StudentTMixture(locs, df=2.0, scale=1.0, dtype=dtype, device=device)


def rings(*, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Rings:
    """Rings (2-D): four rings of radii 1, 2, 3, 4 and width 0.15, equal weights."""
    return Rings(4, 1.0, 0.15, dtype=dtype, device=device)
