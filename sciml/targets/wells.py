"""Factorised well targets: double wells DW(d, m, delta), many-well 32-D, Neal's funnel.

The well targets factorise over coordinates (or pairs), so exact samples come from 1-D rejection
sampling per factor and ``log Z`` from 1-D adaptive quadrature (scipy ``quad``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from sciml.targets.base import Target, check_dtype_device
from sciml.validation import (
    check_generator,
    check_nonnegative,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
)

__all__ = [
    "RejectionSampler1D",
    "DoubleWell",
    "ManyWell",
    "Funnel",
    "double_well",
    "dw5",
    "dw10",
    "dw50",
    "many_well32",
    "funnel",
]

_LOG_2PI = math.log(2 * math.pi)


class RejectionSampler1D:
    """Exact rejection sampler and log-normaliser for an unnormalised 1-D density ``exp(log_f)``.

    The proposal is a Gaussian mixture ``sum_k w_k N(mean_k, std_k^2)``. The bound
    ``log M >= sup (log_f - log_g)`` is found by a dense grid search refined with a bounded scalar
    optimiser and padded by ``1e-6``; the constructor checks that ``log_f - log_g`` decreases past the
    grid (the target's tails must be lighter than the proposal's). ``log_z`` is ``log int exp(log_f)``
    by adaptive quadrature.

    Args:
        log_f: vectorised numpy function, unnormalised log-density.
        means: proposal component means.
        stds: proposal component standard deviations.
        weights: proposal component weights.
        support: half-width of the search grid.
    """

    def __init__(self, log_f: Callable[[np.ndarray], np.ndarray], means: list[float], stds: list[float],
                 weights: list[float], support: float = 12.0) -> None:
        from scipy import integrate, optimize
        from scipy.special import logsumexp

        self.log_f = log_f
        self.means = np.asarray(means, dtype=float)
        self.stds = np.asarray(stds, dtype=float)
        self.weights = np.asarray(weights, dtype=float) / np.sum(weights)
        grid = np.linspace(-support, support, 100_001)
        diff = log_f(grid) - self._log_g(grid)
        i = int(np.argmax(diff))
        if i in (0, len(grid) - 1):
            raise ValueError("RejectionSampler1D: log_f - log_g is maximal at the grid edge; widen the proposal")
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        res = optimize.minimize_scalar(lambda t: -(log_f(np.array([t])) - self._log_g(np.array([t])))[0],
                                       bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
        self.log_m = float(max(diff[i], -res.fun)) + 1e-6
        # log Z by quadrature around the bulk of exp(log_f)
        lf = log_f(grid)
        c = float(lf.max())
        bulk = grid[lf > c - 50.0]
        a, b = float(bulk.min()) - 1.0, float(bulk.max()) + 1.0
        peaks = sorted({float(grid[j]) for j in np.flatnonzero(
            (lf[1:-1] >= lf[:-2]) & (lf[1:-1] >= lf[2:])) + 1 if lf[j] > c - 50.0})
        val, _ = integrate.quad(lambda t: math.exp(float(log_f(np.array([t]))[0]) - c), a, b,
                                points=peaks or None, limit=500, epsabs=0.0, epsrel=1e-13)
        self.log_z = c + math.log(val)
        self.acceptance = math.exp(self.log_z - self.log_m)
        self._logsumexp = logsumexp

    def _log_g(self, x: np.ndarray) -> np.ndarray:
        z = (x[..., None] - self.means) / self.stds
        comp = np.log(self.weights) - 0.5 * z * z - np.log(self.stds) - 0.5 * _LOG_2PI
        return np.logaddexp.reduce(comp, axis=-1)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` exact draws, a float64 CPU tensor ``(n,)``; randomness from ``generator`` (on its device)."""
        n = check_nonnegative_int("n", n)
        check_generator("generator", generator)
        dev = torch.device("cpu") if generator is None else generator.device
        out: list[np.ndarray] = []
        have = 0
        while have < n:
            m = int((n - have) / self.acceptance * 1.2) + 16
            k = torch.multinomial(torch.as_tensor(self.weights, device=dev), m, replacement=True,
                                  generator=generator).cpu().numpy()
            z = torch.randn(m, dtype=torch.float64, generator=generator, device=dev).cpu().numpy()
            u = torch.rand(m, dtype=torch.float64, generator=generator, device=dev).cpu().numpy()
            x = self.means[k] + self.stds[k] * z
            acc = np.log(u) < self.log_f(x) - self._log_g(x) - self.log_m
            out.append(x[acc])
            have += int(acc.sum())
        return torch.from_numpy(np.concatenate(out)[:n]) if out else torch.empty(0, dtype=torch.float64)


