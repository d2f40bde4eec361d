"""2-D benchmark energies of variational-flow papers: Rezende-Mohamed U1 - U4, the banana, the cross and
the MixFlows funnel.

* ``energy(k)`` (k = 1..4): ``exp(-U_k)`` of Rezende and Mohamed (2015). U2 - U4 do not decay along
  ``z1``, so they are confined by a smooth wall ``0.5 ((|z1| - 4)_+ / 0.2)^2`` that leaves them unchanged
  on the window ``|z1| <= 4`` the paper shows; ``log_z`` by trapezoidal quadrature, exact samples by
  rejection from a box (the mass outside it is below 1e-12).
* ``Banana``: Haario's twisted Gaussian, ``x1 ~ N(0, 100)``, ``x2 = y + b (x1^2 - 100)``, ``y ~ N(0, 1)``
  (the MixFlows experiments use ``b = 0.1``), normalised, exact samples.
* ``cross()``: four elongated Gaussians arranged as a cross (MixFlows), a :class:`GaussianMixture`.
* ``MixFlowsFunnel``: the 2-D funnel of the MixFlows experiments, ``x1 ~ N(s^2/4, s^2)``,
  ``x2 | x1 ~ N(0, exp(x1 / 2))`` with ``s^2 = 36``, normalised, exact samples. Neal's funnel is
  :class:`sciml.targets.Funnel`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sciml.targets.base import Target
from sciml.targets.mixtures import GaussianMixture
from sciml.validation import check_int, check_positive, check_positive_int

__all__ = ["RezendeEnergy", "energy", "Banana", "banana", "cross", "MixFlowsFunnel", "mixflows_funnel"]

_LOG_2PI = math.log(2 * math.pi)
_WALL_AT, _WALL_WIDTH = 4.0, 0.2
# Box holding all but < 1e-12 of every energy's mass, and a bound on exp(-U) there (each U_k >= -log 2).
_BOX = ((-_WALL_AT - 7.5 * _WALL_WIDTH, _WALL_AT + 7.5 * _WALL_WIDTH), (-7.0, 7.0))
_DENSITY_BOUND = 2.0


def _neg_energy(k: int, z: Tensor) -> Tensor:
    """``-U_k(z)`` (before the wall) for ``z`` of shape ``(..., 2)``."""
    z1, z2 = z[..., 0], z[..., 1]
    w1 = torch.sin(0.5 * math.pi * z1)
    if k == 1:
        ring = -0.5 * ((torch.linalg.vector_norm(z, dim=-1) - 2.0) / 0.4) ** 2
        return ring + torch.logaddexp(-0.5 * ((z1 - 2.0) / 0.6) ** 2, -0.5 * ((z1 + 2.0) / 0.6) ** 2)
    if k == 2:
        return -0.5 * ((z2 - w1) / 0.4) ** 2
    if k == 3:
        w2 = 3.0 * torch.exp(-0.5 * ((z1 - 1.0) / 0.6) ** 2)
        return torch.logaddexp(-0.5 * ((z2 - w1) / 0.35) ** 2, -0.5 * ((z2 - w1 + w2) / 0.35) ** 2)
    w3 = 3.0 * torch.sigmoid((z1 - 1.0) / 0.3)
    return torch.logaddexp(-0.5 * ((z2 - w1) / 0.4) ** 2, -0.5 * ((z2 - w1 + w3) / 0.35) ** 2)


class RezendeEnergy(Target):
    """``p(z) ~ exp(-U_k(z))`` on R^2, k = 1..4 (see the module docstring for the wall on U2 - U4).

    ``log_prob`` is unnormalised (``log_z`` holds the normaliser, by quadrature on a 0.01 grid, converged to 1e-13).
    """

    has_exact_samples = True

    def __init__(self, k: int, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> None:
        self.k = check_int("k", k, minimum=1)
        if self.k > 4:
            raise ValueError(f"k must be 1, 2, 3 or 4, got {k}")
        super().__init__(2, dtype=dtype, device=device)
        self.log_z = self._quadrature_log_z()

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        lp = _neg_energy(self.k, x)
        if self.k == 1:
            return lp
        excess = torch.clamp(x[..., 0].abs() - _WALL_AT, min=0.0)
        return lp - 0.5 * (excess / _WALL_WIDTH) ** 2

    def _quadrature_log_z(self, h: float = 0.01) -> float:
        (a1, b1), (a2, b2) = _BOX
        g1 = torch.arange(a1, b1 + h / 2, h, dtype=torch.float64)
        g2 = torch.arange(a2, b2 + h / 2, h, dtype=torch.float64)
        lp = self.to(torch.float64, "cpu").log_prob(torch.stack(torch.meshgrid(g1, g2, indexing="ij"), -1))
        # the integrand vanishes at the box's edges, so the trapezoidal rule is the plain sum
        return float(torch.logsumexp(lp.flatten(), 0)) + 2 * math.log(h)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        (a1, b1), (a2, b2) = _BOX
        lo = torch.tensor([a1, a2], dtype=self.dtype, device=self.device)
        width = torch.tensor([b1 - a1, b2 - a2], dtype=self.dtype, device=self.device)
        out, have = [], 0
        while have < n:
            batch = max(4096, 4 * (n - have) * math.ceil(_DENSITY_BOUND * float(width.prod()) / math.exp(self.log_z)))
            z = lo + width * self._rand(batch, 2, generator=generator)
            accept = self._rand(batch, generator=generator).log() + math.log(_DENSITY_BOUND) < self.log_prob(z)
            out.append(z[accept])
            have += int(accept.sum())
        return torch.cat(out)[:n]

    def __repr__(self) -> str:
        return f"RezendeEnergy(k={self.k}, dtype={self.dtype}, device={self.device})"


def energy(k: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> RezendeEnergy:
    """Rezende-Mohamed energy ``U_k``, ``k`` in 1..4."""
    return RezendeEnergy(k, dtype=dtype, device=device)


class Banana(Target):
    """Haario's banana in ``dim >= 2``: ``x1 ~ N(0, v)``, ``x2 = y + b (x1^2 - v)``, the rest ``N(0, 1)``.

    Normalised (``log_z = 0``); the map ``x -> (x1, x2 - b (x1^2 - v), x3, ...)`` has unit Jacobian.
    """

    has_exact_samples = True

    def __init__(self, dim: int = 2, b: float = 0.1, variance: float = 100.0, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> None:
        dim = check_positive_int("dim", dim)
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        self.b = check_positive("b", b)
        self.variance = check_positive("variance", variance)
        super().__init__(dim, dtype=dtype, device=device, log_z=0.0)

    def _untwist(self, x: Tensor) -> Tensor:
        y2 = x[..., 1] - self.b * (x[..., 0] ** 2 - self.variance)
        return torch.cat([x[..., :1], y2[..., None], x[..., 2:]], dim=-1)

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        y = self._untwist(x)
        scale2 = torch.ones(self.dim, dtype=x.dtype, device=x.device)
        scale2[0] = self.variance
        return (-0.5 * (y * y / scale2).sum(-1) - 0.5 * self.dim * _LOG_2PI
                - 0.5 * math.log(self.variance))

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        y = self._randn(n, self.dim, generator=generator)
        y[:, 0] *= math.sqrt(self.variance)
        y[:, 1] += self.b * (y[:, 0] ** 2 - self.variance)
        return y


def banana(dim: int = 2, *, dtype: torch.dtype = torch.float64,
           device: torch.device | str | None = None) -> Banana:
    """The MixFlows banana: ``b = 0.1``, first-coordinate variance 100."""
    return Banana(dim, 0.1, 100.0, dtype=dtype, device=device)


def cross(*, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> GaussianMixture:
    """The MixFlows cross: four equal Gaussians at ``(0, +-2)``, ``(+-2, 0)``, sds 1 along and 0.15 across."""
    thin, long = 0.15**2, 1.0
    means = torch.tensor([[0.0, 2.0], [-2.0, 0.0], [2.0, 0.0], [0.0, -2.0]])
    variances = torch.tensor([[thin, long], [long, thin], [long, thin], [thin, long]])
    return GaussianMixture(means, variances, dtype=dtype, device=device)


class MixFlowsFunnel(Target):
    """``x1 ~ N(s2 / 4, s2)``, ``x2 | x1 ~ N(0, exp(x1 / 2))``: the MixFlows experiments' 2-D funnel.

    Its log-density is ``-log(2 pi s) - s2/32 - x1^2 / (2 s2) - exp(-x1/2) x2^2 / 2``, normalised.
    """

    has_exact_samples = True

    def __init__(self, s2: float = 36.0, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> None:
        self.s2 = check_positive("s2", s2)
        super().__init__(2, dtype=dtype, device=device, log_z=0.0)

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        x1, x2 = x[..., 0], x[..., 1]
        return (-math.log(2 * math.pi) - 0.5 * math.log(self.s2) - self.s2 / 32
                - 0.5 * x1**2 / self.s2 - 0.5 * torch.exp(-0.5 * x1) * x2**2)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        x1 = self.s2 / 4 + math.sqrt(self.s2) * self._randn(n, generator=generator)
        x2 = torch.exp(0.25 * x1) * self._randn(n, generator=generator)
        return torch.stack([x1, x2], dim=-1)


def mixflows_funnel(*, dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> MixFlowsFunnel:
    """The MixFlows 2-D funnel with ``s2 = 36``."""
    return MixFlowsFunnel(36.0, dtype=dtype, device=device)
