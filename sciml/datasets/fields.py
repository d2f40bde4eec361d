"""Gaussian random fields: the random inputs of the PDE data sets.

Two samplers, both drawn from one ``torch.Generator`` per sample and computed in float64:

* :func:`periodic_grf`: on the periodic unit interval / square / cube, covariance
  ``sigma^2 (-Laplacian + tau^2 I)^(-gamma)`` restricted to fields of zero mean, sampled on an
  equispaced grid (Karhunen-Loeve expansion in the Fourier basis, truncated below the Nyquist mode).
* :func:`neumann_grf`: on the unit square with zero-flux (Neumann) boundary, the cosine expansion
  ``g(x, y) = sum_k (pi^2 |k|^2 + tau^2)^(-alpha/2) xi_k cos(pi k1 x) cos(pi k2 y)`` with the constant
  mode removed, evaluated on the node grid ``x_i = i / (s - 1)``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
import torch
from torch import Tensor

from sciml.validation import check_generator, check_int, check_positive

__all__ = ["periodic_grf", "periodic_grf_eigenvalues", "neumann_grf", "check_scale"]

_MAX_SCALE = 1e150  # its square is still a finite float64


def check_scale(name: str, value: object) -> float:
    """``value`` as a float in ``(0, 1e150]`` (its square stays a finite float), else ``TypeError`` /
    ``ValueError`` naming ``name``: the check of a field's ``sigma`` and ``tau``."""
    v = check_positive(name, value)
    if v > _MAX_SCALE:
        raise ValueError(f"{name} must be <= {_MAX_SCALE:g} (its square must be a finite float), got {v:g}")
    return v


def _wavenumbers(size: int) -> Tensor:
    """Integer FFT wavenumbers ``0, 1, ..., size/2 - 1, -size/2, ..., -1`` as float64."""
    return torch.fft.fftfreq(size, d=1.0 / size, dtype=torch.float64)


def periodic_grf_eigenvalues(shape: tuple[int, ...], *, sigma: float, tau: float, gamma: float) -> Tensor:
    """Covariance eigenvalue of every Fourier mode of a grid of ``shape`` (FFT order, float64).

    ``lambda_k = sigma^2 (4 pi^2 |k|^2 + tau^2)^(-gamma)`` for the orthonormal basis functions
    ``sqrt(2) cos(2 pi k.x)``, ``sqrt(2) sin(2 pi k.x)``; zero for the constant mode and for every
    mode with a Nyquist component (``|k_d| = size_d / 2``), which :func:`periodic_grf` leaves out.
    """
    grids = torch.meshgrid(*[_wavenumbers(s) for s in shape], indexing="ij")
    k2 = sum(k**2 for k in grids)
    lam = sigma**2 * (4.0 * math.pi**2 * k2 + tau**2) ** (-gamma)
    keep = torch.ones(shape, dtype=torch.bool)
    for k, s in zip(grids, shape):
        if s % 2 == 0:
            keep &= k.abs() < s // 2
    keep.view(-1)[0] = False
    return torch.where(keep, lam, torch.zeros_like(lam))


def periodic_grf(generator: torch.Generator, shape: tuple[int, ...] | int, *, sigma: float, tau: float,
                 gamma: float) -> Tensor:
    """One zero-mean sample of ``N(0, sigma^2 (-Laplacian + tau^2 I)^(-gamma))`` on the periodic grid.

    The field is ``sum_k sqrt(lambda_k) (xi_k cos(2 pi k.x) - eta_k sin(2 pi k.x))`` summed over all
    wavenumbers ``k`` of the grid (both signs), with ``xi, eta`` standard normal. Pairing ``k`` with
    ``-k`` gives each cosine and sine a coefficient of variance ``2 lambda_k``: exactly the
    Karhunen-Loeve expansion in the orthonormal basis ``sqrt(2) cos, sqrt(2) sin`` (for Burgers, the
    square-root eigenvalues ``sqrt(2) sigma ((2 pi k)^2 + tau^2)^(-gamma/2)`` of the FNO scripts).
    The constant and Nyquist modes are zero (see :func:`periodic_grf_eigenvalues`).

    Args:
        generator: the source of randomness (one per sample).
        shape: grid points per dimension (1-, 2- or 3-D), points ``x_j = j / size``.
        sigma: covariance scale (> 0).
        tau: inverse length scale (> 0).
        gamma: smoothness exponent (> 0).

    Returns:
        ``shape`` float64 tensor; ``[i, j]`` is the value at ``(x_i, y_j)``.
    """
    check_generator("generator", generator)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    shape = tuple(check_int("shape", s, minimum=2) for s in shape)
    sigma, tau, gamma = check_scale("sigma", sigma), check_scale("tau", tau), check_positive("gamma", gamma)
    noise = torch.randn((2, *shape), generator=generator, dtype=torch.float64)
    coef = torch.complex(noise[0], noise[1]) * periodic_grf_eigenvalues(shape, sigma=sigma, tau=tau,
                                                                        gamma=gamma).sqrt()
    return torch.fft.ifftn(coef, norm="forward").real.contiguous()


def neumann_grf(generator: torch.Generator, size: int, *, alpha: float, tau: float) -> Tensor:
    """One sample of the Darcy Gaussian field on the ``size x size`` node grid of the unit square.

    ``g(x_i, y_j) = sum_{k1, k2 = 0}^{size - 1} (pi^2 (k1^2 + k2^2) + tau^2)^(-alpha/2) xi_k
    cos(pi k1 x_i) cos(pi k2 y_j)`` with ``x_i = i / (size - 1)``, ``xi_k`` standard normal and the
    constant mode ``k = (0, 0)`` left out: a field of covariance ``(-Laplacian + tau^2)^(-alpha)``
    (Neumann boundary) up to a constant factor, which thresholding ignores. Evaluated exactly with a
    type-I discrete cosine transform.

    Returns:
        ``(size, size)`` float64 tensor; ``[i, j]`` is the value at ``(x_i, y_j)``.
    """
    check_generator("generator", generator)
    size = check_int("size", size, minimum=2)
    alpha, tau = check_positive("alpha", alpha), check_scale("tau", tau)
    k = np.arange(size, dtype=np.float64)
    coef = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau**2) ** (-alpha / 2.0)
    coef[0, 0] = 0.0
    coef *= torch.randn((size, size), generator=generator, dtype=torch.float64).numpy()
    # DCT-I: y_n = x_0 + (-1)^n x_{N-1} + 2 sum_{k=1}^{N-2} x_k cos(pi k n / (N-1)); halving the
    # interior coefficients turns it into the plain cosine sum, in each dimension.
    coef[1:-1, :] *= 0.5
    coef[:, 1:-1] *= 0.5
    return torch.from_numpy(scipy.fft.dctn(coef, type=1))