def double_well_log_z(delta: float) -> float:
    """``log int exp(-(x^2 - delta)^2) dx`` in closed form: with ``z = delta^2 / 2`` the integral is
    ``(pi / 2) sqrt(delta) e^-z (I_{-1/4}(z) + I_{1/4}(z))``, and ``I_{-1/4} = I_{1/4} + (2 / pi) sin(pi / 4) K_{1/4}``
    keeps it stable (``2 Gamma(5/4)`` at ``delta = 0``). Quadrature on a grid misses the wells once they
    are narrower than its spacing (``delta >= 1e4``: off by 0.56 nats)."""
    from scipy.special import ive, kve

    z = 0.5 * delta * delta
    if z < 1e-300:  # delta = 0, or so small that K_{1/4}(z) overflows: the integral moves by O(delta) from there
        return math.log(2 * math.gamma(1.25))
    if z > 1e6:  # e^-z I_nu(z) = (1 - (4 nu^2 - 1) / (8 z) + O(z^-2)) / sqrt(2 pi z); e^-2z K underflows
        scaled_i = (1 + 0.75 / (8 * z)) / math.sqrt(2 * math.pi * z)
        return math.log(math.pi / 2 * math.sqrt(delta) * 2 * scaled_i)
    val = 2 * ive(0.25, z) + (2 / math.pi) * math.sin(math.pi / 4) * kve(0.25, z) * math.exp(-2 * z)
    return math.log(math.pi / 2 * math.sqrt(delta) * val)


def _best_dw_sampler(delta: float) -> RejectionSampler1D:
    """Rejection sampler for ``exp(-(x^2 - delta)^2)`` with a two-Gaussian proposal at ``+-sqrt(delta)``."""
    root = math.sqrt(delta)

    def log_f(x: np.ndarray) -> np.ndarray:
        return -((x * x - delta) ** 2)

    if delta <= 0.5:  # single broad mode: one Gaussian proposal
        return RejectionSampler1D(log_f, [0.0], [1.0], [1.0])
    best = None
    for s in (0.2, 0.25, 0.3, 0.35, 0.45, 0.6, 0.8, 1.0):
        try:
            rs = RejectionSampler1D(log_f, [-root, root], [s, s], [0.5, 0.5], support=root + 8.0)
        except ValueError:
            continue
        if best is None or rs.acceptance > best.acceptance:
            best = rs
    assert best is not None
    return best


class DoubleWell(Target):
    """Double well ``DW(d, m, delta)``: ``log pi(x) = -sum_{i<m} (x_i^2 - delta)^2 - sum_{i>=m} x_i^2``.

    Unnormalised; ``log_z`` is ``m log Z_1(delta) + (d - m) log(sqrt(pi))`` with ``Z_1`` in closed form
    (:func:`double_well_log_z`). Exact samples: each of the first ``m`` coordinates by 1-D rejection sampling, the
    others ``N(0, 1/2)``. ``modes`` lists the ``2^m`` well centres ``(+-sqrt(delta), ..., 0, ...)``
    (equal weights by symmetry) when ``2^m <= 4096``.
    """

    has_exact_samples = True

    def __init__(self, dim: int, m: int, delta: float, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> None:
        check_dtype_device(dtype, device)  # before the costly 1-D sampler set-up
        dim = check_positive_int("dim", dim)
        m = check_positive_int("m", m)
        if m > dim:
            raise ValueError(f"m must be <= dim, got m={m}, dim={dim}")
        self.m, self.delta = m, check_nonnegative("delta", delta)
        self._sampler = _best_dw_sampler(self.delta)
        log_z = m * double_well_log_z(self.delta) + (dim - m) * 0.5 * math.log(math.pi)
        modes = weights = None
        if 2**m <= 4096:
            centre = math.sqrt(self.delta)
            signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=m)), dtype=torch.float64)
            modes = torch.zeros(2**m, dim, dtype=torch.float64)
            modes[:, :m] = centre * signs
            weights = torch.full((2**m,), 1.0 / 2**m, dtype=torch.float64)
        super().__init__(dim, dtype=dtype, device=device, log_z=log_z, modes=modes, mode_weights=weights)

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        a, b = x[..., : self.m], x[..., self.m:]
        return -((a * a - self.delta) ** 2).sum(-1) - (b * b).sum(-1)

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check_x(x)
        x = x.detach()
        a, b = x[..., : self.m], x[..., self.m:]
        q = a * a - self.delta
        lp = -(q * q).sum(-1) - (b * b).sum(-1)
        return lp, torch.cat([-4 * a * q, -2 * b], dim=-1)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        a = self._sampler.sample(n * self.m, generator=generator).reshape(n, self.m)
        b = torch.randn(n, self.dim - self.m, dtype=torch.float64, generator=generator,
                        device=self._rng_device(generator)).cpu() * math.sqrt(0.5)
        return torch.cat([a, b], dim=-1).to(dtype=self.dtype, device=self.device)


def double_well(dim: int, m: int, delta: float, *, dtype: torch.dtype = torch.float64,
                device: torch.device | str | None = None) -> DoubleWell:
    """``DW(dim, m, delta)``; see :class:`DoubleWell`."""
    return DoubleWell(dim, m, delta, dtype=dtype, device=device)


def dw5(**kw) -> DoubleWell:
    """DW5: ``dim = 5``, ``m = 5``, ``delta = 4`` (32 wells)."""
    return DoubleWell(5, 5, 4.0, **kw)


def dw10(**kw) -> DoubleWell:
    """DW10: ``dim = 10``, ``m = 10``, ``delta = 3`` (1024 wells); see docs/targets.md for this choice."""
    return DoubleWell(10, 10, 3.0, **kw)


def dw50(**kw) -> DoubleWell:
    """DW50: ``dim = 50``, ``m = 5``, ``delta = 2`` (32 wells); see docs/targets.md for this choice."""
    return DoubleWell(50, 5, 2.0, **kw)


class ManyWell(Target):
    """Many-well: ``sum_{i} [-x_{2i}^4 + 6 x_{2i}^2 + 0.5 x_{2i} - 0.5 x_{2i+1}^2]`` over ``dim/2`` pairs.

    (0-based pairs ``(x_{2i}, x_{2i+1})``.) Unnormalised; ``log_z = (dim/2) (log Z_1 + 0.5 log 2 pi)``
    with ``Z_1 = int exp(-x^4 + 6 x^2 + 0.5 x) dx`` (about 11784.50927) by quadrature. Exact samples: the
    quartic coordinates by rejection from ``0.2 N(-1.7, 0.5^2) + 0.8 N(1.7, 0.5^2)``, the others ``N(0, 1)``.
    ``modes`` is ``None`` (``2^(dim/2)`` wells); the well of a point is the sign pattern of its quartic
    coordinates.
    """

    has_exact_samples = True

    def __init__(self, dim: int = 32, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> None:
        check_dtype_device(dtype, device)  # before the costly 1-D sampler set-up
        dim = check_positive_int("dim", dim)
        if dim % 2:
            raise ValueError(f"dim must be even, got {dim}")
        self._sampler = RejectionSampler1D(lambda x: -(x**4) + 6 * x**2 + 0.5 * x, [-1.7, 1.7], [0.5, 0.5],
                                           [0.2, 0.8])
        log_z = dim // 2 * (self._sampler.log_z + 0.5 * _LOG_2PI)
        super().__init__(dim, dtype=dtype, device=device, log_z=log_z)

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        a, b = x[..., 0::2], x[..., 1::2]
        return (-(a**4) + 6 * a * a + 0.5 * a).sum(-1) - 0.5 * (b * b).sum(-1)

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check_x(x)
        x = x.detach()
        a, b = x[..., 0::2], x[..., 1::2]
        lp = (-(a**4) + 6 * a * a + 0.5 * a).sum(-1) - 0.5 * (b * b).sum(-1)
        g = torch.empty_like(x)
        g[..., 0::2] = -4 * a**3 + 12 * a + 0.5
        g[..., 1::2] = -b
        return lp, g

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        k = self.dim // 2
        a = self._sampler.sample(n * k, generator=generator).reshape(n, k)
        out = torch.empty(n, self.dim, dtype=torch.float64)
        out[:, 0::2] = a
        out[:, 1::2] = torch.randn(n, k, dtype=torch.float64, generator=generator,
                                   device=self._rng_device(generator)).cpu()
        return out.to(dtype=self.dtype, device=self.device)


def many_well32(**kw) -> ManyWell:
    """Many-well in 32-D (16 pairs, 65536 wells)."""
    return ManyWell(32, **kw)


class Funnel(Target):
    """Neal's funnel: ``x_0 ~ N(0, scale^2)``, ``x_{1:} | x_0 ~ N(0, e^{x_0} I)``; normalised (``log_z = 0``).

    ``scale = 3`` (variance 9) is Neal's original; the SLIPS benchmark code uses variance 3
    (``scale = sqrt(3)``).
    """

    has_exact_samples = True

    def __init__(self, dim: int = 10, scale: float = 3.0, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> None:
        dim = check_positive_int("dim", dim)
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        self.scale = check_positive("scale", scale)
        super().__init__(dim, dtype=dtype, device=device, log_z=0.0)

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        x0, rest = x[..., 0], x[..., 1:]
        k = self.dim - 1
        return (-0.5 * (x0 / self.scale) ** 2 - math.log(self.scale) - 0.5 * _LOG_2PI
                - 0.5 * torch.exp(-x0) * (rest * rest).sum(-1) - 0.5 * k * (x0 + _LOG_2PI))

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check_x(x)
        x = x.detach()
        lp = self.log_prob(x)
        x0, rest = x[..., 0], x[..., 1:]
        e = torch.exp(-x0)
        g0 = -x0 / self.scale**2 + 0.5 * e * (rest * rest).sum(-1) - 0.5 * (self.dim - 1)
        return lp, torch.cat([g0[..., None], -rest * e[..., None]], dim=-1)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        x0 = self.scale * self._randn(n, 1, generator=generator)
        rest = torch.exp(0.5 * x0) * self._randn(n, self.dim - 1, generator=generator)
        return torch.cat([x0, rest], dim=-1)


def funnel(dim: int = 10, *, dtype: torch.dtype = torch.float64,
           device: torch.device | str | None = None) -> Funnel:
    """Neal's funnel in ``dim`` dimensions with ``x_0 ~ N(0, 9)``."""
    return Funnel(dim, 3.0, dtype=dtype, device=device)
